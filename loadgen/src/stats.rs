//! Per-client tallies. Each client task owns one, so recording takes no lock;
//! they are merged once at the end.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use hdrhistogram::Histogram;

use super::outcome::{FailureKind, Outcome};

/// Significant digits kept by the latency histogram (0.1% resolution).
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// Counts and latencies of one client (or, after merging, of the whole run).
#[derive(Debug, Clone)]
pub struct Stats {
    /// Latencies of successful requests, in microseconds.
    pub latency_us: Histogram<u64>,
    /// Exact sum of `latency_us` samples, for an exact mean.
    pub latency_sum_us: u128,
    pub successful: u64,
    pub failures: BTreeMap<FailureKind, u64>,
    /// Connections opened (TCP connects that went on to HTTP, after a
    /// completed TLS handshake with https).
    pub connections: u64,
    /// https: of those, handshakes that resumed an earlier session.
    pub resumed: u64,
}

impl Stats {
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            // Auto-resizing: open-loop latencies can far exceed the timeout.
            latency_us: Histogram::new(SIGNIFICANT_DIGITS).context("latency histogram")?,
            latency_sum_us: 0,
            successful: 0,
            failures: BTreeMap::new(),
            connections: 0,
            resumed: 0,
        })
    }

    /// Records one request. Only successes enter the latency histogram, so
    /// fast failures (an instant 503) cannot flatter the percentiles.
    pub fn record(&mut self, outcome: Outcome, latency: Duration) {
        match outcome {
            Outcome::Success => self.record_success(latency),
            Outcome::Failure(kind) => self.record_failures(kind, 1),
        }
    }

    pub fn record_success(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        if self.latency_us.record(micros).is_err() {
            // Only beyond ~146 years; clamp rather than lose the sample.
            self.latency_us.saturating_record(micros);
        }
        self.latency_sum_us += u128::from(micros);
        self.successful += 1;
    }

    pub fn record_failures(&mut self, kind: FailureKind, count: u64) {
        if count > 0 {
            *self.failures.entry(kind).or_insert(0) += count;
        }
    }

    pub fn failed(&self) -> u64 {
        self.failures.values().sum()
    }

    pub fn total(&self) -> u64 {
        self.successful + self.failed()
    }

    pub fn merge(&mut self, other: &Stats) -> anyhow::Result<()> {
        self.latency_us
            .add(&other.latency_us)
            .context("merge latency histograms")?;
        self.latency_sum_us += other.latency_sum_us;
        self.successful += other.successful;
        self.connections += other.connections;
        self.resumed += other.resumed;
        for (kind, count) in &other.failures {
            self.record_failures(*kind, *count);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_across_merge() {
        let mut a = Stats::new().unwrap();
        let mut b = Stats::new().unwrap();
        a.record(Outcome::Success, Duration::from_millis(1));
        a.record(Outcome::Failure(FailureKind::Status(503)), Duration::ZERO);
        b.record(Outcome::Success, Duration::from_millis(3));
        b.record(Outcome::Failure(FailureKind::Status(503)), Duration::ZERO);
        b.record(Outcome::Failure(FailureKind::Reset), Duration::ZERO);
        b.record_failures(FailureKind::NotSent, 0);
        a.merge(&b).unwrap();
        assert_eq!(a.successful, 2);
        assert_eq!(a.failed(), 3);
        assert_eq!(a.total(), 5);
        assert_eq!(a.failures[&FailureKind::Status(503)], 2);
        assert_eq!(a.failures[&FailureKind::Reset], 1);
        assert!(!a.failures.contains_key(&FailureKind::NotSent));
        assert_eq!(a.latency_us.len(), 2, "failures are not latency samples");
        assert_eq!(a.latency_sum_us, 4000);
    }
}
