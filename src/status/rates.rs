//! The one bounded history of the server's rates: a ring of per-second
//! snapshots of cumulative counters (per protocol: samples and requests;
//! the log's growth on disk). Rates are differences between two snapshots,
//! so a missed tick only widens one interval, never loses counts.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

use crate::telemetry::Protocol;

/// Snapshots kept: five minutes at one a second.
pub const RING: usize = 301;
/// "Now" is the average over this many seconds (one second is too noisy
/// for a page refreshed every 1.5 s).
pub const NOW_WINDOW_SECS: usize = 5;
/// One sparkline point covers this many seconds.
pub const SPARK_STEP_SECS: usize = 5;

/// Cumulative counts at one instant.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot {
    pub at: Instant,
    /// Per protocol, in [`Protocol::ALL`]'s order.
    pub samples: [u64; 4],
    pub requests: [u64; 4],
    /// Bytes the log's files grew by since the server started (growth
    /// only: what retention deletes is not subtracted).
    pub log_growth: u64,
}

/// Rates derived from the ring for one protocol.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProtocolRates {
    pub samples_per_second: f64,
    pub requests_per_second: f64,
    /// Oldest first, one point per [`SPARK_STEP_SECS`].
    pub samples_history: Vec<f64>,
    pub requests_history: Vec<f64>,
}

#[derive(Default)]
pub struct Rates {
    ring: Mutex<VecDeque<Snapshot>>,
}

impl Rates {
    pub fn push(&self, s: Snapshot) {
        let mut ring = crate::sync::lock(&self.ring);
        if ring.len() == RING {
            ring.pop_front();
        }
        ring.push_back(s);
    }

    /// Rates of each protocol, in [`Protocol::ALL`]'s order.
    pub fn protocols(&self) -> [ProtocolRates; 4] {
        let ring = crate::sync::lock(&self.ring);
        let mut out: [ProtocolRates; 4] = Default::default();
        for (i, rates) in out.iter_mut().enumerate() {
            let samples = |s: &Snapshot| s.samples[i];
            let requests = |s: &Snapshot| s.requests[i];
            rates.samples_per_second = rate(&ring, NOW_WINDOW_SECS, samples);
            rates.requests_per_second = rate(&ring, NOW_WINDOW_SECS, requests);
            rates.samples_history = history(&ring, samples);
            rates.requests_history = history(&ring, requests);
        }
        out
    }

    /// Bytes per second the log grew by over the whole ring (up to five
    /// minutes: segment files grow in 1 MiB steps, so a short window would
    /// swing between zero and a burst), and the seconds that covers.
    pub fn log_growth(&self) -> (f64, f64) {
        let ring = crate::sync::lock(&self.ring);
        let span = match (ring.front(), ring.back()) {
            (Some(a), Some(b)) => b.at.duration_since(a.at).as_secs_f64(),
            _ => 0.0,
        };
        (rate(&ring, RING, |s| s.log_growth), span)
    }
}

/// Per second between the newest snapshot and the one `secs` before it (or
/// the oldest there is).
fn rate(ring: &VecDeque<Snapshot>, secs: usize, value: impl Fn(&Snapshot) -> u64) -> f64 {
    let Some(last) = ring.back() else {
        return 0.0;
    };
    let first = &ring[ring.len().saturating_sub(secs + 1)];
    per_second(first, last, &value)
}

fn per_second(a: &Snapshot, b: &Snapshot, value: &impl Fn(&Snapshot) -> u64) -> f64 {
    let secs = b.at.duration_since(a.at).as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    value(b).saturating_sub(value(a)) as f64 / secs
}

/// One rate per [`SPARK_STEP_SECS`] over the ring, oldest first.
fn history(ring: &VecDeque<Snapshot>, value: impl Fn(&Snapshot) -> u64) -> Vec<f64> {
    let mut points = Vec::new();
    let mut end = ring.len();
    while end > SPARK_STEP_SECS {
        let (a, b) = (&ring[end - 1 - SPARK_STEP_SECS], &ring[end - 1]);
        points.push(per_second(a, b, &value));
        end -= SPARK_STEP_SECS;
    }
    points.reverse();
    points
}

/// Index of a protocol in the snapshot arrays.
pub fn index(p: Protocol) -> usize {
    Protocol::ALL.iter().position(|q| *q == p).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn snap(t0: Instant, sec: u64, json: u64, growth: u64) -> Snapshot {
        Snapshot {
            at: t0 + Duration::from_secs(sec),
            samples: [json, 0, 0, 0],
            requests: [json / 10, 0, 0, 0],
            log_growth: growth,
        }
    }

    #[test]
    fn rates_are_differences_over_the_window_and_the_ring_is_bounded() {
        let rates = Rates::default();
        let t0 = Instant::now();
        assert_eq!(rates.protocols()[0].samples_per_second, 0.0);
        for s in 0..1000 {
            rates.push(snap(t0, s, s * 100, s * 1000));
        }
        assert_eq!(crate::sync::lock(&rates.ring).len(), RING);
        let json = &rates.protocols()[0];
        assert_eq!(json.samples_per_second, 100.0);
        assert_eq!(json.requests_per_second, 10.0);
        assert_eq!(json.samples_history.len(), (RING - 1) / SPARK_STEP_SECS);
        assert!(json.samples_history.iter().all(|r| *r == 100.0));
        assert_eq!(
            rates.protocols()[1],
            ProtocolRates {
                samples_history: vec![0.0; 60],
                requests_history: vec![0.0; 60],
                ..ProtocolRates::default()
            }
        );
        let (growth, span) = rates.log_growth();
        assert_eq!((growth, span), (1000.0, 300.0));
    }

    #[test]
    fn a_missed_tick_widens_one_interval() {
        let rates = Rates::default();
        let t0 = Instant::now();
        rates.push(snap(t0, 0, 0, 0));
        rates.push(snap(t0, 4, 400, 0));
        assert_eq!(rates.protocols()[0].samples_per_second, 100.0);
        assert_eq!(index(Protocol::Influx), 2);
    }
}
