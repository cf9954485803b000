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
//! Names and labels are escaped as InfluxDB's parser reads them back
//! (`crate::influx`'s writer: a backslash before each delimiter, every
//! other backslash as it is, so `C:\share` arrives as `C:\share`). A series
//! line protocol cannot carry as it is (a label value ending in a
//! backslash, a newline in a name or label, a metric name starting with
//! `#`), or that InfluxDB 1.6 would file under another name, is
//! dead-lettered with the reason, judged once per series.
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
        if !sample.value.is_finite() {
            return Some("InfluxDB cannot store NaN or infinite values".to_string());
        }
        // Judged once per series: an empty key is a series with no form.
        if sample.series.encoded("influx", series_key).is_empty() {
            return unsendable(&key_of(&sample.series));
        }
        None
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
            tenant: None,
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

/// `measurement,tag=value,…` for a series, escaped as line protocol
/// wants; empty for a series [`unsendable`] refuses (never sent: `refuse`
/// dead-letters its samples first).
fn series_key(series: &Series) -> Vec<u8> {
    let key = key_of(series);
    if unsendable(&key).is_some() {
        return Vec::new();
    }
    key.to_string().into_bytes()
}

fn key_of(series: &Series) -> Line<'_> {
    Line {
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
    }
}

/// Why a series cannot be sent so that InfluxDB reads back its name and
/// labels as they are, if it cannot: what line protocol has no form for
/// (a name or label ending in a backslash, a newline, …), and a metric
/// name with a backslash right before `,` space `=` or `"`, which
/// InfluxDB 1.6 accepts and then loses: its index unescapes the name a
/// second time (`CreateMeasurementIndexIfNotExists`), files it under
/// another name, and no query finds the points.
fn unsendable(key: &Line<'_>) -> Option<String> {
    if let Some(why) = key.unwritable() {
        return Some(format!("no line-protocol form: {why}"));
    }
    let name = key.measurement.as_bytes();
    let lost = name
        .windows(2)
        .any(|w| w[0] == b'\\' && matches!(w[1], b',' | b' ' | b'=' | b'"'));
    lost.then(|| {
        format!(
            "metric name {:?}: InfluxDB 1.6 files a measurement with a backslash before \
             ',', ' ', '=' or '\"' under another name, where no query finds it",
            key.measurement
        )
    })
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

    /// What InfluxDB's parser (and ours, which follows it) reads back
    /// from a body is the series as it was: backslashes and all.
    #[test]
    fn bodies_read_back_as_the_series_were() {
        let influx = Influx {
            precision: Precision::Nanoseconds,
        };
        let series: &[(&str, &[(&str, &str)])] = &[
            ("win_disk", &[("path", r"C:\\share\\x"), ("drive", r"D:\x")]),
            ("cpu load", &[("host", r"two\\ words"), ("k=1", "a,b c=d")]),
            (r#"q"x=1,y"#, &[("t", r#"a"b"#), ("e", "=x")]),
            ("é\tx", &[(r"k\,", r"v\\,\ ")]),
        ];
        let samples: Vec<Sample> = series
            .iter()
            .enumerate()
            .map(|(i, (name, labels))| {
                Sample::new(name, labels, Value::Int(i as i64), 7, MetricType::Gauge, 0)
            })
            .collect();
        for s in &samples {
            assert_eq!(influx.refuse(s), None, "{s:?}");
        }
        let body = influx.encode(&samples).expect("a body");
        let parsed = crate::influx::parse(&body.bytes);
        assert_eq!(parsed.errors().count(), 0, "{:?}", parsed.lines);
        let got: Vec<(String, Vec<(String, String)>)> = parsed
            .ok()
            .map(|l| {
                assert_eq!(l.fields.len(), 1);
                assert_eq!(l.timestamp, Some(7_000_000));
                let tags = l.tags.iter().map(|(k, v)| (k.to_string(), v.to_string()));
                (l.measurement.to_string(), tags.collect())
            })
            .collect();
        let want: Vec<(String, Vec<(String, String)>)> = samples
            .iter()
            .map(|s| (s.name().to_string(), s.labels().to_vec()))
            .collect();
        assert_eq!(got, want);
    }

    /// A series line protocol cannot carry as it is, or that InfluxDB 1.6
    /// would file under another name, is refused with the reason, and so
    /// never written into a body.
    #[test]
    fn series_without_a_line_protocol_form_are_refused() {
        let influx = Influx {
            precision: Precision::Milliseconds,
        };
        for (name, labels, why) in [
            ("m", vec![("path", r"C:\")], "ends in a backslash"),
            (r"m\", vec![], "ends in a backslash"),
            ("m", vec![(r"k\", "v")], "ends in a backslash"),
            ("m", vec![("k", "a\nb")], "newline"),
            ("#m", vec![], "comment"),
            (r"a\,b", vec![], "another name"),
            (r"a\=b", vec![], "another name"),
        ] {
            let s = Sample::new(name, &labels, Value::Float(1.0), 1, MetricType::Gauge, 0);
            let got = influx.refuse(&s).unwrap_or_default();
            assert!(
                got.contains(why),
                "{name:?} {labels:?}: {got:?} lacks {why:?}"
            );
        }
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
