//! InfluxDB line protocol out, to `/write` (1.x: `db`) or `/api/v2/write`
//! (2.x: `bucket`, `org`), with the precision in the URL.
//!
//! # Name mapping
//! A stored metric `m{k="v"} = x @t` becomes the point `m,k=v value=x t`:
//! measurement = the metric name, one field named `value`, tags = the tags.
//! It does not try to undo the `<measurement>_<field>` names the
//! line-protocol receiver makes: a store fed by metricstream sees one
//! measurement per metric name, the shape Prometheus-style data has.
//! Floats are sent as floats, integers as `i` (unsigned ones over i64 as
//! `u`), so a metric that changes between float and integer values is a
//! field type conflict InfluxDB refuses (dead-lettered with its reason).
//! NaN and ±Inf (Prometheus' staleness markers included) cannot be stored
//! in InfluxDB: dead-lettered without being sent.
//!
//! # Native histograms and exemplars: dead-lettered
//! Line protocol has neither. A histogram point is never sent as a float
//! of its count, nor an exemplar as a float of its value (a store would
//! then hold numbers that were never samples); both go to the dead-letter
//! file without being sent ([`Sink::refuse`]), the histogram whole in its
//! JSON shape, the exemplar with its labels, so nothing is dropped and an
//! operator can replay them into a store that takes them.
//!
//! Why not `le` bucket series (as the OTLP receiver turns an exponential
//! histogram into)? It is not exact: a native histogram's buckets change
//! from one point to the next (sparse spans, schema changes), so the
//! cumulative `le` series would appear and vanish point by point; the zero
//! bucket's width, negative buckets, the reset hint and a float
//! histogram's counts have no `le` form; and a reader could no longer tell
//! the result from a classic histogram. What InfluxDB would hold is a
//! different thing, not the histogram.
//!
//! InfluxDB overwrites a point with the same series and timestamp (the
//! last write wins), so a replay of what it already has succeeds: nothing
//! is ever refused as a duplicate.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write as _;

use super::{Body, EncodeError, Sink};
use crate::influx::{FieldValue, Line, Precision};
use crate::record::{Series, Value};
use crate::sink::Sample;

/// The dead-letter reasons of the points line protocol has no form for.
pub const NO_HISTOGRAMS: &str =
    "InfluxDB line protocol has no native histograms (not sent as a float of its count)";
pub const NO_EXEMPLARS: &str = "InfluxDB line protocol has no exemplars";

pub struct Influx {
    /// Timestamps' unit in the request (the URL's `precision`).
    pub precision: Precision,
}

/// The write URL: `url` with `db` (1.x `/write`) or `bucket` and `org`
/// (`/api/v2/write`) and `precision` added, unless it already has them.
pub fn write_url(url: &str, db: Option<&str>, org: Option<&str>, precision: Precision) -> String {
    let v2 = url.contains("/api/v2/write");
    let mut out = url.to_string();
    let mut add = |key: &str, value: &str| {
        if !out.contains(&format!("{key}=")) {
            out.push(if out.contains('?') { '&' } else { '?' });
            let _ = write!(out, "{key}={}", encode(value));
        }
    };
    if let Some(db) = db {
        add(if v2 { "bucket" } else { "db" }, db);
    }
    if let (true, Some(org)) = (v2, org) {
        add("org", org);
    }
    add("precision", precision.as_str());
    out
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Sink for Influx {
    fn name(&self) -> &'static str {
        "influx"
    }

    fn refuse(&self, sample: &Sample) -> Option<String> {
        if sample.histogram().is_some() {
            return Some(NO_HISTOGRAMS.to_string());
        }
        if sample.exemplar().is_some() {
            return Some(NO_EXEMPLARS.to_string());
        }
        (!sample.value.is_finite())
            .then(|| "InfluxDB cannot store NaN or infinite values".to_string())
    }

    fn encode(&self, samples: &[Sample]) -> Result<Body, EncodeError> {
        let mut text = Vec::with_capacity(samples.len() * 64);
        for s in samples {
            // The series key (measurement and tags, escaped) is made once
            // per series; only the value and the time are formatted here.
            text.extend_from_slice(&s.series.encoded("influx", series_key));
            writeln!(
                text,
                " value={} {}",
                field(s.value),
                self.precision.of_ms(s.timestamp)
            )
            .map_err(|e| EncodeError(format!("line protocol: {e}")))?;
        }
        Ok(Body {
            content_type: "text/plain; charset=utf-8",
            encoding: None,
            headers: &[],
            bytes: text.into(),
        })
    }

    fn already_stored(&self, _status: u16, _reason: &str) -> bool {
        false
    }
}

fn field(value: Value) -> FieldValue<'static> {
    match value {
        Value::Float(v) => FieldValue::Float(v),
        Value::Int(v) => FieldValue::Int(v),
        Value::UInt(v) => i64::try_from(v).map_or(FieldValue::UInt(v), FieldValue::Int),
    }
}

/// `measurement,tag=value,…` for a series, escaped as line protocol wants.
fn series_key(series: &Series) -> Vec<u8> {
    let key = Line {
        measurement: Cow::Borrowed(&series.name),
        tags: series
            .labels
            .iter()
            // InfluxDB refuses an empty tag value; absent means the same.
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (Cow::Borrowed(k.as_str()), Cow::Borrowed(v.as_str())))
            .collect(),
        fields: Vec::new(),
        timestamp: None,
    };
    key.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::MetricType;

    #[test]
    fn points_are_escaped_and_typed() {
        let s = Sample::new(
            "cpu load",
            &[("empty", ""), ("host", "a,b")],
            Value::Int(-3),
            1_500,
            MetricType::Gauge,
            0,
        );
        let body = Influx {
            precision: Precision::Milliseconds,
        }
        .encode(std::slice::from_ref(&s))
        .unwrap();
        assert_eq!(&body.bytes[..], b"cpu\\ load,host=a\\,b value=-3i 1500\n");
        let f = Sample {
            value: Value::Float(2.0),
            ..s.clone()
        };
        let body = Influx {
            precision: Precision::Nanoseconds,
        }
        .encode(&[f])
        .unwrap();
        assert_eq!(
            &body.bytes[..],
            b"cpu\\ load,host=a\\,b value=2.0 1500000000\n"
        );
        let nan = Sample {
            value: Value::Float(f64::NAN),
            ..s
        };
        assert!(Influx {
            precision: Precision::Milliseconds
        }
        .refuse(&nan)
        .is_some());
    }

    #[test]
    fn histograms_and_exemplars_are_refused_whatever_their_value() {
        let influx = Influx {
            precision: Precision::Milliseconds,
        };
        let points = crate::sink::store::test_points::mixed();
        let refused: Vec<Option<String>> = points.iter().map(|s| influx.refuse(s)).collect();
        for (s, why) in points.iter().zip(&refused) {
            let want = if s.histogram().is_some() {
                Some(NO_HISTOGRAMS)
            } else if s.exemplar().is_some() {
                Some(NO_EXEMPLARS)
            } else if !s.value.is_finite() {
                Some("InfluxDB cannot store NaN or infinite values")
            } else {
                None
            };
            assert_eq!(why.as_deref(), want, "{s:?}");
        }
        // Two histograms, two exemplars, a staleness marker; finite ones go.
        assert_eq!(refused.iter().flatten().count(), 5);
        // A histogram with a finite count, an exemplar with a finite value:
        // refused for what they are, not for their value.
        assert!(points
            .iter()
            .filter(|s| !s.is_plain())
            .all(|s| s.value.is_finite() && influx.refuse(s).is_some()));
    }

    #[test]
    fn urls() {
        assert_eq!(
            write_url(
                "http://i:8086/write",
                Some("m db"),
                None,
                Precision::Milliseconds
            ),
            "http://i:8086/write?db=m%20db&precision=ms"
        );
        assert_eq!(
            write_url(
                "http://i/api/v2/write?org=o",
                Some("b"),
                Some("x"),
                Precision::Seconds
            ),
            "http://i/api/v2/write?org=o&bucket=b&precision=s"
        );
    }
}
