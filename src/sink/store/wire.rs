//! The protobuf both remote_write sinks write by hand: fields whose value
//! prost's derived code would change, and the messages that hold them
//! (a native histogram, the 2.0 sample and exemplar).
//!
//! Why by hand: prost leaves a `double` field out when it equals `0.0`, and
//! `-0.0 == 0.0`, so a negative zero (a sample's value, a histogram's sum)
//! would reach the store as `+0.0`. Here a double is left out only when its
//! bits are all zero. Every other field is written as prost writes it, in
//! field order, so a message without a negative zero is byte for byte what
//! prost makes of it (the stores' tests compare).

use prost::encoding::{self, encode_key, encode_varint, WireType};

use crate::record::metric::{histogram, Histogram};

/// A `double` field, left out only when it is `+0.0` (all bits zero).
pub fn double(tag: u32, v: f64, out: &mut Vec<u8>) {
    if v.to_bits() != 0 {
        encoding::double::encode(tag, &v, out);
    }
}

/// An `int64` field, left out when zero (as protobuf does).
pub fn int64(tag: u32, v: i64, out: &mut Vec<u8>) {
    if v != 0 {
        encoding::int64::encode(tag, &v, out);
    }
}

/// A length-delimited field holding `body` (an encoded message).
pub fn message(tag: u32, body: &[u8], out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(body.len() as u64, out);
    out.extend_from_slice(body);
}

/// The fields of a `Histogram` message: remote_write 1.0's (fields 1–16)
/// and 2.0's (the same, plus `start_timestamp` = 17, left out when 0, so
/// 1.0 passes 0). `timestamp` is the sample's: the point's time in the
/// stored record, whatever the histogram's own field says.
pub fn histogram(h: &Histogram, timestamp: i64, start_timestamp: i64, out: &mut Vec<u8>) {
    use histogram::{Count, ZeroCount};
    // A oneof member is written whenever it is set, even when zero (its
    // presence says integer or float histogram).
    match h.count {
        Some(Count::CountInt(n)) => encoding::uint64::encode(1, &n, out),
        Some(Count::CountFloat(f)) => encoding::double::encode(2, &f, out),
        None => {}
    }
    double(3, h.sum, out);
    if h.schema != 0 {
        encoding::sint32::encode(4, &h.schema, out);
    }
    double(5, h.zero_threshold, out);
    match h.zero_count {
        Some(ZeroCount::ZeroCountInt(n)) => encoding::uint64::encode(6, &n, out),
        Some(ZeroCount::ZeroCountFloat(f)) => encoding::double::encode(7, &f, out),
        None => {}
    }
    for span in &h.negative_spans {
        encoding::message::encode(8, span, out);
    }
    encoding::sint64::encode_packed(9, &h.negative_deltas, out);
    // Packed doubles are written as their bits: a -0.0 count keeps its sign.
    encoding::double::encode_packed(10, &h.negative_counts, out);
    for span in &h.positive_spans {
        encoding::message::encode(11, span, out);
    }
    encoding::sint64::encode_packed(12, &h.positive_deltas, out);
    encoding::double::encode_packed(13, &h.positive_counts, out);
    if h.reset_hint != 0 {
        encoding::int32::encode(14, &h.reset_hint, out);
    }
    int64(15, timestamp, out);
    encoding::double::encode_packed(16, &h.custom_values, out);
    int64(17, start_timestamp, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::metric::BucketSpan;
    use prost::Message;

    fn int_histogram() -> Histogram {
        Histogram {
            count: Some(histogram::Count::CountInt(12)),
            sum: 18.4,
            schema: -3,
            zero_threshold: 1e-128,
            zero_count: Some(histogram::ZeroCount::ZeroCountInt(0)),
            negative_spans: vec![BucketSpan {
                offset: -2,
                length: 2,
            }],
            negative_deltas: vec![1, -1],
            negative_counts: vec![],
            positive_spans: vec![
                BucketSpan {
                    offset: 0,
                    length: 2,
                },
                BucketSpan {
                    offset: 3,
                    length: 1,
                },
            ],
            positive_deltas: vec![2, 3, -4],
            positive_counts: vec![],
            reset_hint: histogram::ResetHint::No as i32,
            timestamp: 0,
            custom_values: vec![],
            start_timestamp: 0,
        }
    }

    /// Without a negative zero, the bytes are prost's own.
    #[test]
    fn a_histogram_is_written_as_prost_writes_it() {
        let mut h = int_histogram();
        let mut out = Vec::new();
        histogram(&h, 1_700_000_000_000, 1_600_000_000_000, &mut out);
        h.timestamp = 1_700_000_000_000;
        h.start_timestamp = 1_600_000_000_000;
        assert_eq!(out, h.encode_to_vec());

        let f = Histogram {
            count: Some(histogram::Count::CountFloat(0.0)),
            zero_count: Some(histogram::ZeroCount::ZeroCountFloat(0.0)),
            schema: -53,
            positive_spans: vec![BucketSpan {
                offset: 0,
                length: 3,
            }],
            positive_counts: vec![0.0, f64::NAN, 2.5],
            custom_values: vec![0.5, 1.0],
            reset_hint: histogram::ResetHint::Gauge as i32,
            ..Histogram::default()
        };
        let mut out = Vec::new();
        histogram(&f, 0, 0, &mut out);
        assert_eq!(out, f.encode_to_vec());
    }

    #[test]
    fn negative_zeros_keep_their_sign() {
        let h = Histogram {
            count: Some(histogram::Count::CountFloat(-0.0)),
            sum: -0.0,
            zero_threshold: -0.0,
            zero_count: Some(histogram::ZeroCount::ZeroCountFloat(-0.0)),
            positive_spans: vec![BucketSpan {
                offset: 0,
                length: 1,
            }],
            positive_counts: vec![-0.0],
            ..Histogram::default()
        };
        let mut out = Vec::new();
        histogram(&h, 5, 0, &mut out);
        let back = Histogram::decode(out.as_slice()).unwrap();
        let neg = (-0.0f64).to_bits();
        assert_eq!(back.sum.to_bits(), neg);
        assert_eq!(back.zero_threshold.to_bits(), neg);
        assert_eq!(back.positive_counts[0].to_bits(), neg);
        assert!(matches!(back.count, Some(histogram::Count::CountFloat(c)) if c.to_bits() == neg));
        assert_eq!(back.timestamp, 5);
        let mut zero = Vec::new();
        double(1, 0.0, &mut zero);
        assert!(zero.is_empty(), "+0.0 is left out, as protobuf does");
    }
}
