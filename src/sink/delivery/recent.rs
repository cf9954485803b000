//! Fingerprints of the samples a partition worker delivered lately, so a
//! sample the queue holds twice (a sender retried a request `serve` had
//! already stored) is recognised when the store refuses the second copy as
//! already there (Prometheus: `out of order sample`). Bounded: the oldest
//! fingerprints are overwritten first.
//!
//! A ring, not a set: every delivered sample is remembered (one store),
//! while a lookup happens only for a sample the store refused on its own,
//! after a round trip to the store, so a scan of the ring (a few hundred
//! microseconds) costs nothing there, and a hash set's insert and remove
//! per delivered sample cost about 5% of the consumer's CPU.

use std::hash::Hasher;

use crate::hash::FxHasher;
use crate::sink::Sample;

pub struct Recent {
    ring: Vec<u64>,
    /// Where the next fingerprint goes once the ring is full.
    next: usize,
    cap: usize,
}

/// Samples remembered per partition (8 bytes each).
pub const REMEMBERED: usize = 1 << 18;

impl Recent {
    pub fn new(cap: usize) -> Recent {
        Recent {
            ring: Vec::new(),
            next: 0,
            cap: cap.max(1),
        }
    }

    pub fn insert(&mut self, s: &Sample) {
        let f = fingerprint(s);
        if self.ring.len() < self.cap {
            self.ring.push(f);
        } else {
            self.ring[self.next] = f;
            self.next = (self.next + 1) % self.cap;
        }
    }

    pub fn contains(&self, s: &Sample) -> bool {
        let f = fingerprint(s);
        self.ring.contains(&f)
    }
}

/// Series (its hash), timestamp and the value's exact bits.
fn fingerprint(s: &Sample) -> u64 {
    let mut h = FxHasher::default();
    h.write_u64(s.series.hash_value());
    h.write_u64(s.timestamp as u64);
    h.write_u64(s.value.as_f64().to_bits());
    // One more round so the last word is mixed as well as the others.
    h.write_u64(0x9e37_79b9_7f4a_7c15);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{MetricType, Value};

    #[test]
    fn remembers_the_latest_only() {
        let s = |ts: i64, v: f64| {
            Sample::new(
                "m",
                &[("a", "1")],
                Value::Float(v),
                ts,
                MetricType::Gauge,
                0,
            )
        };
        let mut r = Recent::new(2);
        r.insert(&s(1, 1.0));
        assert!(r.contains(&s(1, 1.0)));
        assert!(!r.contains(&s(1, 2.0)));
        r.insert(&s(2, 1.0));
        r.insert(&s(3, 1.0));
        assert!(!r.contains(&s(1, 1.0)));
        assert!(r.contains(&s(3, 1.0)));
    }
}
