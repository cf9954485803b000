//! The per-tenant counters of `/metrics` and `/stats`, and their bounded
//! label: the first [`MAX_TENANT_LABELS`] distinct tenants seen are counted
//! under their own names, every later one under [`OTHER`]. A tenant id
//! comes from the client (`*` rules, open servers), so without a bound one
//! client could grow `/metrics` (and a scraping Prometheus) by a series per
//! request.

use std::collections::{BTreeMap, HashSet};
use std::sync::RwLock;

use prometheus::{IntCounterVec, Opts, Registry};
use serde::Serialize;

/// Tenants counted under their own name, at most.
pub const MAX_TENANT_LABELS: usize = 100;
/// The label of every tenant past the first [`MAX_TENANT_LABELS`]. `other`
/// is a valid tenant id too: a tenant of that name shares the overflow's
/// count (said in the README).
pub const OTHER: &str = "other";

/// The tenants counted under their own name.
#[derive(Debug)]
pub struct TenantLabels {
    max: usize,
    seen: RwLock<HashSet<String>>,
}

impl Default for TenantLabels {
    fn default() -> TenantLabels {
        TenantLabels::new(MAX_TENANT_LABELS)
    }
}

impl TenantLabels {
    pub fn new(max: usize) -> TenantLabels {
        TenantLabels {
            max,
            seen: RwLock::new(HashSet::new()),
        }
    }

    /// The label `tenant` is counted under.
    pub fn label(&self, tenant: &str) -> String {
        // A poisoned lock holds a set that is still a set of strings.
        let known = match self.seen.read() {
            Ok(seen) => seen.contains(tenant),
            Err(p) => p.into_inner().contains(tenant),
        };
        if known {
            return tenant.to_string();
        }
        let mut seen = match self.seen.write() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        if seen.contains(tenant) {
            return tenant.to_string();
        }
        if seen.len() < self.max {
            seen.insert(tenant.to_string());
            return tenant.to_string();
        }
        OTHER.to_string()
    }

    /// Every label given out so far, [`OTHER`] included once it was.
    pub fn all(&self) -> Vec<String> {
        let seen = match self.seen.read() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        let mut all: Vec<String> = seen.iter().cloned().collect();
        if seen.len() >= self.max {
            all.push(OTHER.to_string());
        }
        all
    }
}

/// What `/stats` shows of one tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TenantStats {
    /// Requests admitted under the tenant (its rule passed), whatever
    /// their answer after.
    pub requests: u64,
    /// Data points stored under the tenant.
    pub samples_received: u64,
    /// Requests answered 429 by `--tenant-rate-limit`.
    pub rate_limited: u64,
}

/// The per-tenant counters, labelled `tenant` (bounded by [`TenantLabels`]).
pub struct TenantCounters {
    labels: TenantLabels,
    requests: IntCounterVec,
    samples: IntCounterVec,
    rate_limited: IntCounterVec,
}

impl TenantCounters {
    /// Registers `metricstream_tenant_*` in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<TenantCounters> {
        let vec = |name: &str, help: &str| -> prometheus::Result<IntCounterVec> {
            let v = IntCounterVec::new(
                Opts::new(format!("metricstream_tenant_{name}"), help),
                &["tenant"],
            )?;
            registry.register(Box::new(v.clone()))?;
            Ok(v)
        };
        Ok(TenantCounters {
            labels: TenantLabels::default(),
            requests: vec(
                "requests_total",
                "requests admitted under a tenant (X-Scope-OrgID or the client's bound tenant), whatever their answer",
            )?,
            samples: vec(
                "samples_received_total",
                "data points stored under a tenant",
            )?,
            rate_limited: vec(
                "rate_limited_requests_total",
                "requests answered 429 by --tenant-rate-limit",
            )?,
        })
    }

    pub fn request(&self, tenant: &str) {
        self.requests
            .with_label_values(&[self.labels.label(tenant).as_str()])
            .inc();
    }

    pub fn samples(&self, tenant: &str, n: u64) {
        self.samples
            .with_label_values(&[self.labels.label(tenant).as_str()])
            .inc_by(n);
    }

    pub fn rate_limited(&self, tenant: &str) {
        self.rate_limited
            .with_label_values(&[self.labels.label(tenant).as_str()])
            .inc();
    }

    /// Every tenant counted so far, by label.
    pub fn stats(&self) -> BTreeMap<String, TenantStats> {
        self.labels
            .all()
            .into_iter()
            .map(|label| {
                let l = [label.as_str()];
                let stats = TenantStats {
                    requests: self.requests.with_label_values(&l).get(),
                    samples_received: self.samples.with_label_values(&l).get(),
                    rate_limited: self.rate_limited.with_label_values(&l).get(),
                };
                (label, stats)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_tenants_are_other() {
        let l = TenantLabels::new(2);
        assert_eq!(l.label("a"), "a");
        assert_eq!(l.label("b"), "b");
        assert_eq!(l.label("c"), OTHER);
        assert_eq!(l.label("a"), "a");
        assert_eq!(l.label("d"), OTHER);
        assert_eq!(TenantLabels::default().max, MAX_TENANT_LABELS);
        let mut all = l.all();
        all.sort();
        assert_eq!(all, ["a", "b", OTHER]);
    }

    #[test]
    fn counters_show_in_metrics_and_stats_alike() {
        let registry = Registry::new();
        let c = TenantCounters::register(&registry).unwrap();
        c.request("acme");
        c.samples("acme", 3);
        c.request("beta");
        c.rate_limited("beta");
        let stats = c.stats();
        assert_eq!(
            stats["acme"],
            TenantStats {
                requests: 1,
                samples_received: 3,
                rate_limited: 0
            }
        );
        assert_eq!(stats["beta"].rate_limited, 1);
        let mut text = Vec::new();
        prometheus::Encoder::encode(
            &prometheus::TextEncoder::new(),
            &registry.gather(),
            &mut text,
        )
        .unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("metricstream_tenant_samples_received_total{tenant=\"acme\"} 3"),
            "{text}"
        );
    }
}
