//! A metric's value in the stored JSON. JSON has no NaN or infinities, but
//! remote_write carries them as real values (Prometheus' staleness marker is
//! a NaN with its own bits), so they are stored as strings, bit-exact:
//!
//! | value | stored as |
//! |---|---|
//! | finite | a JSON number (shortest form that reads back to the same f64) |
//! | +∞ / −∞ | `"+Inf"` / `"-Inf"` (Prometheus' spelling) |
//! | Prometheus' staleness marker (bits `0x7ff0000000000002`) | `"StaleNaN"` |
//! | Prometheus' NaN (bits `0x7ff8000000000001`) | `"NaN"` |
//! | any other NaN | `"NaN:0x"` + its 16 hex digits |
//!
//! `POST /metrics` still takes only finite numbers: a string there is an
//! error that says the field takes an f64.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Serializer;

/// Prometheus' staleness marker (`value.StaleNaN`).
pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;
/// The NaN Prometheus writes for a scraped "NaN" (`value.NormalNaN`).
pub const NORMAL_NAN: u64 = 0x7ff8_0000_0000_0001;

pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_finite() {
        return s.serialize_f64(*v);
    }
    if v.is_infinite() {
        return s.serialize_str(if *v > 0.0 { "+Inf" } else { "-Inf" });
    }
    match v.to_bits() {
        STALE_NAN => s.serialize_str("StaleNaN"),
        NORMAL_NAN => s.serialize_str("NaN"),
        bits => s.serialize_str(&format!("NaN:0x{bits:016x}")),
    }
}

/// The stored form back to the f64, bit-exact; None if it is not one.
pub fn parse(text: &str) -> Option<f64> {
    match text {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "StaleNaN" => Some(f64::from_bits(STALE_NAN)),
        "NaN" => Some(f64::from_bits(NORMAL_NAN)),
        other => {
            let hex = other.strip_prefix("NaN:0x")?;
            let v = f64::from_bits(u64::from_str_radix(hex, 16).ok()?);
            v.is_nan().then_some(v)
        }
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    struct Value;
    impl Visitor<'_> for Value {
        type Value = f64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("f64")
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
            Ok(v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
            parse(v).ok_or_else(|| E::invalid_type(de::Unexpected::Str(v), &self))
        }
    }
    d.deserialize_any(Value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct V(#[serde(with = "super")] f64);

    #[test]
    fn every_value_round_trips_bit_exact() {
        let values = [
            0.0,
            -0.0,
            1.5,
            -2.25e-300,
            f64::MAX,
            f64::MIN_POSITIVE,
            9_007_199_254_740_993.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::from_bits(STALE_NAN),
            f64::from_bits(NORMAL_NAN),
            f64::NAN,
            f64::from_bits(0xfff8_0000_0000_1234),
        ];
        for v in values {
            let text = serde_json::to_string(&V(v)).unwrap();
            let back: V = serde_json::from_str(&text).unwrap();
            assert_eq!(back.0.to_bits(), v.to_bits(), "{v} via {text}");
        }
        assert_eq!(
            serde_json::to_string(&V(f64::from_bits(STALE_NAN))).unwrap(),
            r#""StaleNaN""#
        );
        assert_eq!(
            serde_json::to_string(&V(f64::NEG_INFINITY)).unwrap(),
            r#""-Inf""#
        );
    }

    #[test]
    fn other_strings_are_refused_as_not_an_f64() {
        for bad in [r#""x""#, r#""NaN:0x0000000000000001""#, r#""inf""#] {
            let e = serde_json::from_str::<V>(bad).err().unwrap().to_string();
            assert!(e.starts_with("invalid type: string"), "{bad}: {e}");
            assert!(e.contains("expected f64"), "{bad}: {e}");
        }
    }
}
