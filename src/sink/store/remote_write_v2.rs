//! Prometheus remote_write 2.0 out (`--remote-write-version 2`): an
//! `io.prometheus.write.v2.Request` (symbols table, label references, the
//! type in each series' metadata), snappy-compressed. For receivers that
//! speak 2.0 (Prometheus 3.x with it enabled, metricstream's own `serve`);
//! Prometheus 2.42 takes 1.0 only. Refusals and replays are read as for 1.0
//! ([`super::remote_write`]).

use std::collections::HashMap;

use prompb::v2::TimeSeries;
use prompb::v2::{metadata::MetricType as Type, Metadata, Request, Sample as PbSample};
use prost::Message;

use super::remote_write::{snappy_body, RemoteWrite};
use super::{Body, Sink};
use crate::hash::Fx;
use crate::record::{MetricType, Series};
use crate::sink::Sample;

pub struct RemoteWriteV2;

const CONTENT_TYPE: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";
const HEADERS: &[(&str, &str)] = &[("x-prometheus-remote-write-version", "2.0.0")];

impl Sink for RemoteWriteV2 {
    fn name(&self) -> &'static str {
        "remote-write-2.0"
    }

    fn refuse(&self, _sample: &Sample) -> Option<String> {
        None
    }

    fn encode(&self, samples: &[Sample]) -> Body {
        let proto = request(samples).encode_to_vec();
        snappy_body(&proto, CONTENT_TYPE, HEADERS)
    }

    fn already_stored(&self, status: u16, reason: &str) -> bool {
        RemoteWrite.already_stored(status, reason)
    }
}

/// Interned strings: index 0 is always "" (the spec requires it).
struct Symbols<'a> {
    list: Vec<String>,
    index: HashMap<&'a str, u32>,
}

impl<'a> Symbols<'a> {
    fn new() -> Symbols<'a> {
        Symbols {
            list: vec![String::new()],
            index: HashMap::from([("", 0)]),
        }
    }

    fn get(&mut self, s: &'a str) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.list.len() as u32;
        self.list.push(s.to_string());
        self.index.insert(s, i);
        i
    }
}

/// Samples of one series stay in one `TimeSeries`, in their order.
pub fn request(samples: &[Sample]) -> Request {
    let mut symbols = Symbols::new();
    let mut series: Vec<TimeSeries> = Vec::new();
    let mut index: HashMap<&Series, usize, Fx> = HashMap::default();
    for s in samples {
        let i = *index.entry(&s.series).or_insert_with(|| {
            let mut labels: Vec<(&str, &str)> = vec![("__name__", s.name())];
            labels.extend(
                s.labels()
                    .iter()
                    .filter(|(k, v)| !v.is_empty() && k != "__name__")
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            );
            labels.sort();
            let mut refs = Vec::with_capacity(labels.len() * 2);
            for (k, v) in labels {
                refs.push(symbols.get(k));
                refs.push(symbols.get(v));
            }
            series.push(TimeSeries {
                labels_refs: refs,
                metadata: Some(Metadata {
                    r#type: type_of(s.kind) as i32,
                    help_ref: 0,
                    unit_ref: 0,
                }),
                ..TimeSeries::default()
            });
            series.len() - 1
        });
        series[i].samples.push(PbSample {
            value: s.value.as_f64(),
            timestamp: s.timestamp,
            start_timestamp: 0,
        });
    }
    Request {
        symbols: symbols.list,
        timeseries: series,
    }
}

fn type_of(kind: MetricType) -> Type {
    match kind {
        MetricType::Counter => Type::Counter,
        MetricType::Gauge => Type::Gauge,
        MetricType::Histogram => Type::Histogram,
        MetricType::Summary => Type::Summary,
        MetricType::GaugeHistogram => Type::Gaugehistogram,
        MetricType::Info => Type::Info,
        MetricType::StateSet => Type::Stateset,
        MetricType::Unknown => Type::Unspecified,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Value;

    #[test]
    fn symbols_refs_and_types() {
        let a = Sample::new(
            "up",
            &[("job", "a")],
            Value::Float(1.0),
            1,
            MetricType::Gauge,
            0,
        );
        let b = Sample::new(
            "up",
            &[("job", "b")],
            Value::Int(2),
            2,
            MetricType::Counter,
            0,
        );
        let body = RemoteWriteV2.encode(&[a.clone(), b, a]);
        let proto = snap::raw::Decoder::new()
            .decompress_vec(&body.bytes)
            .unwrap();
        let req = Request::decode(proto.as_slice()).unwrap();
        assert_eq!(req.symbols, ["", "__name__", "up", "job", "a", "b"]);
        assert_eq!(req.timeseries.len(), 2);
        assert_eq!(req.timeseries[0].labels_refs, [1, 2, 3, 4]);
        assert_eq!(req.timeseries[0].samples.len(), 2);
        assert_eq!(req.timeseries[1].samples[0].value, 2.0);
        assert_eq!(
            req.timeseries[1].metadata.map(|m| m.r#type),
            Some(Type::Counter as i32)
        );
        assert!(body
            .content_type
            .ends_with("io.prometheus.write.v2.Request"));
    }
}
