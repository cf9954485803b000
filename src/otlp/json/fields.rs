//! How the OTLP JSON mapping writes each kind of field: numbers that may be
//! strings, doubles that may be `"NaN"`, enums that may be names, and
//! `null` for the default.

use serde::de::{self, Deserializer};
use serde::Deserialize;

use crate::record::value::NORMAL_NAN;
use opentelemetry_proto::tonic::metrics::v1 as metrics;

/// A number field as the protobuf JSON mapping writes it: a JSON number,
/// or a string holding one (how 64-bit integers are always written).
#[derive(Debug)]
enum Num {
    U(u64),
    I(i64),
    F(f64),
    S(String),
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Num, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Num;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number or a string holding one")
            }
            fn visit_u64<E>(self, v: u64) -> Result<Num, E> {
                Ok(Num::U(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Num, E> {
                Ok(Num::I(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Num, E> {
                Ok(Num::F(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Num, E> {
                Ok(Num::S(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl Num {
    /// An integer of any width; floats only when they are whole.
    fn integer(&self) -> Option<i128> {
        match self {
            Num::U(v) => Some(*v as i128),
            Num::I(v) => Some(*v as i128),
            Num::F(v) if v.fract() == 0.0 && v.abs() < 1.8e19 => Some(*v as i128),
            Num::F(_) => None,
            Num::S(s) => s.trim().parse().ok(),
        }
    }

    fn float(&self) -> Option<f64> {
        match self {
            Num::U(v) => Some(*v as f64),
            Num::I(v) => Some(*v as f64),
            Num::F(v) => Some(*v),
            Num::S(s) => match s.trim() {
                // No bits in the text: Prometheus' NaN, which is stored as "NaN".
                "NaN" => Some(f64::from_bits(NORMAL_NAN)),
                "Infinity" => Some(f64::INFINITY),
                "-Infinity" => Some(f64::NEG_INFINITY),
                other => other.parse().ok(),
            },
        }
    }
}

pub(super) fn int<'de, D: Deserializer<'de>, T: TryFrom<i128>>(d: D) -> Result<T, D::Error> {
    let n = Option::<Num>::deserialize(d)?;
    let Some(n) = n else {
        return T::try_from(0).map_err(|_| de::Error::custom("no default"));
    };
    n.integer()
        .and_then(|i| T::try_from(i).ok())
        .ok_or_else(|| {
            de::Error::custom(format!(
                "{n:?} is not an integer of {} bits",
                std::mem::size_of::<T>() * 8
            ))
        })
}

pub(super) fn opt_int<'de, D: Deserializer<'de>, T: TryFrom<i128>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    int(d).map(Some)
}

pub(super) fn float<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    opt_float(d).map(Option::unwrap_or_default)
}

pub(super) fn opt_float<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    match Option::<Num>::deserialize(d)? {
        None => Ok(None),
        Some(n) => n
            .float()
            .map(Some)
            .ok_or_else(|| de::Error::custom(format!("{n:?} is not a double"))),
    }
}

/// A repeated field; `null` is empty.
pub(super) fn list<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

pub(super) fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

pub(super) fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or_default())
}

/// An enum: its number, or its name.
pub(super) fn temporality<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    match Option::<Num>::deserialize(d)? {
        None => Ok(0),
        Some(Num::S(s)) if metrics::AggregationTemporality::from_str_name(&s).is_some() => {
            Ok(metrics::AggregationTemporality::from_str_name(&s).map_or(0, |t| t as i32))
        }
        Some(n) => n
            .integer()
            .and_then(|i| i32::try_from(i).ok())
            .ok_or_else(|| de::Error::custom(format!("{n:?} is not an aggregation temporality"))),
    }
}

/// Elements of a repeated 64-bit field, each a number or a string.
struct U64(u64);
impl<'de> Deserialize<'de> for U64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<U64, D::Error> {
        int(d).map(U64)
    }
}

struct F64(f64);
impl<'de> Deserialize<'de> for F64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<F64, D::Error> {
        float(d).map(F64)
    }
}

pub(super) fn u64s<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    Ok(list::<D, U64>(d)?.into_iter().map(|v| v.0).collect())
}

pub(super) fn f64s<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    Ok(list::<D, F64>(d)?.into_iter().map(|v| v.0).collect())
}
