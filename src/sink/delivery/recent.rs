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
use crate::record::metric::{histogram, Histogram};
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

/// Series (its hash), timestamp, the value's exact bits, its tenant, and
/// what the point is: a native histogram (every field of it) or an exemplar (its
/// labels) is not the float sample of the same value, nor another
/// histogram of the same count.
fn fingerprint(s: &Sample) -> u64 {
    let mut h = FxHasher::default();
    h.write_u64(s.series.hash_value());
    h.write_u64(s.timestamp as u64);
    h.write_u64(s.value.as_f64().to_bits());
    if let Some(histogram) = s.histogram() {
        h.write_u64(HISTOGRAM);
        histogram_words(histogram, &mut h);
    } else if let Some(labels) = s.exemplar() {
        h.write_u64(EXEMPLAR);
        h.write_u64(labels.len() as u64);
        for (k, v) in labels {
            text(k, &mut h);
            text(v, &mut h);
        }
    }
    // The same series of two tenants is two series (two stores, in effect).
    if let Some(t) = s.tenant() {
        h.write_u64(TENANT);
        text(t, &mut h);
    }
    // One more round so the last word is mixed as well as the others.
    h.write_u64(0x9e37_79b9_7f4a_7c15);
    h.finish()
}

/// What a fingerprint says the point is (a float sample says nothing, so
/// its fingerprint stays what it was before histograms were delivered).
const HISTOGRAM: u64 = 1;
const EXEMPLAR: u64 = 2;
/// A tenant follows (none: the fingerprint of before tenants existed).
const TENANT: u64 = 3;

/// A string, its length first so that ("ab", "c") and ("a", "bc") differ.
fn text(s: &str, h: &mut FxHasher) {
    h.write_u64(s.len() as u64);
    h.write(s.as_bytes());
}

/// Every field of a histogram, each list after its length.
fn histogram_words(x: &Histogram, h: &mut FxHasher) {
    use histogram::{Count, ZeroCount};
    let (kind, count) = match x.count {
        Some(Count::CountInt(n)) => (1, n),
        Some(Count::CountFloat(f)) => (2, f.to_bits()),
        None => (0, 0),
    };
    let (zero_kind, zero_count) = match x.zero_count {
        Some(ZeroCount::ZeroCountInt(n)) => (1, n),
        Some(ZeroCount::ZeroCountFloat(f)) => (2, f.to_bits()),
        None => (0, 0),
    };
    for w in [
        kind,
        count,
        x.sum.to_bits(),
        x.schema as u64,
        x.zero_threshold.to_bits(),
        zero_kind,
        zero_count,
        x.reset_hint as u64,
        x.timestamp as u64,
        x.start_timestamp as u64,
    ] {
        h.write_u64(w);
    }
    for spans in [&x.negative_spans, &x.positive_spans] {
        h.write_u64(spans.len() as u64);
        for s in spans {
            h.write_u64((u64::from(s.offset as u32) << 32) | u64::from(s.length));
        }
    }
    for deltas in [&x.negative_deltas, &x.positive_deltas] {
        h.write_u64(deltas.len() as u64);
        for &d in deltas {
            h.write_u64(d as u64);
        }
    }
    for floats in [&x.negative_counts, &x.positive_counts, &x.custom_values] {
        h.write_u64(floats.len() as u64);
        for f in floats {
            h.write_u64(f.to_bits());
        }
    }
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

    /// A histogram or an exemplar delivered is not taken for the float
    /// sample of the same series, time and value (nor the reverse), and a
    /// histogram is told from another of the same count.
    #[test]
    fn histograms_and_exemplars_are_not_floats_of_their_value() {
        use crate::record::Extra;
        use crate::sink::store::test_points::{float_histogram, int_histogram, with, T};
        let float = Sample::new(
            "h",
            &[("a", "1")],
            Value::UInt(13),
            T,
            MetricType::Histogram,
            0,
        );
        let hist = |h: Histogram| {
            with(
                float.clone(),
                Extra {
                    histogram: Some(h),
                    ..Extra::default()
                },
            )
        };
        let exemplar = |v: &str| {
            with(
                float.clone(),
                Extra {
                    exemplar: Some(vec![("trace_id".into(), v.into())]),
                    ..Extra::default()
                },
            )
        };
        let int = hist(int_histogram(T));
        let mut other = int_histogram(T);
        other.positive_deltas[2] += 1;
        let other = hist(other);
        let float_one = hist(float_histogram(T));
        let points = [
            float.clone(),
            int,
            other,
            float_one,
            exemplar("x"),
            exemplar("y"),
        ];
        for (i, a) in points.iter().enumerate() {
            let mut r = Recent::new(16);
            r.insert(a);
            for (j, b) in points.iter().enumerate() {
                assert_eq!(r.contains(b), i == j, "remembered {i}, asked {j}");
            }
        }
        // The same histogram, decoded again from another copy of the record.
        let mut r = Recent::new(16);
        r.insert(&points[1]);
        assert!(r.contains(&hist(int_histogram(T))));
    }

    /// The same sample under two tenants (or none) is three samples.
    #[test]
    fn tenants_tell_samples_apart() {
        let plain = Sample::new(
            "m",
            &[("a", "1")],
            Value::Float(1.0),
            5,
            MetricType::Gauge,
            0,
        );
        let under = |t: &str| Sample {
            tenant: Some(t.into()),
            ..plain.clone()
        };
        let mut r = Recent::new(16);
        r.insert(&under("acme"));
        assert!(r.contains(&under("acme")));
        assert!(!r.contains(&under("beta")));
        assert!(!r.contains(&plain));
        r.insert(&plain);
        assert!(r.contains(&plain));
    }
}
