//! Prometheus remote_write 1.0 out: a snappy-compressed (block format)
//! `prometheus.WriteRequest`, with a `MetricMetadata` per family the batch
//! has a type for, so Prometheus 2.x, VictoriaMetrics, Mimir and Thanos
//! receive it. A tag becomes a label, the name `__name__`; integers are
//! sent as the nearest f64 (remote_write has only floats).
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
//! So a replay of samples the store already has answers `out of order
//! sample` (or `duplicate sample for timestamp` where a float's bits differ
//! from what an earlier write rounded; never with metricstream's exact
//! values). [`Sink::already_stored`] says so for those two reasons; the
//! delivery trusts it only for samples that may have been delivered before.

use std::collections::{BTreeMap, HashMap};

use prompb::v1::{metric_metadata::MetricType as Type, Label};
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};
use prost::Message;

use super::{Body, Sink};
use crate::hash::Fx;
use crate::record::{MetricType, Series};
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

    fn encode(&self, samples: &[Sample]) -> Body {
        let proto = encode_request(samples);
        snappy_body(&proto, "application/x-protobuf", HEADERS)
    }

    fn already_stored(&self, status: u16, reason: &str) -> bool {
        status == 400
            && (reason.contains("out of order sample")
                || reason.contains("duplicate sample for timestamp"))
    }
}

/// A remote_write body (both versions): the protobuf, snappy block format.
pub fn snappy_body(
    proto: &[u8],
    content_type: &'static str,
    headers: &'static [(&'static str, &'static str)],
) -> Body {
    let bytes = match snap::raw::Encoder::new().compress_vec(proto) {
        Ok(b) => b,
        // Only a body over ~4 GiB fails; batches are bounded far below.
        Err(e) => {
            tracing::error!("snappy: {e}");
            Vec::new()
        }
    };
    Body {
        content_type,
        encoding: Some("snappy"),
        headers,
        bytes: bytes.into(),
    }
}

/// The `WriteRequest` for `samples`, encoded by hand: the samples of one
/// series in one `TimeSeries`, in their order; each series' labels are
/// encoded once per series ([`Series::encoded`]), not once per request.
/// The bytes are what prost makes of the same message (checked in the
/// tests), except that a `-0.0` keeps its sign.
pub fn encode_request(samples: &[Sample]) -> Vec<u8> {
    if samples.is_empty() {
        return Vec::new();
    }
    // Which series each sample belongs to (numbered in order of first
    // appearance), and how many samples each has.
    let mut number: Vec<u32> = Vec::with_capacity(samples.len());
    let mut series: Vec<(&Sample, usize)> = Vec::new();
    let mut index: HashMap<&Series, u32, Fx> = HashMap::default();
    let mut families: BTreeMap<&str, Type> = BTreeMap::new();
    let mut last: Option<(&Series, u32)> = None;
    for s in samples {
        // Samples of a series mostly come together: skip the map then.
        let i = match last {
            Some((prev, i)) if std::ptr::eq(prev, &*s.series) => i,
            _ => *index.entry(&s.series).or_insert_with(|| {
                series.push((s, 0));
                if let Some((family, t)) = family(s) {
                    families.entry(family).or_insert(t);
                }
                (series.len() - 1) as u32
            }),
        };
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

    let mut out = Vec::with_capacity(samples.len() * 24 + series.len() * 128);
    let mut group = grouped.as_slice();
    for (first, n) in &series {
        let (these, rest) = group.split_at(*n);
        group = rest;
        let labels = first.series.encoded("remote-write", encode_labels);
        let len = labels.len()
            + these
                .iter()
                .map(|s| {
                    let l = sample_len(s);
                    1 + encoded_len_varint(l as u64) + l
                })
                .sum::<usize>();
        encode_key(1, WireType::LengthDelimited, &mut out);
        encode_varint(len as u64, &mut out);
        out.extend_from_slice(&labels);
        for s in these {
            encode_sample(s, &mut out);
        }
    }
    for (name, t) in families {
        // MetricMetadata: type (1), metric_family_name (2); help and unit empty.
        let len = 2 + 1 + encoded_len_varint(name.len() as u64) + name.len();
        encode_key(3, WireType::LengthDelimited, &mut out);
        encode_varint(len as u64, &mut out);
        encode_key(1, WireType::Varint, &mut out);
        encode_varint(t as u64, &mut out);
        encode_key(2, WireType::LengthDelimited, &mut out);
        encode_varint(name.len() as u64, &mut out);
        out.extend_from_slice(name.as_bytes());
    }
    out
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

/// `TimeSeries.labels` (field 1, repeated `Label`) of a series.
fn encode_labels(series: &Series) -> Vec<u8> {
    let mut out = Vec::new();
    for l in labels(series) {
        let len = l.encoded_len();
        encode_key(1, WireType::LengthDelimited, &mut out);
        encode_varint(len as u64, &mut out);
        // Into a Vec: cannot run out of room.
        let _ = l.encode(&mut out);
    }
    out
}

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

/// The family a sample belongs to and its type: a histogram's or summary's
/// `_bucket`, `_sum`, `_count` series belong to the name without it.
fn family(s: &Sample) -> Option<(&str, Type)> {
    let t = match s.kind {
        MetricType::Counter => Type::Counter,
        MetricType::Gauge => Type::Gauge,
        MetricType::Histogram => Type::Histogram,
        MetricType::Summary => Type::Summary,
        MetricType::GaugeHistogram => Type::Gaugehistogram,
        MetricType::Info => Type::Info,
        MetricType::StateSet => Type::Stateset,
        MetricType::Unknown => return None,
    };
    let mut name = s.name();
    if matches!(t, Type::Histogram | Type::Summary) {
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                name = base;
                break;
            }
        }
    }
    Some((name, t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Value;
    use prompb::v1::{TimeSeries, WriteRequest};

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
        let body = RemoteWrite.encode(&samples);
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
                    if let Some((f, t)) = family(s) {
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

    #[test]
    fn negative_zero_keeps_its_sign() {
        let s = sample("z", &[], -0.0, 1, MetricType::Gauge);
        let req = WriteRequest::decode(encode_request(&[s]).as_slice()).unwrap();
        assert_eq!(
            req.timeseries[0].samples[0].value.to_bits(),
            (-0.0f64).to_bits()
        );
    }

    #[test]
    fn replays_are_recognised_by_prometheus_reasons() {
        assert!(RemoteWrite.already_stored(400, "out of order sample\n"));
        assert!(RemoteWrite.already_stored(400, "duplicate sample for timestamp"));
        assert!(!RemoteWrite.already_stored(400, "out of bounds"));
        assert!(!RemoteWrite.already_stored(500, "out of order sample"));
    }
}
