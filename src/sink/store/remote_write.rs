//! Prometheus remote_write 1.0 out: a snappy-compressed (block format)
//! `prometheus.WriteRequest`, with a `MetricMetadata` per family the batch
//! has a type (or a unit or help) for, so Prometheus 2.x, VictoriaMetrics,
//! Mimir and Thanos receive it. A tag becomes a label, the name `__name__`;
//! integers are sent as the nearest f64 (remote_write has only floats).
//! A native histogram point goes in its series' `histograms` (1.0's
//! message has no start timestamp: 2.0 added it), an exemplar in its
//! `exemplars`: never as a float sample of the count or value they carry.
//!
//! # How Prometheus 2.42 answers what it already has (found by experiment)
//! It appends a request in one transaction and rolls it all back on the
//! first sample it refuses, answering with that error alone:
//! - the same timestamp and value as the series' newest sample: accepted
//!   silently (204);
//! - the same timestamp, another value: 400 `duplicate sample for timestamp`;
//! - older than the series' newest sample: 400 `out of order sample`, also
//!   when it holds exactly that sample;
//! - older than the head block allows (about an hour behind its newest
//!   sample): 400 `out of bounds`;
//! - labels not unique: 500 (a bug of ours if ever, retried).
//!
//! Native histograms (with `--enable-feature=native-histograms`; without
//! it every histogram gets 500 `native histograms are disabled`, retried
//! as any 5xx until the store is configured for them): a histogram it
//! finds invalid (count below its buckets' sum, a negative bucket, spans
//! that do not match the buckets) is answered 500 too, with the reason.
//! No retry can change that, so [`INVALID_HISTOGRAM`] answers are taken
//! as refusals: the batch is split down to the histogram, which is
//! dead-lettered, instead of stalling its partition for ever.
//!
//! So a replay of samples the store already has answers `out of order
//! sample` (or `duplicate sample for timestamp` where a float's bits differ
//! from what an earlier write rounded; never with metricstream's exact
//! values). [`Sink::already_stored`] says so for those two reasons; the
//! delivery trusts it only for samples that may have been delivered before.

use std::collections::{BTreeMap, HashMap};

use prompb::v1::{metric_metadata::MetricType as Type, Label};
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};

use super::{wire, Body, EncodeError, Sink};
use crate::hash::Fx;
use crate::record::{MetricType, Series};
use crate::sink::delivery::retry::{self, Answer, Decision};
use crate::sink::Sample;

pub struct RemoteWrite;

const HEADERS: &[(&str, &str)] = &[("x-prometheus-remote-write-version", "0.1.0")];

impl Sink for RemoteWrite {
    fn name(&self) -> &'static str {
        "remote-write"
    }

    fn refuse(&self, _sample: &Sample) -> Option<String> {
        None
    }

    fn encode(&self, samples: &[Sample]) -> Result<Body, EncodeError> {
        let proto = encode_request(samples);
        snappy_body(&proto, "application/x-protobuf", HEADERS)
    }

    fn classify(&self, answer: &Answer) -> Decision {
        match answer {
            Answer::Status {
                status: status @ 500,
                body,
                ..
            } if INVALID_HISTOGRAM.iter().any(|m| body.contains(m)) => Decision::Refuse {
                status: *status,
                reason: body.clone(),
            },
            _ => retry::classify(answer),
        }
    }

    fn already_stored(&self, status: u16, reason: &str) -> bool {
        status == 400
            && (reason.contains("out of order sample")
                || reason.contains("duplicate sample for timestamp"))
    }
}

/// Prometheus' reasons (2.42 on; the custom bounds' from 3.x) for a native
/// histogram it can never store, which it answers with a 500.
pub const INVALID_HISTOGRAM: &[&str] = &[
    "histogram's observation count should",
    "histogram has a bucket whose observation count is negative",
    "histogram has a span whose offset is negative",
    "histogram spans specify different number of buckets",
    "histogram custom bounds",
];

/// A remote_write body (both versions): the protobuf, snappy block format.
/// Snappy takes at most ~3.7 GB; a bigger body is an error, never an
/// empty body (which a store could acknowledge with nothing stored).
pub fn snappy_body(
    proto: &[u8],
    content_type: &'static str,
    headers: &'static [(&'static str, &'static str)],
) -> Result<Body, EncodeError> {
    let bytes = snap::raw::Encoder::new()
        .compress_vec(proto)
        .map_err(|e| EncodeError(format!("snappy, {} bytes of protobuf: {e}", proto.len())))?;
    Ok(Body {
        content_type,
        encoding: Some("snappy"),
        headers,
        bytes: bytes.into(),
        tenant: None,
    })
}

/// The `WriteRequest` for `samples`, encoded by hand: the points of one
/// series in one `TimeSeries`, float samples in `samples`, exemplars in
/// `exemplars`, native histograms in `histograms`, each list in the
/// points' order; each series' labels are encoded once per series
/// ([`Series::encoded`]), not once per request. The bytes are what prost
/// makes of the same message (checked in the tests), except that a `-0.0`
/// keeps its sign.
pub fn encode_request(samples: &[Sample]) -> Vec<u8> {
    if samples.is_empty() {
        return Vec::new();
    }
    // Which series each sample belongs to (numbered in order of first
    // appearance), and how many samples each has.
    let mut number: Vec<u32> = Vec::with_capacity(samples.len());
    let mut series: Vec<(&Sample, usize)> = Vec::new();
    let mut index: HashMap<&Series, u32, Fx> = HashMap::default();
    let mut families: BTreeMap<&str, Family<'_>> = BTreeMap::new();
    let mut last: Option<(&Series, u32)> = None;
    for s in samples {
        // Samples of a series mostly come together: skip the map then.
        let i = match last {
            Some((prev, i)) if std::ptr::eq(prev, &*s.series) => i,
            _ => *index.entry(&s.series).or_insert_with(|| {
                series.push((s, 0));
                Family::note(&mut families, s);
                (series.len() - 1) as u32
            }),
        };
        if s.extra.is_some() {
            // Unit and help may come with any point of the family.
            Family::note(&mut families, s);
        }
        last = Some((&s.series, i));
        series[i as usize].1 += 1;
        number.push(i);
    }
    // The samples grouped by series, each group in the samples' order.
    let mut next: Vec<usize> = Vec::with_capacity(series.len());
    let mut at = 0;
    for (_, n) in &series {
        next.push(at);
        at += n;
    }
    let mut grouped: Vec<&Sample> = vec![&samples[0]; samples.len()];
    for (s, &i) in samples.iter().zip(&number) {
        grouped[next[i as usize]] = s;
        next[i as usize] += 1;
    }

    // Room for the whole request up front: a float sample is at most 24
    // bytes, each series' labels are known (and encoded once anyway). A
    // guess that falls short regrows the buffer several times per request.
    let label_bytes: usize = series
        .iter()
        .map(|(s, _)| s.series.encoded("remote-write", encode_labels).len() + 16)
        .sum();
    let mut out = Vec::with_capacity(samples.len() * 24 + label_bytes);
    let mut group = grouped.as_slice();
    // Exemplars of series that also carry histograms, in series of their
    // own after all the others: Prometheus (2.42 at least) adds a series'
    // exemplars before its histograms, so an exemplar of a series whose
    // first histograms are in the same TimeSeries finds no series yet and
    // is dropped (with a 204). In a later TimeSeries of the same labels it
    // finds the series the histograms made.
    let mut after: Vec<(std::borrow::Cow<'_, [u8]>, Vec<u8>)> = Vec::new();
    for (first, n) in &series {
        let (these, rest) = group.split_at(*n);
        group = rest;
        let labels = first.series.encoded("remote-write", encode_labels);
        let mut len = labels.len();
        let mut floats = 0;
        for s in these.iter().filter(|s| s.is_plain()) {
            let l = sample_len(s);
            len += 1 + encoded_len_varint(l as u64) + l;
            floats += 1;
        }
        // Exemplars and histograms are rare: encoded apart, after the
        // float samples (fields 3 and 4 follow field 2).
        let others = if floats < these.len() {
            let histograms = histograms(these);
            let exemplars = exemplars(these);
            if histograms.is_empty() || exemplars.is_empty() {
                [exemplars, histograms].concat()
            } else {
                after.push((labels.clone(), exemplars));
                histograms
            }
        } else {
            Vec::new()
        };
        len += others.len();
        encode_key(1, WireType::LengthDelimited, &mut out);
        encode_varint(len as u64, &mut out);
        out.extend_from_slice(&labels);
        for s in these.iter().filter(|s| s.is_plain()) {
            encode_sample(s, &mut out);
        }
        out.extend_from_slice(&others);
    }
    for (labels, exemplars) in after {
        encode_key(1, WireType::LengthDelimited, &mut out);
        encode_varint((labels.len() + exemplars.len()) as u64, &mut out);
        out.extend_from_slice(&labels);
        out.extend_from_slice(&exemplars);
    }
    for (name, f) in families {
        if let Some(meta) = f.encoded(name) {
            wire::message(3, &meta, &mut out);
        }
    }
    out
}

/// What a request says of a metric family (`MetricMetadata`): its type,
/// and its unit and help where a point of it had them.
#[derive(Default)]
struct Family<'a> {
    kind: Option<Type>,
    unit: &'a str,
    help: &'a str,
}

impl<'a> Family<'a> {
    /// Adds what `s` says of its family: the type of the family's first
    /// typed sample, the first unit and help met.
    fn note(families: &mut BTreeMap<&'a str, Family<'a>>, s: &'a Sample) {
        let (name, kind) = family(s);
        let f = families.entry(name).or_default();
        if f.kind.is_none() {
            f.kind = kind;
        }
        if let Some(e) = s.extra.as_deref() {
            if f.unit.is_empty() {
                f.unit = e.unit.as_deref().unwrap_or_default();
            }
            if f.help.is_empty() {
                f.help = e.help.as_deref().unwrap_or_default();
            }
        }
    }

    /// The `MetricMetadata` message (type 1, family name 2, help 4, unit
    /// 5), or none when there is nothing to say (an untyped family
    /// without unit or help, as before units and help were stored).
    fn encoded(&self, name: &str) -> Option<Vec<u8>> {
        if self.kind.is_none() && self.unit.is_empty() && self.help.is_empty() {
            return None;
        }
        let mut meta = Vec::with_capacity(name.len() + self.help.len() + 16);
        let kind = self.kind.unwrap_or(Type::Unknown) as i32;
        if kind != 0 {
            prost::encoding::int32::encode(1, &kind, &mut meta);
        }
        for (tag, text) in [(2, name), (4, self.help), (5, self.unit)] {
            if !text.is_empty() {
                wire::message(tag, text.as_bytes(), &mut meta);
            }
        }
        Some(meta)
    }
}

/// A `Sample` message's length: value (fixed64) and timestamp (varint),
/// each left out when zero as protobuf does (a `-0.0` is not zero here).
fn sample_len(s: &Sample) -> usize {
    let value = if s.value.as_f64().to_bits() == 0 {
        0
    } else {
        9
    };
    let ts = if s.timestamp == 0 {
        0
    } else {
        1 + encoded_len_varint(s.timestamp as u64)
    };
    value + ts
}

/// `TimeSeries.samples` (field 2): one `Sample`.
fn encode_sample(s: &Sample, out: &mut Vec<u8>) {
    encode_key(2, WireType::LengthDelimited, out);
    encode_varint(sample_len(s) as u64, out);
    let bits = s.value.as_f64().to_bits();
    if bits != 0 {
        encode_key(1, WireType::SixtyFourBit, out);
        out.extend_from_slice(&bits.to_le_bytes());
    }
    if s.timestamp != 0 {
        encode_key(2, WireType::Varint, out);
        encode_varint(s.timestamp as u64, out);
    }
}

/// `TimeSeries.exemplars` (field 3) of a series' points, in their order:
/// an exemplar's value and time are the sample's.
fn exemplars(points: &[&Sample]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut body = Vec::new();
    for s in points.iter().filter(|s| s.histogram().is_none()) {
        let Some(labels) = s.exemplar() else { continue };
        body.clear();
        for (name, value) in labels {
            let label = Label {
                name: name.clone(),
                value: value.clone(),
            };
            prost::encoding::message::encode(1, &label, &mut body);
        }
        wire::double(2, s.value.as_f64(), &mut body);
        wire::int64(3, s.timestamp, &mut body);
        wire::message(3, &body, &mut out);
    }
    out
}

/// `TimeSeries.histograms` (field 4) of a series' points, in their order:
/// a histogram's count (the sample's value) is in the histogram.
fn histograms(points: &[&Sample]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut body = Vec::new();
    for s in points {
        let Some(h) = s.histogram() else { continue };
        body.clear();
        // 1.0's histogram has no start timestamp (2.0 added field 17).
        wire::histogram(h, s.timestamp, 0, &mut body);
        wire::message(4, &body, &mut out);
    }
    out
}

/// `TimeSeries.labels` (field 1, repeated `Label`) of a series.
fn encode_labels(series: &Series) -> Vec<u8> {
    let pairs = label_pairs(series);
    let len: usize = pairs.iter().map(|(k, v)| k.len() + v.len() + 16).sum();
    let mut out = Vec::with_capacity(len);
    // By hand from the series' own strings (a new series is encoded once,
    // and under churn every series is new: no `Label` copies).
    for (name, value) in pairs {
        let field = |s: &str| {
            if s.is_empty() {
                0
            } else {
                1 + encoded_len_varint(s.len() as u64) + s.len()
            }
        };
        let len = field(name) + field(value);
        encode_key(1, WireType::LengthDelimited, &mut out);
        encode_varint(len as u64, &mut out);
        for (tag, s) in [(1, name), (2, value)] {
            if !s.is_empty() {
                encode_key(tag, WireType::LengthDelimited, &mut out);
                encode_varint(s.len() as u64, &mut out);
                out.extend_from_slice(s.as_bytes());
            }
        }
    }
    out
}

/// [`labels`] as borrowed pairs, in the same order.
fn label_pairs(s: &Series) -> Vec<(&str, &str)> {
    let mut out = Vec::with_capacity(s.labels.len() + 1);
    for (k, v) in &s.labels {
        if !v.is_empty() && k != "__name__" {
            out.push((k.as_str(), v.as_str()));
        }
    }
    // A series' labels are sorted already: `__name__` goes where it sorts.
    if !out.windows(2).all(|w| w[0].0 <= w[1].0) {
        out.sort_by(|a, b| a.0.cmp(b.0));
    }
    let at = out.partition_point(|(k, _)| *k < "__name__");
    out.insert(at, ("__name__", s.name.as_str()));
    out
}

#[cfg(test)]
/// `__name__` first, then the tags: sorted by name as remote_write
/// requires (`__name__` sorts before any valid label name but `_` ones,
/// hence the sort). Empty values are left out: in Prometheus an empty
/// label is an absent one.
fn labels(s: &Series) -> Vec<Label> {
    let mut out = Vec::with_capacity(s.labels.len() + 1);
    out.push(Label {
        name: "__name__".into(),
        value: s.name.clone(),
    });
    for (k, v) in &s.labels {
        if !v.is_empty() && k != "__name__" {
            out.push(Label {
                name: k.clone(),
                value: v.clone(),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The family a sample belongs to and its type, where it has one: a
/// classic histogram's or summary's `_bucket`, `_sum`, `_count` series
/// belong to the name without it; a native histogram's series is its
/// family.
fn family(s: &Sample) -> (&str, Option<Type>) {
    let t = match s.kind {
        MetricType::Counter => Type::Counter,
        MetricType::Gauge => Type::Gauge,
        MetricType::Histogram => Type::Histogram,
        MetricType::Summary => Type::Summary,
        MetricType::GaugeHistogram => Type::Gaugehistogram,
        MetricType::Info => Type::Info,
        MetricType::StateSet => Type::Stateset,
        MetricType::Unknown => return (s.name(), None),
    };
    let mut name = s.name();
    if matches!(t, Type::Histogram | Type::Summary) && s.histogram().is_none() {
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                name = base;
                break;
            }
        }
    }
    (name, Some(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Value;
    use prompb::v1::{TimeSeries, WriteRequest};
    use prost::Message;

    fn sample(name: &str, labels: &[(&str, &str)], v: f64, ts: i64, kind: MetricType) -> Sample {
        Sample::new(name, labels, Value::Float(v), ts, kind, 0)
    }

    #[test]
    fn series_keep_their_samples_in_order_with_metadata() {
        let samples = [
            sample("up", &[("job", "a")], 1.0, 1, MetricType::Gauge),
            sample(
                "x_bucket",
                &[("le", "1"), ("_z", "")],
                2.0,
                1,
                MetricType::Histogram,
            ),
            sample("up", &[("job", "a")], 0.0, 2, MetricType::Gauge),
        ];
        let body = RemoteWrite.encode(&samples).unwrap();
        let proto = snap::raw::Decoder::new()
            .decompress_vec(&body.bytes)
            .unwrap();
        let req = WriteRequest::decode(proto.as_slice()).unwrap();
        assert_eq!(req.timeseries.len(), 2);
        assert_eq!(req.timeseries[0].samples.len(), 2);
        assert_eq!(req.timeseries[0].samples[1].timestamp, 2);
        let names: Vec<&str> = req.timeseries[1]
            .labels
            .iter()
            .map(|l| l.name.as_str())
            .collect();
        assert_eq!(names, ["__name__", "le"]);
        let families: Vec<(&str, i32)> = req
            .metadata
            .iter()
            .map(|m| (m.metric_family_name.as_str(), m.r#type))
            .collect();
        assert_eq!(
            families,
            [("up", Type::Gauge as i32), ("x", Type::Histogram as i32)]
        );
    }

    /// The same message built with prost's types, for comparison.
    fn reference(samples: &[Sample]) -> Vec<u8> {
        let mut series: Vec<TimeSeries> = Vec::new();
        let mut seen: Vec<&Series> = Vec::new();
        let mut families: BTreeMap<&str, Type> = BTreeMap::new();
        for s in samples {
            let i = match seen.iter().position(|x| **x == *s.series) {
                Some(i) => i,
                None => {
                    seen.push(&s.series);
                    series.push(TimeSeries {
                        labels: labels(&s.series),
                        ..TimeSeries::default()
                    });
                    if let (f, Some(t)) = family(s) {
                        families.entry(f).or_insert(t);
                    }
                    series.len() - 1
                }
            };
            series[i].samples.push(prompb::v1::Sample {
                value: s.value.as_f64(),
                timestamp: s.timestamp,
            });
        }
        let metadata = families
            .into_iter()
            .map(|(name, t)| prompb::v1::MetricMetadata {
                r#type: t as i32,
                metric_family_name: name.to_string(),
                ..Default::default()
            })
            .collect();
        WriteRequest {
            timeseries: series,
            metadata,
        }
        .encode_to_vec()
    }

    #[test]
    fn hand_encoding_is_prosts() {
        let up = Sample::new(
            "up",
            &[("job", "a"), ("instance", "h:1")],
            Value::Float(1.0),
            1_700_000_000_123,
            MetricType::Gauge,
            0,
        );
        let at = |s: &Sample, v: Value, ts: i64| Sample {
            value: v,
            timestamp: ts,
            ..s.clone()
        };
        let other = sample("x_count", &[("a", "")], 3.0, 5, MetricType::Summary);
        let samples = vec![
            up.clone(),
            other.clone(),
            at(&up, Value::Float(0.0), 0),
            at(&other, Value::Int(-7), -1),
            at(&up, Value::Float(f64::NAN), i64::MAX),
            sample("y", &[], 2.0, 1, MetricType::Unknown),
            at(&up, Value::UInt(u64::MAX), 9),
            at(
                &up,
                Value::Float(f64::from_bits(crate::record::value::STALE_NAN)),
                10,
            ),
        ];
        assert_eq!(encode_request(&samples), reference(&samples));
        assert_eq!(encode_request(&samples[..1]), reference(&samples[..1]));
        assert!(encode_request(&[]).is_empty());
        // A series another sink encoded first is encoded anew.
        let fresh = sample("up", &[("job", "a")], 1.0, 1, MetricType::Gauge);
        let _ = fresh.series.encoded("other", |_| b"not labels".to_vec());
        let fresh = [fresh];
        assert_eq!(encode_request(&fresh), reference(&fresh));
    }

    /// prompb 1.0's histogram of a stored one (no start timestamp).
    fn v1_histogram(h: &crate::record::metric::Histogram) -> prompb::v1::Histogram {
        use crate::record::metric::histogram::{Count, ZeroCount};
        use prompb::v1::histogram as v1;
        prompb::v1::Histogram {
            count: h.count.map(|c| match c {
                Count::CountInt(n) => v1::Count::CountInt(n),
                Count::CountFloat(f) => v1::Count::CountFloat(f),
            }),
            sum: h.sum,
            schema: h.schema,
            zero_threshold: h.zero_threshold,
            zero_count: h.zero_count.map(|c| match c {
                ZeroCount::ZeroCountInt(n) => v1::ZeroCount::ZeroCountInt(n),
                ZeroCount::ZeroCountFloat(f) => v1::ZeroCount::ZeroCountFloat(f),
            }),
            negative_spans: h
                .negative_spans
                .iter()
                .map(|s| prompb::v1::BucketSpan {
                    offset: s.offset,
                    length: s.length,
                })
                .collect(),
            negative_deltas: h.negative_deltas.clone(),
            negative_counts: h.negative_counts.clone(),
            positive_spans: h
                .positive_spans
                .iter()
                .map(|s| prompb::v1::BucketSpan {
                    offset: s.offset,
                    length: s.length,
                })
                .collect(),
            positive_deltas: h.positive_deltas.clone(),
            positive_counts: h.positive_counts.clone(),
            reset_hint: h.reset_hint,
            timestamp: h.timestamp,
            custom_values: h.custom_values.clone(),
        }
    }

    fn label(name: &str, value: &str) -> Label {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }

    fn float(value: f64, timestamp: i64) -> prompb::v1::Sample {
        prompb::v1::Sample { value, timestamp }
    }

    /// Every kind of point decodes back as the `WriteRequest` written out
    /// here by hand, field by field. prost writes every float as its bits
    /// (so equal encodings are bit-equal values, NaN payloads included)
    /// except that it leaves out a -0.0, checked on its own.
    #[test]
    fn every_kind_of_point_arrives_where_1_0_puts_it() {
        use super::super::test_points::{self as p, T};
        let body = RemoteWrite.encode(&p::mixed()).unwrap();
        let proto = snap::raw::Decoder::new()
            .decompress_vec(&body.bytes)
            .unwrap();
        let got = WriteRequest::decode(proto.as_slice()).unwrap();
        let stale = f64::from_bits(crate::record::value::STALE_NAN);
        let want = WriteRequest {
            timeseries: vec![
                TimeSeries {
                    labels: vec![label("__name__", "requests_total"), label("code", "200")],
                    samples: vec![
                        float(5.0, T),
                        float(-7.0, T + 5),
                        float(-0.0, T + 15),
                        float(stale, T + 20),
                    ],
                    exemplars: vec![prompb::v1::Exemplar {
                        labels: vec![
                            label("trace_id", "4bf92f3577b34da6"),
                            label("span.id", "00f067aa0ba902b7"),
                        ],
                        value: 1.0,
                        timestamp: T + 3,
                    }],
                    histograms: vec![],
                },
                TimeSeries {
                    labels: vec![
                        label("__name__", p::DURATION),
                        label("service.name", "checkout"),
                        label("zoné", "ö☃"),
                    ],
                    samples: vec![],
                    exemplars: vec![],
                    histograms: vec![
                        v1_histogram(&p::int_histogram(T)),
                        v1_histogram(&p::float_histogram(T + 10)),
                    ],
                },
                TimeSeries {
                    labels: vec![label("__name__", "temperature"), label("room", "kitchen")],
                    samples: vec![float(21.5, T)],
                    ..TimeSeries::default()
                },
                // The exemplars of a series with histograms come after all
                // the series (see `encode_request`).
                TimeSeries {
                    labels: vec![
                        label("__name__", p::DURATION),
                        label("service.name", "checkout"),
                        label("zoné", "ö☃"),
                    ],
                    exemplars: vec![prompb::v1::Exemplar {
                        labels: vec![label("trace_id", "ü-1")],
                        value: 0.031,
                        timestamp: T + 12,
                    }],
                    ..TimeSeries::default()
                },
            ],
            metadata: vec![
                prompb::v1::MetricMetadata {
                    r#type: Type::Histogram as i32,
                    metric_family_name: p::DURATION.into(),
                    help: "Time a request took.".into(),
                    unit: "seconds".into(),
                },
                prompb::v1::MetricMetadata {
                    r#type: Type::Counter as i32,
                    metric_family_name: "requests_total".into(),
                    help: "Requests served.".into(),
                    unit: String::new(),
                },
                prompb::v1::MetricMetadata {
                    r#type: Type::Gauge as i32,
                    metric_family_name: "temperature".into(),
                    ..Default::default()
                },
            ],
        };
        assert_eq!(got.encode_to_vec(), want.encode_to_vec(), "{got:#?}");
        let negative_zero = (-0.0f64).to_bits();
        assert_eq!(got.timeseries[0].samples[2].value.to_bits(), negative_zero);
        assert_eq!(got.timeseries[1].histograms[0].sum.to_bits(), negative_zero);
        assert_eq!(
            got.timeseries[1].histograms[1].positive_counts[1].to_bits(),
            negative_zero
        );
    }

    #[test]
    fn an_untyped_family_has_metadata_only_with_unit_or_help() {
        let plain = sample("x", &[], 1.0, 1, MetricType::Unknown);
        let req =
            WriteRequest::decode(encode_request(std::slice::from_ref(&plain)).as_slice()).unwrap();
        assert!(req.metadata.is_empty());
        let helped = super::super::test_points::with(
            plain,
            crate::record::Extra {
                help: Some("h".into()),
                ..Default::default()
            },
        );
        let req = WriteRequest::decode(encode_request(&[helped]).as_slice()).unwrap();
        assert_eq!(
            req.metadata,
            [prompb::v1::MetricMetadata {
                r#type: Type::Unknown as i32,
                metric_family_name: "x".into(),
                help: "h".into(),
                unit: String::new(),
            }]
        );
    }

    #[test]
    fn negative_zero_keeps_its_sign() {
        let s = sample("z", &[], -0.0, 1, MetricType::Gauge);
        let req = WriteRequest::decode(encode_request(&[s]).as_slice()).unwrap();
        assert_eq!(
            req.timeseries[0].samples[0].value.to_bits(),
            (-0.0f64).to_bits()
        );
    }

    /// A 500 that says the histogram is invalid is a refusal; any other
    /// 500 (native histograms disabled, the store failing) is retried.
    #[test]
    fn an_invalid_histogram_is_refused_not_retried() {
        let answer = |status: u16, body: &str| Answer::Status {
            status,
            retry_after: None,
            body: body.into(),
        };
        let invalid = "8 observations found in buckets, but the Count field is 6: \
            histogram's observation count should be at least the number of \
            observations found in the buckets";
        assert_eq!(
            RemoteWrite.classify(&answer(500, invalid)),
            Decision::Refuse {
                status: 500,
                reason: invalid.into()
            }
        );
        for body in [
            "positive side: span number 1 with offset -1: histogram has a span whose offset is negative",
            "negative side: spans need 3 buckets, have 2 buckets: histogram spans specify different number of buckets than provided",
        ] {
            assert!(matches!(
                RemoteWrite.classify(&answer(500, body)),
                Decision::Refuse { .. }
            ));
        }
        for a in [
            answer(500, "native histograms are disabled"),
            answer(500, "disk full"),
            answer(503, invalid),
        ] {
            assert!(
                matches!(RemoteWrite.classify(&a), Decision::Retry { .. }),
                "{a}"
            );
        }
        assert_eq!(RemoteWrite.classify(&answer(204, "")), Decision::Accept);
    }

    #[test]
    fn replays_are_recognised_by_prometheus_reasons() {
        assert!(RemoteWrite.already_stored(400, "out of order sample\n"));
        assert!(RemoteWrite.already_stored(400, "duplicate sample for timestamp"));
        assert!(!RemoteWrite.already_stored(400, "out of bounds"));
        assert!(!RemoteWrite.already_stored(500, "out of order sample"));
    }

    /// Snappy cannot compress a body over ~3.7 GB: that is an error the
    /// batch cannot go out with, never an empty body (which a store could
    /// acknowledge with nothing stored). The zeroed buffer is never
    /// touched (snappy checks the length first), so it costs no memory.
    #[test]
    fn a_body_snappy_cannot_hold_is_an_error_not_an_empty_body() {
        let huge = vec![0u8; 3_700_000_000];
        let e = snappy_body(&huge, "application/x-protobuf", HEADERS)
            .err()
            .expect("an error, not a body");
        assert!(e.to_string().contains("3700000000 bytes"), "{e}");
        let small = snappy_body(b"\x0a\x00", "application/x-protobuf", HEADERS).unwrap();
        assert!(!small.bytes.is_empty());
    }
}
