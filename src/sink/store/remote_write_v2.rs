//! Prometheus remote_write 2.0 out (`--remote-write-version 2`): an
//! `io.prometheus.write.v2.Request` (symbols table, label references),
//! snappy-compressed. For receivers that speak 2.0 (Prometheus 3.x with it
//! enabled, metricstream's own `serve`); Prometheus 2.42 takes 1.0 only.
//! Answers (refusals, invalid histograms, replays) are read as for 1.0
//! ([`super::remote_write`]).
//!
//! A series' points go in its `TimeSeries`: float samples in `samples`
//! (with their start timestamp where one was stored), native histograms in
//! `histograms` (with theirs), exemplars in `exemplars` (their labels as
//! references into the symbols table), each list in the points' order; and
//! its `metadata`: the type, and the unit and help where a point of the
//! series had them. Encoded by hand ([`super::wire`]), so a `-0.0` keeps
//! its sign; otherwise the bytes are what prost makes of the same message.

use std::collections::HashMap;

use prompb::v2::{metadata::MetricType as Type, Metadata};
use prost::encoding;

use super::remote_write::{snappy_body, RemoteWrite};
use super::{wire, Body, EncodeError, Sink};
use crate::hash::Fx;
use crate::record::{MetricType, Series};
use crate::sink::delivery::retry::{Answer, Decision};
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

    fn encode(&self, samples: &[Sample]) -> Result<Body, EncodeError> {
        snappy_body(&encode_request(samples), CONTENT_TYPE, HEADERS)
    }

    fn classify(&self, answer: &Answer) -> Decision {
        RemoteWrite.classify(answer)
    }

    fn already_stored(&self, status: u16, reason: &str) -> bool {
        RemoteWrite.already_stored(status, reason)
    }
}

/// Interned strings: index 0 is always "" (the spec requires it).
struct Symbols<'a> {
    list: Vec<&'a str>,
    index: HashMap<&'a str, u32>,
}

impl<'a> Symbols<'a> {
    fn new() -> Symbols<'a> {
        Symbols {
            list: vec![""],
            index: HashMap::from([("", 0)]),
        }
    }

    fn get(&mut self, s: &'a str) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.list.len() as u32;
        self.list.push(s);
        self.index.insert(s, i);
        i
    }
}

/// The `Request` for `samples`: one `TimeSeries` per series, in order of
/// first appearance (fields as the module doc says).
pub fn encode_request(samples: &[Sample]) -> Vec<u8> {
    let mut series: Vec<Vec<&Sample>> = Vec::new();
    let mut index: HashMap<&Series, usize, Fx> = HashMap::default();
    for s in samples {
        let i = *index.entry(&s.series).or_insert_with(|| {
            series.push(Vec::new());
            series.len() - 1
        });
        series[i].push(s);
    }
    let mut symbols = Symbols::new();
    let mut timeseries = Vec::with_capacity(samples.len() * 24 + series.len() * 16);
    let mut fields = Vec::new();
    for points in &series {
        fields.clear();
        encode_series(points, &mut symbols, &mut fields);
        wire::message(5, &fields, &mut timeseries);
    }
    let mut out = Vec::with_capacity(
        timeseries.len() + symbols.list.iter().map(|s| s.len() + 2).sum::<usize>(),
    );
    for s in &symbols.list {
        wire::message(4, s.as_bytes(), &mut out);
    }
    out.extend_from_slice(&timeseries);
    out
}

/// The fields of one series' `TimeSeries`: label refs (1), samples (2),
/// histograms (3), exemplars (4), metadata (5). `points` is not empty.
fn encode_series<'a>(points: &[&'a Sample], symbols: &mut Symbols<'a>, out: &mut Vec<u8>) {
    let first = points[0];
    let mut labels: Vec<(&str, &str)> = vec![("__name__", first.name())];
    labels.extend(
        first
            .labels()
            .iter()
            // In Prometheus an empty label is an absent one.
            .filter(|(k, v)| !v.is_empty() && k != "__name__")
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    labels.sort();
    let refs: Vec<u32> = labels
        .iter()
        .flat_map(|&(k, v)| [symbols.get(k), symbols.get(v)])
        .collect();
    encoding::uint32::encode_packed(1, &refs, out);

    let mut point = Vec::new();
    for s in points.iter().filter(|s| s.is_plain()) {
        point.clear();
        wire::double(1, s.value.as_f64(), &mut point);
        wire::int64(2, s.timestamp, &mut point);
        wire::int64(3, start_timestamp(s), &mut point);
        wire::message(2, &point, out);
    }
    for s in points {
        let Some(h) = s.histogram() else { continue };
        point.clear();
        let start = match h.start_timestamp {
            0 => start_timestamp(s),
            t => t,
        };
        wire::histogram(h, s.timestamp, start, &mut point);
        wire::message(3, &point, out);
    }
    for s in points.iter().filter(|s| s.histogram().is_none()) {
        let Some(labels) = s.exemplar() else { continue };
        point.clear();
        let refs: Vec<u32> = labels
            .iter()
            .flat_map(|(k, v)| [symbols.get(k), symbols.get(v)])
            .collect();
        encoding::uint32::encode_packed(1, &refs, &mut point);
        // An exemplar's value and time are the sample's.
        wire::double(2, s.value.as_f64(), &mut point);
        wire::int64(3, s.timestamp, &mut point);
        wire::message(4, &point, out);
    }
    // The series' help and unit: the first its points carry.
    let text = |f: fn(&crate::record::Extra) -> Option<&str>| {
        points
            .iter()
            .find_map(|s| s.extra.as_deref().and_then(f))
            .unwrap_or("")
    };
    let help = text(|e| e.help.as_deref());
    let unit = text(|e| e.unit.as_deref());
    let metadata = Metadata {
        r#type: type_of(first.kind) as i32,
        help_ref: symbols.get(help),
        unit_ref: symbols.get(unit),
    };
    encoding::message::encode(5, &metadata, out);
}

/// A point's start timestamp (ms), 0 where none was stored (as 2.0 says
/// "absent"). Stored as the u64 of the sender's i64, so `as` gives the
/// sender's value back, a negative one included.
fn start_timestamp(s: &Sample) -> i64 {
    s.extra
        .as_deref()
        .and_then(|e| e.start_timestamp)
        .map_or(0, |t| t as i64)
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
    use prompb::v2::{Exemplar, Request, Sample as PbSample, TimeSeries};
    use prost::Message;

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
        let body = RemoteWriteV2.encode(&[a.clone(), b, a]).unwrap();
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

    /// What prost makes of the request built with its own types: the
    /// same bytes, for points without a negative zero.
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
        let late = Sample {
            value: Value::Float(0.0),
            timestamp: 0,
            ..up.clone()
        };
        let want = Request {
            symbols: ["", "__name__", "up", "instance", "h:1", "job", "a"]
                .map(String::from)
                .to_vec(),
            timeseries: vec![TimeSeries {
                labels_refs: vec![1, 2, 3, 4, 5, 6],
                samples: vec![
                    PbSample {
                        value: 1.0,
                        timestamp: 1_700_000_000_123,
                        start_timestamp: 0,
                    },
                    PbSample::default(),
                ],
                metadata: Some(Metadata {
                    r#type: Type::Gauge as i32,
                    help_ref: 0,
                    unit_ref: 0,
                }),
                ..TimeSeries::default()
            }],
        };
        assert_eq!(encode_request(&[up, late]), want.encode_to_vec());
        assert_eq!(
            encode_request(&[]),
            Request {
                symbols: vec![String::new()],
                timeseries: vec![]
            }
            .encode_to_vec()
        );
    }

    /// Every kind of point decodes back as the `Request` written out here
    /// by hand, field by field (floats compared through prost's encoding,
    /// which writes their bits; a -0.0, which it leaves out, on its own).
    #[test]
    fn every_kind_of_point_arrives_where_2_0_puts_it() {
        use super::super::test_points::{self as p, START, T};
        let body = RemoteWriteV2.encode(&p::mixed()).unwrap();
        let proto = snap::raw::Decoder::new()
            .decompress_vec(&body.bytes)
            .unwrap();
        let got = Request::decode(proto.as_slice()).unwrap();
        let symbols = [
            "",
            "__name__",
            "requests_total",
            "code",
            "200",
            "trace_id",
            "4bf92f3577b34da6",
            "span.id",
            "00f067aa0ba902b7",
            "Requests served.",
            p::DURATION,
            "service.name",
            "checkout",
            "zoné",
            "ö☃",
            "ü-1",
            "Time a request took.",
            "seconds",
            "temperature",
            "room",
            "kitchen",
        ];
        let refs = |strings: &[&str]| -> Vec<u32> {
            strings
                .iter()
                .map(|s| symbols.iter().position(|x| x == s).unwrap() as u32)
                .collect()
        };
        let float = |value: f64, timestamp: i64, start_timestamp: i64| PbSample {
            value,
            timestamp,
            start_timestamp,
        };
        let stale = f64::from_bits(crate::record::value::STALE_NAN);
        let want = Request {
            symbols: symbols.map(String::from).to_vec(),
            timeseries: vec![
                TimeSeries {
                    labels_refs: refs(&["__name__", "requests_total", "code", "200"]),
                    samples: vec![
                        float(5.0, T, START),
                        float(-7.0, T + 5, 0),
                        float(-0.0, T + 15, 0),
                        float(stale, T + 20, 0),
                    ],
                    histograms: vec![],
                    exemplars: vec![Exemplar {
                        labels_refs: refs(&[
                            "trace_id",
                            "4bf92f3577b34da6",
                            "span.id",
                            "00f067aa0ba902b7",
                        ]),
                        value: 1.0,
                        timestamp: T + 3,
                    }],
                    metadata: Some(Metadata {
                        r#type: Type::Counter as i32,
                        help_ref: refs(&["Requests served."])[0],
                        unit_ref: 0,
                    }),
                    created_timestamp: 0,
                },
                TimeSeries {
                    labels_refs: refs(&[
                        "__name__",
                        p::DURATION,
                        "service.name",
                        "checkout",
                        "zoné",
                        "ö☃",
                    ]),
                    samples: vec![],
                    histograms: vec![p::int_histogram(T), p::float_histogram(T + 10)],
                    exemplars: vec![Exemplar {
                        labels_refs: refs(&["trace_id", "ü-1"]),
                        value: 0.031,
                        timestamp: T + 12,
                    }],
                    metadata: Some(Metadata {
                        r#type: Type::Histogram as i32,
                        help_ref: refs(&["Time a request took."])[0],
                        unit_ref: refs(&["seconds"])[0],
                    }),
                    created_timestamp: 0,
                },
                TimeSeries {
                    labels_refs: refs(&["__name__", "temperature", "room", "kitchen"]),
                    samples: vec![float(21.5, T, 0)],
                    metadata: Some(Metadata {
                        r#type: Type::Gauge as i32,
                        help_ref: 0,
                        unit_ref: 0,
                    }),
                    ..TimeSeries::default()
                },
            ],
        };
        assert_eq!(got.encode_to_vec(), want.encode_to_vec(), "{got:#?}");
        let negative_zero = (-0.0f64).to_bits();
        assert_eq!(got.timeseries[0].samples[2].value.to_bits(), negative_zero);
        assert_eq!(got.timeseries[1].histograms[0].sum.to_bits(), negative_zero);
    }

    /// A histogram stored without its own start time takes the point's.
    #[test]
    fn a_histogram_without_its_own_start_takes_the_points() {
        use super::super::test_points::{self as p, START, T};
        let mut h = p::float_histogram(T);
        h.start_timestamp = 0;
        let s = p::with(
            Sample::new("h", &[], Value::Float(7.5), T, MetricType::Histogram, 0),
            crate::record::Extra {
                histogram: Some(h),
                start_timestamp: Some(START as u64),
                ..Default::default()
            },
        );
        let got = Request::decode(encode_request(&[s]).as_slice()).unwrap();
        assert_eq!(got.timeseries[0].histograms[0].start_timestamp, START);
        assert!(got.timeseries[0].samples.is_empty());
    }
}
