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

use prompb::v1::{metric_metadata::MetricType as Type, Label, MetricMetadata, Sample as PbSample};
use prompb::v1::{TimeSeries, WriteRequest};
use prost::Message;

use super::sample::{Fx, Series};
use super::{Body, Sample, Sink};
use crate::batch::MetricType;

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
        let proto = write_request(samples).encode_to_vec();
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

/// Samples of one series stay in one `TimeSeries`, in their order.
pub fn write_request(samples: &[Sample]) -> WriteRequest {
    let mut series: Vec<TimeSeries> = Vec::new();
    let mut index: HashMap<&Series, usize, Fx> = HashMap::default();
    let mut families: BTreeMap<String, Type> = BTreeMap::new();
    let mut last: Option<(&Series, usize)> = None;
    for s in samples {
        // Samples of a series mostly come together: skip the map then.
        let i = match last {
            Some((prev, i)) if std::ptr::eq(prev, &*s.series) => i,
            _ => *index.entry(&s.series).or_insert_with(|| {
                series.push(TimeSeries {
                    labels: labels(s),
                    ..TimeSeries::default()
                });
                if let Some((family, t)) = family(s) {
                    families.entry(family).or_insert(t);
                }
                series.len() - 1
            }),
        };
        last = Some((&s.series, i));
        series[i].samples.push(PbSample {
            value: s.value.as_f64(),
            timestamp: s.timestamp,
        });
    }
    let metadata = families
        .into_iter()
        .map(|(name, t)| MetricMetadata {
            r#type: t as i32,
            metric_family_name: name,
            help: String::new(),
            unit: String::new(),
        })
        .collect();
    WriteRequest {
        timeseries: series,
        metadata,
    }
}

/// `__name__` first, then the tags: sorted by name as remote_write
/// requires (`__name__` sorts before any valid label name but `_` ones,
/// hence the sort). Empty values are left out: in Prometheus an empty
/// label is an absent one.
fn labels(s: &Sample) -> Vec<Label> {
    let mut out = Vec::with_capacity(s.labels().len() + 1);
    out.push(Label {
        name: "__name__".into(),
        value: s.name().to_string(),
    });
    for (k, v) in s.labels() {
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
fn family(s: &Sample) -> Option<(String, Type)> {
    let t = match s.kind {
        MetricType::Counter => Type::Counter,
        MetricType::Gauge => Type::Gauge,
        MetricType::Histogram => Type::Histogram,
        MetricType::Summary => Type::Summary,
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
    Some((name.to_string(), t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Value;

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

    #[test]
    fn replays_are_recognised_by_prometheus_reasons() {
        assert!(RemoteWrite.already_stored(400, "out of order sample\n"));
        assert!(RemoteWrite.already_stored(400, "duplicate sample for timestamp"));
        assert!(!RemoteWrite.already_stored(400, "out of bounds"));
        assert!(!RemoteWrite.already_stored(500, "out of order sample"));
    }
}
