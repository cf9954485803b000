use std::collections::HashMap;

use prompb::{v1, v2};
use prost::Message;

use super::*;

const NOW: i64 = 1_700_000_000_000;
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

fn snappy(bytes: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(bytes).unwrap()
}

fn v1_series(labels: &[(&str, &str)], samples: &[(f64, i64)]) -> v1::TimeSeries {
    v1::TimeSeries {
        labels: labels
            .iter()
            .map(|(n, v)| v1::Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|&(value, timestamp)| v1::Sample { value, timestamp })
            .collect(),
        ..Default::default()
    }
}

fn v1_body(series: Vec<v1::TimeSeries>) -> Vec<u8> {
    v1::WriteRequest {
        timeseries: series,
        metadata: vec![],
    }
    .encode_to_vec()
}

fn decode_v1(series: Vec<v1::TimeSeries>) -> Decoded {
    decode(Version::V1, &v1_body(series), NOW).unwrap()
}

/// One refused v1 series with these labels: its single reason.
fn refusal(labels: &[(&str, &str)]) -> String {
    let d = decode_v1(vec![v1_series(labels, &[(1.0, NOW)])]);
    assert!(d.series.is_empty(), "{labels:?} was accepted");
    assert_eq!((d.refused.series, d.refused.samples), (1, 1));
    assert_eq!(d.refused.reasons.len(), 1);
    d.refused.reasons[0].clone()
}

/// Builds a 2.0 request, interning strings as a sender does.
#[derive(Default)]
struct V2 {
    symbols: Vec<String>,
    index: HashMap<String, u32>,
    series: Vec<v2::TimeSeries>,
}

impl V2 {
    fn new() -> Self {
        let mut b = Self::default();
        b.sym("");
        b
    }

    fn sym(&mut self, s: &str) -> u32 {
        if let Some(&r) = self.index.get(s) {
            return r;
        }
        let r = self.symbols.len() as u32;
        self.symbols.push(s.to_string());
        self.index.insert(s.to_string(), r);
        r
    }

    fn series(&mut self, labels: &[(&str, &str)], samples: &[(f64, i64)]) -> &mut v2::TimeSeries {
        let labels_refs = labels
            .iter()
            .flat_map(|(n, v)| [self.sym(n), self.sym(v)])
            .collect();
        self.series.push(v2::TimeSeries {
            labels_refs,
            samples: samples
                .iter()
                .map(|&(value, timestamp)| v2::Sample {
                    value,
                    timestamp,
                    start_timestamp: 0,
                })
                .collect(),
            ..Default::default()
        });
        self.series.last_mut().unwrap()
    }

    fn body(&self) -> Vec<u8> {
        v2::Request {
            symbols: self.symbols.clone(),
            timeseries: self.series.clone(),
        }
        .encode_to_vec()
    }

    fn decode(&self) -> Result<Decoded, String> {
        decode(Version::V2, &self.body(), NOW)
    }
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[test]
fn content_types_choose_the_version() {
    use Version::*;
    let ok = [
        (None, V1),
        (Some(""), V1),
        (Some("application/x-protobuf"), V1),
        (Some("Application/X-Protobuf"), V1),
        (
            Some("application/x-protobuf;proto=prometheus.WriteRequest"),
            V1,
        ),
        (
            Some("application/x-protobuf ; Proto = prometheus.writerequest"),
            V1,
        ),
        (
            Some("application/x-protobuf;proto=io.prometheus.write.v2.Request"),
            V2,
        ),
        (
            Some(
                "application/x-protobuf; charset=binary; PROTO=\"io.prometheus.write.v2.Request\"",
            ),
            V2,
        ),
    ];
    for (header, version) in ok {
        assert_eq!(version_of(header), Ok(version), "{header:?}");
    }
    for bad in [
        "application/json",
        "text/plain",
        "application/x-protobuf;proto=io.prometheus.write.v3.Request",
        "application/x-protobufx",
    ] {
        let err = version_of(Some(bad)).unwrap_err();
        assert!(err.contains("unsupported Content-Type"), "{err}");
    }
}

#[test]
fn snappy_round_trips_and_refuses_garbage() {
    let plain = b"hello remote write".repeat(50);
    assert_eq!(decompress(&snappy(&plain), 1 << 20).unwrap(), plain);
    assert!(matches!(
        decompress(b"\x05\xff\xff\xff", 1 << 20),
        Err(Decompress::Invalid(_))
    ));
    // Go's snappy refuses an empty body too.
    assert!(matches!(
        decompress(b"", 1 << 20),
        Err(Decompress::Invalid(_))
    ));
}

#[test]
fn a_small_body_declaring_4_gib_is_refused_before_allocating() {
    // Varint 2^32 as the declared length, then 95 bytes of nothing useful.
    let mut body = vec![0x80, 0x80, 0x80, 0x80, 0x10];
    body.resize(100, 0);
    assert_eq!(
        decompress(&body, 1 << 20),
        Err(Decompress::TooLarge {
            declared: 1 << 32,
            limit: 1 << 20
        })
    );
    // Just under snappy's own limit, but over ours.
    let mut body = vec![0xff, 0xff, 0xff, 0xff, 0x0f];
    body.resize(100, 0);
    assert_eq!(
        decompress(&body, 1 << 20),
        Err(Decompress::TooLarge {
            declared: u64::from(u32::MAX),
            limit: 1 << 20
        })
    );
    let big = snappy(&vec![7u8; (1 << 20) + 1]);
    assert!(matches!(
        decompress(&big, 1 << 20),
        Err(Decompress::TooLarge { .. })
    ));
}

#[test]
fn v1_round_trip_with_metadata() {
    let request = v1::WriteRequest {
        timeseries: vec![
            v1_series(
                &[("__name__", "http_requests_total"), ("job", "api")],
                &[(1.0, NOW - 1000), (2.0, NOW)],
            ),
            v1_series(
                &[("__name__", "latency_seconds_bucket"), ("le", "0.5")],
                &[(3.0, NOW)],
            ),
            v1_series(&[("__name__", "up"), ("instance", "a:9090")], &[(1.0, NOW)]),
        ],
        metadata: vec![
            v1::MetricMetadata {
                r#type: v1::metric_metadata::MetricType::Counter as i32,
                metric_family_name: "http_requests".into(),
                help: "requests".into(),
                unit: String::new(),
            },
            v1::MetricMetadata {
                r#type: v1::metric_metadata::MetricType::Histogram as i32,
                metric_family_name: "latency_seconds".into(),
                ..Default::default()
            },
            v1::MetricMetadata {
                r#type: v1::metric_metadata::MetricType::Unknown as i32,
                metric_family_name: "up".into(),
                ..Default::default()
            },
        ],
    };
    let body = snappy(&request.encode_to_vec());
    let d = decode(Version::V1, &decompress(&body, 1 << 20).unwrap(), NOW).unwrap();
    assert!(d.refused.is_empty(), "{:?}", d.refused);
    assert_eq!(d.samples, 4);
    assert_eq!(
        d.metadata,
        vec![
            ("http_requests".to_string(), Kind::Counter),
            ("latency_seconds".to_string(), Kind::Histogram)
        ]
    );
    let s = &d.series[0];
    assert_eq!(s.name, "http_requests_total");
    assert_eq!(s.labels, labels(&[("job", "api")]));
    assert_eq!(s.samples, vec![(1.0, NOW - 1000), (2.0, NOW)]);
    assert_eq!(s.kind, Some(Kind::Counter));
    assert_eq!(s.created_timestamp_ms, None);
    assert_eq!(d.series[1].kind, Some(Kind::Histogram));
    assert_eq!(d.series[2].kind, None);
}

#[test]
fn v2_round_trip_with_metadata_and_start_timestamps() {
    let mut b = V2::new();
    let help = b.sym("requests served");
    b.series(
        &[("__name__", "http_requests_total"), ("job", "api")],
        &[(5.0, NOW)],
    )
    .metadata = Some(v2::Metadata {
        r#type: v2::metadata::MetricType::Counter as i32,
        help_ref: help,
        unit_ref: 0,
    });
    let s = b.series(&[("__name__", "temp"), ("room", "a")], &[(21.5, NOW)]);
    s.metadata = Some(v2::Metadata {
        r#type: v2::metadata::MetricType::Stateset as i32,
        ..Default::default()
    });
    s.samples[0].start_timestamp = NOW - 60_000;
    b.series(&[("__name__", "old_sender")], &[(1.0, NOW)])
        .created_timestamp = NOW - 5;
    b.series(&[("__name__", "unknown_type")], &[(1.0, NOW)])
        .metadata = Some(v2::Metadata {
        r#type: 99,
        ..Default::default()
    });
    let d = b.decode().unwrap();
    assert!(d.refused.is_empty(), "{:?}", d.refused);
    assert_eq!(d.samples, 4);
    let kinds: Vec<_> = d.series.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, [Some(Kind::Counter), Some(Kind::Gauge), None, None]);
    assert_eq!(d.series[0].labels, labels(&[("job", "api")]));
    assert_eq!(d.series[0].created_timestamp_ms, None);
    assert_eq!(d.series[1].created_timestamp_ms, Some(NOW - 60_000));
    assert_eq!(d.series[2].created_timestamp_ms, Some(NOW - 5));
    assert_eq!(
        d.metadata,
        vec![
            ("http_requests_total".to_string(), Kind::Counter),
            ("temp".to_string(), Kind::Gauge)
        ]
    );
}

#[test]
fn nan_bits_and_infinities_are_kept() {
    let stale = f64::from_bits(STALE_NAN);
    let values = [(stale, NOW), (f64::INFINITY, NOW), (f64::NEG_INFINITY, NOW)];
    let d = decode_v1(vec![v1_series(&[("__name__", "x")], &values)]);
    let mut b = V2::new();
    b.series(&[("__name__", "x")], &values);
    let d2 = b.decode().unwrap();
    for d in [d, d2] {
        assert!(d.refused.is_empty());
        let got = &d.series[0].samples;
        assert_eq!(got[0].0.to_bits(), STALE_NAN);
        assert_eq!(got[1].0, f64::INFINITY);
        assert_eq!(got[2].0, f64::NEG_INFINITY);
    }
}

#[test]
fn every_label_rule_refuses_the_series_with_a_reason() {
    let long_name = "n".repeat(MAX_NAME_LEN + 1);
    let long_value = "v".repeat(MAX_VALUE_LEN + 1);
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("job", "a")], "no __name__ label"),
        (vec![("__name__", "")], "empty metric name"),
        (vec![("__name__", &long_name)], "metric name over 255 bytes"),
        (
            vec![("__name__", "a\nb")],
            "control character in metric name",
        ),
        (
            vec![("1abc", "v"), ("__name__", "x")],
            "invalid label name \"1abc\"",
        ),
        (
            vec![("__name__", "x"), ("a-b", "v")],
            "invalid label name \"a-b\"",
        ),
        (
            vec![("", "v"), ("__name__", "x")],
            "invalid label name \"\"",
        ),
        (
            vec![("__name__", "x"), (&long_name, "v")],
            "invalid label name",
        ),
        (
            vec![("__name__", "x"), ("job", "y"), ("a", "b")],
            "labels not sorted",
        ),
        (vec![("job", "y"), ("__name__", "x")], "labels not sorted"),
        (
            vec![("__name__", "x"), ("job", "y"), ("job", "z")],
            "duplicate label \"job\"",
        ),
        (
            vec![("__name__", "x"), ("__name__", "x")],
            "duplicate label \"__name__\"",
        ),
        (
            vec![("__name__", "x"), ("job", "")],
            "label \"job\" has an empty value",
        ),
        (
            vec![("__name__", "x"), ("job", &long_value)],
            "label \"job\" has a value over 4096 bytes",
        ),
    ];
    for (labels, want) in cases {
        let reason = refusal(&labels);
        assert!(reason.contains(want), "{labels:?}: {reason}");
        assert!(reason.starts_with("series {"), "{reason}");
        assert!(reason.len() <= MAX_REASON_LEN, "{reason}");
    }
    assert_eq!(
        refusal(&[("__name__", "x"), ("job", "y"), ("a", "b")]),
        r#"series {__name__="x",job="y",a="b"}: labels not sorted"#
    );
}

#[test]
fn label_limits_are_inclusive_and_names_may_be_utf8() {
    let value = "v".repeat(MAX_VALUE_LEN);
    let name = "é".repeat(MAX_NAME_LEN / 2);
    let ok = decode_v1(vec![
        // Uppercase sorts before `_`, so __name__ need not come first.
        v1_series(
            &[("A", "1"), ("__name__", "x"), ("a", &value)],
            &[(1.0, NOW)],
        ),
        v1_series(&[("__name__", &name)], &[(1.0, NOW)]),
        v1_series(&[("__name__", "http.server.duration")], &[(1.0, NOW)]),
    ]);
    assert!(ok.refused.is_empty(), "{:?}", ok.refused);
    assert_eq!(ok.series[0].labels, labels(&[("A", "1"), ("a", &value)]));

    let names: Vec<String> = (0..=MAX_LABELS).map(|i| format!("l{i:03}")).collect();
    let mut pairs: Vec<(&str, &str)> = vec![("__name__", "x")];
    pairs.extend(names.iter().take(MAX_LABELS).map(|n| (n.as_str(), "v")));
    assert!(decode_v1(vec![v1_series(&pairs, &[(1.0, NOW)])])
        .refused
        .is_empty());
    pairs.push((&names[MAX_LABELS], "v"));
    assert!(refusal(&pairs).contains("more than 64 labels"));
}

#[test]
fn reasons_stay_short_and_only_ten_are_kept() {
    let huge = "x".repeat(5000);
    let names: Vec<String> = (0..30).map(|i| format!("label_{i:02}")).collect();
    let mut pairs: Vec<(&str, &str)> = vec![("__name__", &huge)];
    pairs.extend(names.iter().map(|n| (n.as_str(), huge.as_str())));
    let series = (0..25).map(|_| v1_series(&pairs, &[(1.0, NOW)])).collect();
    let d = decode_v1(series);
    assert_eq!(d.refused.series, 25);
    assert_eq!(d.refused.reasons.len(), MAX_REASONS);
    for r in &d.refused.reasons {
        assert!(r.len() <= MAX_REASON_LEN, "{} bytes: {r}", r.len());
        assert!(r.contains("metric name over 255 bytes"), "{r}");
    }
}

#[test]
fn timestamps_outside_1970_to_now_plus_10_minutes_are_refused_per_sample() {
    let latest = NOW + MAX_FUTURE_MS;
    let d = decode_v1(vec![
        v1_series(
            &[("__name__", "x")],
            &[
                (1.0, -1),
                (2.0, 0),
                (3.0, latest),
                (4.0, latest + 1),
                (5.0, i64::MIN),
            ],
        ),
        v1_series(&[("__name__", "y")], &[(1.0, i64::MAX)]),
    ]);
    assert_eq!(d.series.len(), 1);
    assert_eq!(d.series[0].samples, vec![(2.0, 0), (3.0, latest)]);
    assert_eq!(d.samples, 2);
    assert_eq!((d.refused.series, d.refused.samples), (1, 4));
    assert_eq!(
        d.refused.reasons[0],
        r#"series {__name__="x"}: 3 samples refused, the first at timestamp -1 ms, before 1970"#
    );
    assert!(d.refused.reasons[1].contains("more than 10 minutes in the future"));
    // now_ms near the end of time must not overflow.
    let d = decode(
        Version::V1,
        &v1_body(vec![v1_series(&[("__name__", "x")], &[(1.0, i64::MAX)])]),
        i64::MAX,
    )
    .unwrap();
    assert_eq!(d.samples, 1);
}

fn histogram() -> v1::Histogram {
    v1::Histogram {
        count: Some(v1::histogram::Count::CountInt(3)),
        sum: 1.5,
        schema: 3,
        positive_spans: vec![v1::BucketSpan {
            offset: 0,
            length: 2,
        }],
        positive_deltas: vec![1, 1],
        timestamp: NOW,
        ..Default::default()
    }
}

#[test]
fn histograms_and_exemplars_are_refused_and_counted() {
    let mut only_histograms = v1_series(&[("__name__", "h")], &[]);
    only_histograms.histograms = vec![histogram(); 3];
    let mut both = v1_series(&[("__name__", "c"), ("job", "a")], &[(1.0, NOW)]);
    both.histograms = vec![histogram()];
    both.exemplars = vec![v1::Exemplar {
        labels: vec![v1::Label {
            name: "trace_id".into(),
            value: "abc".into(),
        }],
        value: 1.0,
        timestamp: NOW,
    }];
    let d = decode_v1(vec![only_histograms, both]);
    assert_eq!(d.series.len(), 1);
    assert_eq!(d.series[0].name, "c");
    assert_eq!(d.samples, 1);
    let r = &d.refused;
    assert_eq!(
        (r.series, r.samples, r.histograms, r.exemplars),
        (1, 0, 4, 1)
    );
    assert_eq!(
        r.reasons,
        vec![
            r#"series {__name__="h"}: 3 native histogram samples are not supported"#,
            r#"series {__name__="c",job="a"}: 1 native histogram samples are not supported"#,
            r#"series {__name__="c",job="a"}: 1 exemplars are not supported"#,
        ]
    );

    let mut b = V2::new();
    let s = b.series(&[("__name__", "h")], &[]);
    s.histograms = vec![v2::Histogram::default(); 2];
    s.exemplars = vec![v2::Exemplar::default()];
    let d = b.decode().unwrap();
    let r = &d.refused;
    assert_eq!((r.series, r.histograms, r.exemplars), (1, 2, 1));
}

#[test]
fn v2_symbol_table_edge_cases() {
    // No symbols and no series: an empty request.
    let empty = decode(Version::V2, &[], NOW).unwrap();
    assert_eq!(empty, Decoded::default());

    // Series but no symbol table at all.
    let body = v2::Request {
        symbols: vec![],
        timeseries: vec![v2::TimeSeries::default()],
    }
    .encode_to_vec();
    let err = decode(Version::V2, &body, NOW).unwrap_err();
    assert!(err.contains("symbols is empty"), "{err}");

    // symbols[0] must be "".
    let body = v2::Request {
        symbols: vec!["__name__".into(), "x".into()],
        timeseries: vec![v2::TimeSeries {
            labels_refs: vec![0, 1],
            samples: vec![v2::Sample {
                value: 1.0,
                timestamp: NOW,
                start_timestamp: 0,
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec();
    let err = decode(Version::V2, &body, NOW).unwrap_err();
    assert!(err.contains("symbols[0]"), "{err}");

    let mut b = V2::new();
    b.series(&[("__name__", "good")], &[(1.0, NOW)]);
    b.series(&[("__name__", "odd")], &[(1.0, NOW)])
        .labels_refs
        .push(1);
    b.series(&[("__name__", "far")], &[(1.0, NOW)]).labels_refs[1] = 1000;
    b.series(&[("__name__", "help")], &[(1.0, NOW)]).metadata = Some(v2::Metadata {
        r#type: 1,
        help_ref: 1000,
        unit_ref: 0,
    });
    b.series(&[("__name__", "unit")], &[(1.0, NOW)]).metadata = Some(v2::Metadata {
        r#type: 1,
        help_ref: 0,
        unit_ref: 1000,
    });
    b.series(&[("__name__", "")], &[(1.0, NOW)]);
    let d = b.decode().unwrap();
    assert_eq!(d.series.len(), 1);
    assert_eq!(d.series[0].name, "good");
    assert_eq!((d.refused.series, d.refused.samples), (5, 5));
    let reasons = &d.refused.reasons;
    assert!(
        reasons[0].contains("labels_refs has an odd length (3)"),
        "{}",
        reasons[0]
    );
    assert!(
        reasons[1].contains("label ref 1000 out of range"),
        "{}",
        reasons[1]
    );
    assert!(
        reasons[1].starts_with(r#"series {__name__="?"}"#),
        "{}",
        reasons[1]
    );
    assert!(reasons[2].contains("help_ref 1000"), "{}", reasons[2]);
    assert!(reasons[3].contains("unit_ref 1000"), "{}", reasons[3]);
    assert!(reasons[4].contains("empty metric name"), "{}", reasons[4]);
}

#[test]
fn ten_thousand_series_in_one_request() {
    let series: Vec<_> = (0..10_000)
        .map(|i| {
            let instance = format!("host-{i}");
            v1_series(
                &[("__name__", "up"), ("instance", &instance), ("job", "node")],
                &[(1.0, NOW)],
            )
        })
        .collect();
    let d = decode_v1(series);
    assert_eq!((d.series.len(), d.samples), (10_000, 10_000));
    assert_eq!(d.series[9_999].labels[0].1, "host-9999");

    let mut b = V2::new();
    for i in 0..10_000 {
        let instance = format!("host-{i}");
        b.series(
            &[("__name__", "up"), ("instance", &instance), ("job", "node")],
            &[(1.0, NOW)],
        );
    }
    let d = b.decode().unwrap();
    assert_eq!((d.series.len(), d.samples), (10_000, 10_000));
}

fn field(tag: u32, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_key(tag, prost::encoding::WireType::LengthDelimited, &mut out);
    prost::encoding::encode_varint(bytes.len() as u64, &mut out);
    out.extend_from_slice(bytes);
    out
}

#[test]
fn unknown_fields_are_ignored() {
    // Field 15 as a varint and field 9 as bytes, at both levels.
    let unknown = [&[0x78, 0x2a][..], &field(9, b"later")].concat();
    let mut series = v1_series(&[("__name__", "x")], &[(1.0, NOW)]).encode_to_vec();
    series.extend_from_slice(&unknown);
    let body = [field(1, &series), unknown.clone()].concat();
    let d = decode(Version::V1, &body, NOW).unwrap();
    assert_eq!((d.series.len(), d.samples), (1, 1));

    let mut b = V2::new();
    b.series(&[("__name__", "x")], &[(1.0, NOW)]);
    let body = [b.body(), unknown].concat();
    assert_eq!(decode(Version::V2, &body, NOW).unwrap().samples, 1);
}

#[test]
fn truncated_or_garbage_protobuf_is_an_error() {
    let v1 = v1_body(vec![v1_series(&[("__name__", "x")], &[(1.0, NOW)])]);
    let mut b = V2::new();
    b.series(&[("__name__", "x")], &[(1.0, NOW)]);
    let v2 = b.body();
    for (version, body) in [(Version::V1, &v1), (Version::V2, &v2)] {
        let err = decode(version, &body[..body.len() - 3], NOW).unwrap_err();
        assert!(err.starts_with("invalid remote write"), "{err}");
    }
    assert!(decode(Version::V1, b"\xff\xff\xff", NOW).is_err());
    // A label that is not UTF-8.
    let label = [field(1, b"__name__"), field(2, b"\xff\xfe")].concat();
    let body = field(1, &field(1, &label));
    assert!(decode(Version::V1, &body, NOW).is_err());
}

#[test]
fn a_body_of_the_other_version_is_named() {
    let v1 = v1_body(vec![v1_series(&[("__name__", "x")], &[(1.0, NOW)])]);
    let err = decode(Version::V2, &v1, NOW).unwrap_err();
    assert!(
        err.contains("remote write 1.0 body") && err.contains("sent as 2.0"),
        "{err}"
    );

    let mut b = V2::new();
    b.series(&[("__name__", "x")], &[(1.0, NOW)]);
    let err = decode(Version::V1, &b.body(), NOW).unwrap_err();
    assert!(
        err.contains("remote write 2.0 body") && err.contains("sent as 1.0"),
        "{err}"
    );

    // Only unknown fields: neither version.
    let other = field(9, b"nothing");
    for version in [Version::V1, Version::V2] {
        let err = decode(version, &other, NOW).unwrap_err();
        assert!(err.contains("not a remote write"), "{err}");
    }
    // An empty body is an empty request of either version.
    assert_eq!(decode(Version::V1, &[], NOW).unwrap(), Decoded::default());
}

#[test]
fn kind_for_tries_the_family_suffixes() {
    let metadata: HashMap<String, Kind> = [
        ("req", Kind::Counter),
        ("req_total", Kind::Counter),
        ("lat", Kind::Histogram),
        ("rpc", Kind::Summary),
        ("temp", Kind::Gauge),
    ]
    .into_iter()
    .map(|(n, k)| (n.to_string(), k))
    .collect();
    let cases = [
        ("req_total", Some(Kind::Counter)),
        ("req_created", Some(Kind::Counter)),
        ("lat_bucket", Some(Kind::Histogram)),
        ("lat_sum", Some(Kind::Histogram)),
        ("lat_count", Some(Kind::Histogram)),
        ("lat_gcount", Some(Kind::Histogram)),
        ("rpc_sum", Some(Kind::Summary)),
        ("rpc_count", Some(Kind::Summary)),
        ("rpc_bucket", None),
        ("temp", Some(Kind::Gauge)),
        ("temp_total", None),
        ("temp_sum", None),
        ("other", None),
        ("_total", None),
    ];
    for (name, kind) in cases {
        assert_eq!(kind_for(name, &metadata), kind, "{name}");
    }
}

/// Writes the seed inputs of fuzz/corpus/remote_write (format in
/// `metricstream::fuzzing::check_remote_write`):
/// `cargo test --lib remote_write::tests::write_fuzz_seeds -- --ignored`.
#[test]
#[ignore = "writes files; run by hand to refresh the fuzz seeds"]
fn write_fuzz_seeds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/remote_write");
    std::fs::create_dir_all(&dir).unwrap();
    let mut v1_request = v1::WriteRequest {
        timeseries: vec![
            v1_series(
                &[("__name__", "up"), ("job", "a")],
                &[(1.0, NOW), (f64::from_bits(STALE_NAN), NOW + 1)],
            ),
            v1_series(&[("job", "a"), ("__name__", "bad")], &[(1.0, -5)]),
        ],
        metadata: vec![v1::MetricMetadata {
            r#type: 1,
            metric_family_name: "up".into(),
            ..Default::default()
        }],
    };
    v1_request.timeseries[0].histograms = vec![histogram()];
    let mut b = V2::new();
    b.series(&[("__name__", "up"), ("job", "a")], &[(1.0, NOW)])
        .metadata = Some(v2::Metadata {
        r#type: 2,
        help_ref: 0,
        unit_ref: 0,
    });
    b.series(&[("__name__", "odd")], &[(1.0, NOW)])
        .labels_refs
        .push(7);
    let s = b.series(&[("__name__", "h")], &[]);
    s.histograms = vec![v2::Histogram::default()];
    s.created_timestamp = NOW;
    let v1 = v1_request.encode_to_vec();
    let v2 = b.body();
    let seeds: [(&str, u8, Vec<u8>); 10] = [
        ("v1-raw", 0, v1.clone()),
        ("v1-snappy", 2, snappy(&v1)),
        ("v2-raw", 1, v2.clone()),
        ("v2-snappy", 3, snappy(&v2)),
        ("v1-as-v2", 1, v1.clone()),
        ("v2-as-v1", 0, v2.clone()),
        ("v1-truncated", 0, v1[..v1.len() / 2].to_vec()),
        ("v2-truncated-snappy", 3, snappy(&v2[..v2.len() - 1])),
        (
            "snappy-too-large",
            2,
            vec![0x80, 0x80, 0x80, 0x80, 0x10, 0, 0],
        ),
        ("empty", 0, vec![]),
    ];
    for (name, flags, body) in seeds {
        let data = [&[flags][..], &body].concat();
        std::fs::write(dir.join(format!("seed-{name}")), data).unwrap();
    }
}

#[test]
fn metadata_only_requests_are_not_refused() {
    let body = v1::WriteRequest {
        timeseries: vec![],
        metadata: vec![v1::MetricMetadata {
            r#type: v1::metric_metadata::MetricType::Summary as i32,
            metric_family_name: "rpc_seconds".into(),
            ..Default::default()
        }],
    }
    .encode_to_vec();
    let d = decode(Version::V1, &body, NOW).unwrap();
    assert_eq!(d.metadata, vec![("rpc_seconds".to_string(), Kind::Summary)]);
    assert!(d.series.is_empty() && d.refused.is_empty());

    let mut b = V2::new();
    b.series(&[("__name__", "rpc_seconds")], &[]).metadata = Some(v2::Metadata {
        r#type: v2::metadata::MetricType::Summary as i32,
        ..Default::default()
    });
    let d = b.decode().unwrap();
    assert_eq!(d.metadata, vec![("rpc_seconds".to_string(), Kind::Summary)]);
    assert!(d.series.is_empty() && d.refused.is_empty());
}
