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
//! | an integer (InfluxDB `12i` / `12u`) | a JSON integer, exact over 2^53 |
//!
//! `POST /metrics` still takes only finite numbers: a string there is an
//! error that says the field takes an f64, and an integer is stored as the
//! float it was always stored as.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Serializer;

/// Prometheus' staleness marker (`value.StaleNaN`).
pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;
/// The NaN Prometheus writes for a scraped "NaN" (`value.NormalNaN`).
pub const NORMAL_NAN: u64 = 0x7ff8_0000_0000_0001;

/// A stored value: a float, or an integer kept exact (InfluxDB's `i` and
/// `u` fields; an int64 over 2^53 must not be rounded).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    Float(f64),
    Int(i64),
    UInt(u64),
}

impl Value {
    /// The value as a float (rounded for integers over 2^53).
    pub fn as_f64(self) -> f64 {
        match self {
            Value::Float(v) => v,
            Value::Int(v) => v as f64,
            Value::UInt(v) => v as f64,
        }
    }

    pub fn is_finite(self) -> bool {
        self.as_f64().is_finite()
    }

    /// Bit-exact equality (NaN payloads included), for tests and checks.
    pub fn same(self, other: Value) -> bool {
        match (self, other) {
            (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
            (a, b) => a == b,
        }
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

impl serde::Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Value::Float(v) => serialize(&v, s),
            Value::Int(v) => s.serialize_i64(v),
            Value::UInt(v) => s.serialize_u64(v),
        }
    }
}

/// A JSON integer reads back as an integer (`Int` when it fits an i64,
/// else `UInt`), a JSON float or one of the strings above as a float.
impl<'de> serde::Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        struct Any;
        impl Visitor<'_> for Any {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("f64")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
                Ok(Value::Float(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
                Ok(Value::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
                Ok(i64::try_from(v).map_or(Value::UInt(v), Value::Int))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
                let f = parse(v).ok_or_else(|| E::invalid_type(de::Unexpected::Str(v), &self))?;
                Ok(Value::Float(f))
            }
        }
        d.deserialize_any(Any)
    }
}

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
    fn integers_round_trip_exactly() {
        for v in [
            Value::Int(i64::MIN),
            Value::Int(-1),
            Value::Int(9_007_199_254_740_993),
            Value::Int(i64::MAX),
            Value::UInt(u64::MAX),
            Value::Float(3.0),
            Value::Float(f64::from_bits(STALE_NAN)),
        ] {
            let text = serde_json::to_string(&v).unwrap();
            let back: Value = serde_json::from_str(&text).unwrap();
            assert!(back.same(v), "{v:?} via {text} came back as {back:?}");
        }
        assert_eq!(
            serde_json::to_string(&Value::Int(9_007_199_254_740_993)).unwrap(),
            "9007199254740993"
        );
        assert_eq!(serde_json::to_string(&Value::Float(3.0)).unwrap(), "3.0");
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
