//! Fingerprints of the samples a partition worker delivered lately, so a
//! sample the queue holds twice (a sender retried a request `serve` had
//! already stored) is recognised when the store refuses the second copy as
//! already there (Prometheus: `out of order sample`). Bounded: the oldest
//! fingerprints are forgotten first.

use std::collections::{HashSet, VecDeque};
use std::hash::Hasher;

use super::sample::{Fx, FxHasher};
use super::Sample;

pub struct Recent {
    set: HashSet<u64, Fx>,
    order: VecDeque<u64>,
    cap: usize,
}

/// Samples remembered per partition (≈ 24 bytes each).
pub const REMEMBERED: usize = 1 << 18;

impl Recent {
    pub fn new(cap: usize) -> Recent {
        Recent {
            set: HashSet::default(),
            order: VecDeque::new(),
            cap,
        }
    }

    pub fn insert(&mut self, s: &Sample) {
        let f = fingerprint(s);
        if self.set.insert(f) {
            self.order.push_back(f);
            if self.order.len() > self.cap {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }

    pub fn contains(&self, s: &Sample) -> bool {
        self.set.contains(&fingerprint(s))
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
    use crate::batch::{MetricType, Value};

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
