//! What is stored of one data point, whichever protocol it came in by: a
//! float (or exact integer) sample, a native histogram sample, or an
//! exemplar, with its series (name and tags), type and, where the sender
//! gave them, unit and help. Protocols map what they decode into these;
//! the record writers (`json.rs`, `compact.rs`) store them.
//!
//! Its serde form is version 1 of the stored record (the JSON batch), and
//! also what `POST /metrics` sends (the C++ system's format).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use super::value::Value;
pub use prompb::record::{histogram, BucketSpan, Histogram};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    Summary,
    /// The sender did not say (remote_write without metadata). Never
    /// accepted from `POST /metrics`, whose `type` is required.
    Unknown,
    /// Prometheus' and OpenMetrics' other types, as remote_write metadata
    /// names them; like `Unknown`, never accepted from `POST /metrics`.
    GaugeHistogram,
    Info,
    StateSet,
}

/// The types `POST /metrics` takes (its error messages list them).
pub const REQUEST_TYPES: &[&str] = &["counter", "gauge", "histogram", "summary"];

impl MetricType {
    /// The type a stored or sent name stands for.
    pub fn from_name(s: &str) -> Option<MetricType> {
        match s {
            "counter" => Some(MetricType::Counter),
            "gauge" => Some(MetricType::Gauge),
            "histogram" => Some(MetricType::Histogram),
            "summary" => Some(MetricType::Summary),
            // Only stored records say these; `POST /metrics` refuses them.
            "unknown" => Some(MetricType::Unknown),
            "gaugehistogram" => Some(MetricType::GaugeHistogram),
            "info" => Some(MetricType::Info),
            "stateset" => Some(MetricType::StateSet),
            _ => None,
        }
    }

    /// The name stored records and `consume` print.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::Summary => "summary",
            MetricType::Unknown => "unknown",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
        }
    }

    /// Whether `POST /metrics` takes this type.
    pub fn in_requests(self) -> bool {
        REQUEST_TYPES.contains(&self.as_str())
    }
}

/// By hand, because serde_json reads a derived enum from a number as a
/// syntax error ("expected value"); this says what the field takes.
impl<'de> Deserialize<'de> for MetricType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<MetricType, D::Error> {
        struct TypeName;
        impl Visitor<'_> for TypeName {
            type Value = MetricType;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("one of `counter`, `gauge`, `histogram`, `summary`")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<MetricType, E> {
                MetricType::from_name(s).ok_or_else(|| E::unknown_variant(s, REQUEST_TYPES))
            }
        }
        d.deserialize_str(TypeName)
    }
}

/// One metric as sent and as stored. Timestamps are filled in before storing.
#[derive(Debug, Serialize, Deserialize)]
pub struct Metric<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    pub value: Value,
    #[serde(rename = "type")]
    pub kind: MetricType,
    #[serde(default, borrow)]
    pub tags: BTreeMap<Cow<'a, str>, Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<u64>,
    /// The same instant in nanoseconds since the epoch, only where the
    /// sender gave it finer than a millisecond (line protocol in ns or us
    /// precision, OTLP): `timestamp` stays the millisecond everyone reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_ns: Option<u64>,
    /// When a counter (or histogram, summary) started counting, ms since the
    /// epoch: remote_write 2.0's created timestamp, where the sender sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_timestamp: Option<u64>,
    /// The series' unit and help text, where the sender gave them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<Cow<'a, str>>,
    /// A native histogram sample: `value` is then its count (so a reader
    /// that knows nothing of histograms still sees a number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram: Option<Box<HistogramPoint>>,
    /// An exemplar of the series: `value` and `timestamp` are the
    /// exemplar's, these its own labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exemplar: Option<Box<ExemplarPoint>>,
}

/// A native histogram sample: Prometheus' own message (integer or float
/// counts, exponential or custom buckets), its timestamp the metric's.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramPoint(pub Histogram);

/// An exemplar of the metric's series: its own labels (a trace id, mostly),
/// its value and time being the metric's `value` and `timestamp`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExemplarPoint {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// What a format spends beside a metric's strings, for [`Metric::size`].
#[derive(Clone, Copy, Debug)]
pub struct Overheads {
    /// Per string (quotes, separators, a length).
    pub per_string: usize,
    /// Per number of a histogram (a bucket, a bound, a span).
    pub per_number: usize,
    /// Per point (value, timestamp, type, keys).
    pub per_point: usize,
    /// Per histogram beside its numbers.
    pub per_histogram: usize,
}

impl Metric<'_> {
    /// The bytes this metric takes in a record, about, given what the
    /// format spends beside the strings (records are cut by this before
    /// they are made).
    pub fn size(&self, o: Overheads) -> usize {
        let pairs = |p: &mut dyn Iterator<Item = (usize, usize)>| -> usize {
            p.map(|(k, v)| k + v + 2 * o.per_string).sum()
        };
        let tags = pairs(&mut self.tags.iter().map(|(k, v)| (k.len(), v.len())));
        let histogram = self.histogram.as_ref().map_or(0, |h| {
            let h = &h.0;
            let numbers = h.positive_deltas.len()
                + h.negative_deltas.len()
                + h.positive_counts.len()
                + h.negative_counts.len()
                + h.custom_values.len()
                + h.positive_spans.len()
                + h.negative_spans.len();
            o.per_histogram + o.per_number * numbers
        });
        let exemplar = self.exemplar.as_ref().map_or(0, |e| {
            pairs(&mut e.labels.iter().map(|(k, v)| (k.len(), v.len()))) + o.per_point
        });
        let meta = [&self.unit, &self.help]
            .iter()
            .map(|t| t.as_ref().map_or(0, |t| t.len() + o.per_string))
            .sum::<usize>();
        self.name.len() + tags + o.per_point + histogram + exemplar + meta
    }

    /// A float sample (the common case) with nothing else set.
    pub fn sample<'a>(
        name: impl Into<Cow<'a, str>>,
        value: Value,
        kind: MetricType,
        tags: BTreeMap<Cow<'a, str>, Cow<'a, str>>,
        timestamp: Option<u64>,
    ) -> Metric<'a> {
        Metric {
            name: name.into(),
            value,
            kind,
            tags,
            timestamp,
            timestamp_ns: None,
            created_timestamp: None,
            unit: None,
            help: None,
            histogram: None,
            exemplar: None,
        }
    }
}

/// A float as the stored JSON spells it (see [`super::value`]).
#[derive(Clone, Copy, Serialize, Deserialize)]
struct F(#[serde(with = "super::value")] f64);

/// The JSON form of a native histogram (docs/record.md): Prometheus'
/// fields by their names, spans as `[offset, length]` pairs, floats as the
/// stored JSON spells them (so NaN sums and staleness markers survive), and
/// `"float": true` for a float histogram (absolute counts) where an
/// integer one has deltas.
#[derive(Serialize, Deserialize)]
struct HistogramJson {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    float: bool,
    count: Value,
    sum: F,
    schema: i32,
    zero_threshold: F,
    zero_count: Value,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    negative_spans: Vec<(i32, u32)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    negative_deltas: Vec<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    negative_counts: Vec<F>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    positive_spans: Vec<(i32, u32)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    positive_deltas: Vec<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    positive_counts: Vec<F>,
    #[serde(default)]
    reset_hint: ResetHintJson,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    custom_values: Vec<F>,
    #[serde(default, skip_serializing_if = "is_zero")]
    start_timestamp: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

#[derive(Serialize, Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum ResetHintJson {
    #[default]
    Unknown,
    Yes,
    No,
    Gauge,
}

fn spans(s: &[BucketSpan]) -> Vec<(i32, u32)> {
    s.iter().map(|s| (s.offset, s.length)).collect()
}

fn unspans(s: Vec<(i32, u32)>) -> Vec<BucketSpan> {
    s.into_iter()
        .map(|(offset, length)| BucketSpan { offset, length })
        .collect()
}

fn floats(v: &[f64]) -> Vec<F> {
    v.iter().copied().map(F).collect()
}

fn unfloats(v: Vec<F>) -> Vec<f64> {
    v.into_iter().map(|f| f.0).collect()
}

impl Serialize for HistogramPoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use histogram::{Count, ResetHint, ZeroCount};
        let h = &self.0;
        let float = matches!(h.count, Some(Count::CountFloat(_)));
        // Integer counts as JSON integers: exact beyond 2^53.
        let count = match h.count {
            Some(Count::CountInt(n)) => Value::UInt(n),
            Some(Count::CountFloat(f)) => Value::Float(f),
            None => Value::UInt(0),
        };
        let zero_count = match h.zero_count {
            Some(ZeroCount::ZeroCountInt(n)) => Value::UInt(n),
            Some(ZeroCount::ZeroCountFloat(f)) => Value::Float(f),
            None => Value::UInt(0),
        };
        let reset_hint = match ResetHint::try_from(h.reset_hint) {
            Ok(ResetHint::Yes) => ResetHintJson::Yes,
            Ok(ResetHint::No) => ResetHintJson::No,
            Ok(ResetHint::Gauge) => ResetHintJson::Gauge,
            _ => ResetHintJson::Unknown,
        };
        HistogramJson {
            float,
            count,
            sum: F(h.sum),
            schema: h.schema,
            zero_threshold: F(h.zero_threshold),
            zero_count,
            negative_spans: spans(&h.negative_spans),
            negative_deltas: h.negative_deltas.clone(),
            negative_counts: floats(&h.negative_counts),
            positive_spans: spans(&h.positive_spans),
            positive_deltas: h.positive_deltas.clone(),
            positive_counts: floats(&h.positive_counts),
            reset_hint,
            custom_values: floats(&h.custom_values),
            start_timestamp: h.start_timestamp,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for HistogramPoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<HistogramPoint, D::Error> {
        use histogram::{Count, ResetHint, ZeroCount};
        let j = HistogramJson::deserialize(d)?;
        let whole = |v: Value, what: &str| match v {
            Value::UInt(n) => Ok(n),
            Value::Int(n) if n >= 0 => Ok(n as u64),
            _ => Err(de::Error::custom(format!(
                "histogram {what}: an integer histogram's count is a whole number \
                 (a float histogram says \"float\":true)"
            ))),
        };
        let (count, zero_count) = if j.float {
            (
                Count::CountFloat(j.count.as_f64()),
                ZeroCount::ZeroCountFloat(j.zero_count.as_f64()),
            )
        } else {
            (
                Count::CountInt(whole(j.count, "count")?),
                ZeroCount::ZeroCountInt(whole(j.zero_count, "zero_count")?),
            )
        };
        let reset_hint = match j.reset_hint {
            ResetHintJson::Unknown => ResetHint::Unspecified,
            ResetHintJson::Yes => ResetHint::Yes,
            ResetHintJson::No => ResetHint::No,
            ResetHintJson::Gauge => ResetHint::Gauge,
        };
        Ok(HistogramPoint(Histogram {
            count: Some(count),
            sum: j.sum.0,
            schema: j.schema,
            zero_threshold: j.zero_threshold.0,
            zero_count: Some(zero_count),
            negative_spans: unspans(j.negative_spans),
            negative_deltas: j.negative_deltas,
            negative_counts: unfloats(j.negative_counts),
            positive_spans: unspans(j.positive_spans),
            positive_deltas: j.positive_deltas,
            positive_counts: unfloats(j.positive_counts),
            reset_hint: reset_hint as i32,
            timestamp: 0,
            custom_values: unfloats(j.custom_values),
            start_timestamp: j.start_timestamp,
        }))
    }
}
