//! What each sender said its metric families are. Prometheus 2.x sends
//! metadata in requests of their own (every `metadata_config.send_interval`,
//! 1 min by default), not beside the samples, so a receiver that wants types
//! must remember them per sender. Bounded: past `MAX_FAMILIES` in all, new
//! families are not remembered (their samples are stored as `unknown`).

use std::collections::HashMap;
use std::sync::Mutex;

use super::{kind_for, Kind};

/// Families remembered over all senders (≈100 bytes each).
pub const MAX_FAMILIES: usize = 1_000_000;

#[derive(Default)]
pub struct TypeCache {
    inner: Mutex<Families>,
}

#[derive(Default)]
struct Families {
    by_client: HashMap<String, HashMap<String, Kind>>,
    count: usize,
}

impl TypeCache {
    /// Remembers a request's metadata for its sender; a later type replaces
    /// an earlier one (a family can change type between releases).
    pub fn remember(&self, client: &str, metadata: &[(String, Kind)]) {
        if metadata.is_empty() {
            return;
        }
        let mut f = crate::sync::lock(&self.inner);
        let Families { by_client, count } = &mut *f;
        let families = by_client.entry(client.to_string()).or_default();
        for (family, kind) in metadata {
            if let Some(known) = families.get_mut(family) {
                *known = *kind;
            } else if *count < MAX_FAMILIES {
                families.insert(family.clone(), *kind);
                *count += 1;
            }
        }
    }

    /// The types of `names` (sample names) as this sender last described them.
    pub fn kinds(&self, client: &str, names: &[&str]) -> Vec<Option<Kind>> {
        let f = crate::sync::lock(&self.inner);
        match f.by_client.get(client) {
            Some(families) => names.iter().map(|n| kind_for(n, families)).collect(),
            None => vec![None; names.len()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_per_sender_and_latest_wins() {
        let cache = TypeCache::default();
        cache.remember(
            "a",
            &[
                ("up".into(), Kind::Gauge),
                ("http_requests_total".into(), Kind::Counter),
            ],
        );
        cache.remember("a", &[("up".into(), Kind::Counter)]);
        assert_eq!(
            cache.kinds("a", &["up", "http_requests_total", "other"]),
            vec![Some(Kind::Counter), Some(Kind::Counter), None]
        );
        assert_eq!(cache.kinds("b", &["up"]), vec![None]);
    }
}
