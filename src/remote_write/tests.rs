use std::collections::HashMap;
use std::sync::Arc;

use prompb::v2::histogram::{Count, ResetHint, ZeroCount};
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

/// A series' float samples as (value, timestamp) pairs.
fn pairs(s: &ValidSeries) -> Vec<(f64, i64)> {
    s.samples
        .iter()
        .map(|s| (s.value, s.timestamp_ms))
        .collect()
}

/// The start timestamps of a series' float samples.
fn starts(s: &ValidSeries) -> Vec<Option<i64>> {
    s.samples.iter().map(|s| s.start_timestamp_ms).collect()
}

fn family(kind: Option<Kind>, unit: Option<&str>, help: Option<&str>) -> Family {
    Family {
        kind,
        unit: unit.map(Arc::from),
        help: help.map(Arc::from),
    }
}

/// Label pairs as a test table writes them.
type Pairs<'a> = Vec<(&'a str, &'a str)>;

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
    // "up" says nothing (unknown type, no unit, no help): left out.
    assert_eq!(
        d.metadata,
        vec![
            (
                "http_requests".to_string(),
                family(Some(Kind::Counter), None, Some("requests"))
            ),
            (
                "latency_seconds".to_string(),
                family(Some(Kind::Histogram), None, None)
            )
        ]
    );
    let s = &d.series[0];
    assert_eq!(s.name, "http_requests_total");
    assert_eq!(s.labels, labels(&[("job", "api")]));
    assert_eq!(pairs(s), vec![(1.0, NOW - 1000), (2.0, NOW)]);
    assert_eq!(s.kind, Some(Kind::Counter));
    // The family's help, matched less `_total`, on the series.
    assert_eq!(s.help.as_deref(), Some("requests"));
    assert_eq!(s.unit, None);
    assert_eq!(starts(s), vec![None, None]);
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
    assert_eq!(starts(&d.series[0]), vec![None]);
    assert_eq!(starts(&d.series[1]), vec![Some(NOW - 60_000)]);
    assert_eq!(starts(&d.series[2]), vec![Some(NOW - 5)]);
    assert_eq!(d.series[0].help.as_deref(), Some("requests served"));
    assert_eq!(
        d.metadata,
        vec![
            (
                "http_requests_total".to_string(),
                family(Some(Kind::Counter), None, Some("requests served"))
            ),
            ("temp".to_string(), family(Some(Kind::Gauge), None, None))
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
        assert_eq!(got[0].value.to_bits(), STALE_NAN);
        assert_eq!(got[1].value, f64::INFINITY);
        assert_eq!(got[2].value, f64::NEG_INFINITY);
    }
}

#[test]
fn every_label_rule_refuses_the_series_with_a_reason() {
    let long_name = "n".repeat(MAX_NAME_LEN + 1);
    let long_value = "v".repeat(MAX_VALUE_LEN + 1);
    let cases: Vec<(Pairs, &str)> = vec![
        (vec![("job", "a")], "no __name__ label"),
        (vec![("__name__", "")], "empty metric name"),
        (vec![("__name__", &long_name)], "metric name over 255 bytes"),
        (
            vec![("__name__", "a\nb")],
            "control character in metric name",
        ),
        (
            vec![("", "v"), ("__name__", "x")],
            "invalid label name \"\": empty",
        ),
        (
            vec![("__name__", "x"), (&long_name, "v")],
            "invalid label name \"nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn…\": over 255 bytes",
        ),
        (
            vec![("__name__", "x"), ("a\nb", "v")],
            "invalid label name \"a\\nb\": control character",
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
    assert_eq!(pairs(&d.series[0]), vec![(2.0, 0), (3.0, latest)]);
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

fn span(offset: i32, length: u32) -> v2::BucketSpan {
    v2::BucketSpan { offset, length }
}

/// A valid integer histogram of exponential buckets, both sides and the
/// zero bucket used: 2 + (1 + 2 + 1) + 1 = 7 observations.
fn int_exponential() -> v2::Histogram {
    v2::Histogram {
        count: Some(Count::CountInt(7)),
        sum: 12.5,
        schema: 3,
        zero_threshold: 1e-128,
        zero_count: Some(ZeroCount::ZeroCountInt(1)),
        negative_spans: vec![span(-2, 1)],
        negative_deltas: vec![2],
        positive_spans: vec![span(-1, 2), span(3, 1)],
        positive_deltas: vec![1, 1, -1],
        reset_hint: ResetHint::No as i32,
        timestamp: NOW,
        ..Default::default()
    }
}

/// A valid float histogram (absolute counts) of the coarsest schema.
fn float_exponential() -> v2::Histogram {
    v2::Histogram {
        count: Some(Count::CountFloat(6.5)),
        sum: -3.25,
        schema: -4,
        zero_threshold: 0.001,
        zero_count: Some(ZeroCount::ZeroCountFloat(0.5)),
        negative_spans: vec![span(0, 2)],
        negative_counts: vec![1.0, 2.0],
        positive_spans: vec![span(1, 1)],
        positive_counts: vec![3.0],
        reset_hint: ResetHint::Gauge as i32,
        timestamp: NOW - 1,
        ..Default::default()
    }
}

/// A valid integer histogram of custom buckets: bounds 0.1, 0.5, 1 and the
/// implied +Inf; buckets 0, 1 and 3 (the +Inf one) of counts 1, 3, 2.
fn int_custom() -> v2::Histogram {
    v2::Histogram {
        count: Some(Count::CountInt(6)),
        sum: 10.0,
        schema: -53,
        zero_count: Some(ZeroCount::ZeroCountInt(0)),
        positive_spans: vec![span(0, 2), span(1, 1)],
        positive_deltas: vec![1, 2, -1],
        custom_values: vec![0.1, 0.5, 1.0],
        reset_hint: ResetHint::Yes as i32,
        timestamp: NOW - 2,
        ..Default::default()
    }
}

/// A valid float histogram of custom buckets, a negative bound among them.
fn float_custom() -> v2::Histogram {
    v2::Histogram {
        count: Some(Count::CountFloat(2.5)),
        sum: 4.0,
        schema: -53,
        zero_count: Some(ZeroCount::ZeroCountFloat(0.0)),
        positive_spans: vec![span(1, 2)],
        positive_counts: vec![1.5, 1.0],
        custom_values: vec![-1.0, 0.0, 2.5],
        timestamp: NOW - 3,
        ..Default::default()
    }
}

fn all_kinds() -> Vec<v2::Histogram> {
    vec![
        int_exponential(),
        float_exponential(),
        int_custom(),
        float_custom(),
    ]
}

/// 1.0's message of the same histogram (its start timestamp dropped).
fn to_v1(h: &v2::Histogram) -> v1::Histogram {
    use v1::histogram as h1;
    let spans = |s: &[v2::BucketSpan]| {
        s.iter()
            .map(|s| v1::BucketSpan {
                offset: s.offset,
                length: s.length,
            })
            .collect()
    };
    v1::Histogram {
        count: h.count.map(|c| match c {
            Count::CountInt(n) => h1::Count::CountInt(n),
            Count::CountFloat(f) => h1::Count::CountFloat(f),
        }),
        sum: h.sum,
        schema: h.schema,
        zero_threshold: h.zero_threshold,
        zero_count: h.zero_count.map(|c| match c {
            ZeroCount::ZeroCountInt(n) => h1::ZeroCount::ZeroCountInt(n),
            ZeroCount::ZeroCountFloat(f) => h1::ZeroCount::ZeroCountFloat(f),
        }),
        negative_spans: spans(&h.negative_spans),
        negative_deltas: h.negative_deltas.clone(),
        negative_counts: h.negative_counts.clone(),
        positive_spans: spans(&h.positive_spans),
        positive_deltas: h.positive_deltas.clone(),
        positive_counts: h.positive_counts.clone(),
        reset_hint: h.reset_hint,
        timestamp: h.timestamp,
        custom_values: h.custom_values.clone(),
    }
}

#[test]
fn native_histograms_are_stored_from_both_versions() {
    let all = all_kinds();
    let mut series = v1_series(&[("__name__", "rpc_seconds"), ("job", "a")], &[]);
    series.histograms = all.iter().map(to_v1).collect();
    let d = decode_v1(vec![series]);
    assert!(d.refused.is_empty(), "{:?}", d.refused);
    assert_eq!((d.samples, d.histograms, d.exemplars), (0, 4, 0));
    assert_eq!(d.series[0].histograms, all);
    assert_eq!(d.series[0].labels, labels(&[("job", "a")]));

    // 2.0: start timestamps per histogram, the series' deprecated created
    // timestamp where a histogram has none.
    let mut b = V2::new();
    let s = b.series(&[("__name__", "rpc_seconds"), ("job", "a")], &[]);
    s.histograms = all.clone();
    s.histograms[0].start_timestamp = NOW - 1000;
    s.created_timestamp = NOW - 5000;
    let d = b.decode().unwrap();
    assert!(d.refused.is_empty(), "{:?}", d.refused);
    assert_eq!(d.histograms, 4);
    let mut want = all;
    want[0].start_timestamp = NOW - 1000;
    for h in &mut want[1..] {
        h.start_timestamp = NOW - 5000;
    }
    assert_eq!(d.series[0].histograms, want);
}

#[test]
fn an_unset_count_is_the_zero_prometheus_reads() {
    let mut b = V2::new();
    let s = b.series(&[("__name__", "h")], &[]);
    // Nothing set at all: an empty integer histogram at 1970.
    s.histograms = vec![
        v2::Histogram::default(),
        v2::Histogram {
            count: Some(Count::CountFloat(0.0)),
            timestamp: NOW,
            ..Default::default()
        },
    ];
    let d = b.decode().unwrap();
    assert!(d.refused.is_empty(), "{:?}", d.refused);
    let got: Vec<_> = d.series[0]
        .histograms
        .iter()
        .map(|h| (h.count, h.zero_count))
        .collect();
    assert_eq!(
        got,
        vec![
            (Some(Count::CountInt(0)), Some(ZeroCount::ZeroCountInt(0))),
            (
                Some(Count::CountFloat(0.0)),
                Some(ZeroCount::ZeroCountFloat(0.0))
            ),
        ]
    );
}

/// Edge cases Prometheus takes, and so does this.
#[test]
fn histograms_at_the_edges_of_the_rules_are_stored() {
    let with = |base: fn() -> v2::Histogram, change: &dyn Fn(&mut v2::Histogram)| {
        let mut h = base();
        change(&mut h);
        h
    };
    let cases: Vec<(&str, v2::Histogram)> = vec![
        ("schema 8", with(int_exponential, &|h| h.schema = 8)),
        ("schema -4", with(int_exponential, &|h| h.schema = -4)),
        // Observations of NaN count but fill no bucket.
        (
            "NaN sum, count over the buckets",
            with(int_exponential, &|h| {
                h.sum = f64::NAN;
                h.count = Some(Count::CountInt(9));
            }),
        ),
        (
            "staleness marker as the sum",
            with(int_exponential, &|h| {
                h.sum = f64::from_bits(STALE_NAN);
                h.count = Some(Count::CountInt(7));
            }),
        ),
        // Float counts are not compared with the buckets (rounding).
        (
            "float count below its buckets",
            with(float_exponential, &|h| {
                h.count = Some(Count::CountFloat(1.0))
            }),
        ),
        (
            "NaN bucket count",
            with(float_exponential, &|h| h.positive_counts = vec![f64::NAN]),
        ),
        (
            "first span at a negative offset",
            with(int_exponential, &|h| h.positive_spans[0].offset = -1000),
        ),
        (
            "empty spans between",
            with(int_exponential, &|h| {
                h.positive_spans.insert(1, span(0, 0));
            }),
        ),
        (
            "custom bounds exactly enough",
            with(int_custom, &|h| h.custom_values.truncate(3)),
        ),
        (
            "custom bounds from -Inf",
            with(float_custom, &|h| h.custom_values[0] = f64::NEG_INFINITY),
        ),
        (
            "custom buckets, none used",
            with(int_custom, &|h| {
                h.positive_spans.clear();
                h.positive_deltas.clear();
                h.count = Some(Count::CountInt(0));
            }),
        ),
        (
            "every reset hint",
            with(int_exponential, &|h| {
                h.reset_hint = ResetHint::Unspecified as i32
            }),
        ),
    ];
    for (what, h) in cases {
        let mut series = v1_series(&[("__name__", "h")], &[]);
        series.histograms = vec![to_v1(&h)];
        let d = decode_v1(vec![series]);
        assert!(d.refused.is_empty(), "{what}: {:?}", d.refused);
        assert_eq!(d.histograms, 1, "{what}");
    }
}

#[test]
fn each_histogram_rule_refuses_that_histogram_alone() {
    let with = |base: fn() -> v2::Histogram, change: &dyn Fn(&mut v2::Histogram)| {
        let mut h = base();
        change(&mut h);
        h
    };
    let cases: Vec<(v2::Histogram, &str)> = vec![
        (
            with(int_exponential, &|h| h.schema = 9),
            "schema 9: must be -4..=8 (exponential buckets) or -53 (custom buckets)",
        ),
        (
            with(int_exponential, &|h| h.schema = -5),
            "schema -5: must be",
        ),
        (with(int_custom, &|h| h.schema = -52), "schema -52: must be"),
        (
            with(int_exponential, &|h| {
                h.positive_deltas.pop().map(drop).unwrap_or(())
            }),
            "positive side: spans need 3 buckets, 2 sent",
        ),
        (
            with(float_exponential, &|h| h.negative_counts.push(1.0)),
            "negative side: spans need 2 buckets, 3 sent",
        ),
        (
            with(int_exponential, &|h| h.positive_spans[1].offset = -1),
            "positive side: span 2 has a negative offset -1",
        ),
        (
            with(int_exponential, &|h| h.positive_deltas = vec![2, -3, 1]),
            "positive side: bucket 2 has a count of -1",
        ),
        (
            with(int_exponential, &|h| h.negative_deltas = vec![-1]),
            "negative side: bucket 1 has a count of -1",
        ),
        (
            with(int_exponential, &|h| {
                h.positive_deltas = vec![i64::MAX, 1, 0]
            }),
            "positive side: bucket 2 overflows 64 bits",
        ),
        (
            with(int_exponential, &|h| h.count = Some(Count::CountInt(8))),
            "7 observations in the buckets, but the count is 8",
        ),
        (
            with(int_exponential, &|h| {
                h.sum = f64::NAN;
                h.count = Some(Count::CountInt(6));
            }),
            "7 observations in the buckets, but the count is 6",
        ),
        (
            with(int_exponential, &|h| h.custom_values = vec![1.0]),
            "exponential buckets must not have custom bounds",
        ),
        (
            with(float_exponential, &|h| {
                h.count = Some(Count::CountFloat(-1.0))
            }),
            "the count is -1",
        ),
        (
            with(float_exponential, &|h| h.positive_counts = vec![-0.5]),
            "positive side: bucket 1 has a count of -0.5",
        ),
        (
            with(float_exponential, &|h| {
                h.zero_count = Some(ZeroCount::ZeroCountFloat(-2.0))
            }),
            "the zero bucket has a count of -2",
        ),
        (
            with(int_custom, &|h| h.custom_values = vec![0.1, 0.1, 1.0]),
            "custom buckets: bounds must be strictly increasing, 0.1 follows 0.1",
        ),
        (
            with(float_custom, &|h| h.custom_values[1] = f64::NAN),
            "custom buckets: a bound is NaN",
        ),
        (
            with(int_custom, &|h| h.custom_values.push(f64::INFINITY)),
            "custom buckets: the last bound is +Inf",
        ),
        (
            with(int_custom, &|h| h.custom_values.truncate(2)),
            "custom buckets: 2 bounds are too few for spans that reach bucket 4",
        ),
        (
            with(int_custom, &|h| h.positive_spans[0].offset = -1),
            "custom buckets: span 1 has a negative offset -1",
        ),
        (
            with(int_custom, &|h| h.positive_deltas.push(0)),
            "custom buckets: spans need 3 buckets, 4 sent",
        ),
        (
            with(int_custom, &|h| {
                h.zero_count = Some(ZeroCount::ZeroCountInt(1));
                h.count = Some(Count::CountInt(7));
            }),
            "custom buckets: the zero count must be 0",
        ),
        (
            with(float_custom, &|h| h.zero_threshold = 0.5),
            "custom buckets: the zero threshold must be 0",
        ),
        (
            with(int_custom, &|h| h.negative_spans = vec![span(0, 1)]),
            "custom buckets: must not have negative spans",
        ),
        (
            with(float_custom, &|h| h.negative_counts = vec![1.0]),
            "custom buckets: must not have negative buckets",
        ),
        (
            with(int_exponential, &|h| {
                h.zero_count = Some(ZeroCount::ZeroCountFloat(1.0))
            }),
            "an integer histogram with a float zero count",
        ),
        (
            with(float_exponential, &|h| {
                h.zero_count = Some(ZeroCount::ZeroCountInt(1))
            }),
            "a float histogram with an integer zero count",
        ),
        (
            with(int_exponential, &|h| h.reset_hint = 4),
            "unknown reset hint 4",
        ),
        (
            with(int_exponential, &|h| h.timestamp = -1),
            "timestamp -1 ms, before 1970",
        ),
        (
            with(float_custom, &|h| h.timestamp = NOW + MAX_FUTURE_MS + 1),
            "timestamp 1700000600001 ms, more than 10 minutes in the future",
        ),
    ];
    for (bad, why) in &cases {
        // 1.0 and 2.0 alike: the bad one is refused, the good one, the
        // float sample and the exemplar of the series are kept.
        let mut series = v1_series(&[("__name__", "h")], &[(1.0, NOW)]);
        series.histograms = vec![histogram(), to_v1(bad)];
        series.exemplars = vec![v1::Exemplar {
            value: 1.0,
            ..Default::default()
        }];
        let mut b = V2::new();
        let s = b.series(&[("__name__", "h")], &[(1.0, NOW)]);
        s.histograms = vec![histogram::from_v1(histogram()), bad.clone()];
        s.exemplars = vec![v2::Exemplar {
            value: 1.0,
            ..Default::default()
        }];
        for d in [decode_v1(vec![series]), b.decode().unwrap()] {
            let r = &d.refused;
            assert_eq!(
                (r.series, r.samples, r.histograms, r.exemplars),
                (0, 0, 1, 0),
                "{why}: {r:?}"
            );
            assert_eq!((d.samples, d.histograms, d.exemplars), (1, 1, 1), "{why}");
            assert_eq!(d.series[0].histograms[0].count, Some(Count::CountInt(3)));
            // `why` is the whole reason, or its start where it is long.
            assert_eq!(r.reasons.len(), 1, "{why}: {r:?}");
            assert!(
                r.reasons[0].starts_with(&format!(
                    r#"series {{__name__="h"}}: 1 native histogram samples refused, the first: {why}"#
                )),
                "{why}: {r:?}"
            );
        }
    }
    // A series all of whose points are refused is counted refused.
    let mut series = v1_series(&[("__name__", "h")], &[]);
    series.histograms = vec![to_v1(&cases[0].0), to_v1(&cases[1].0)];
    let d = decode_v1(vec![series]);
    assert!(d.series.is_empty());
    let r = &d.refused;
    assert_eq!((r.series, r.histograms), (1, 2));
    assert!(
        r.reasons[0].contains("2 native histogram samples refused, the first: schema 9"),
        "{r:?}"
    );
}

fn v1_exemplar(labels: &[(&str, &str)], value: f64, timestamp: i64) -> v1::Exemplar {
    v1::Exemplar {
        labels: labels
            .iter()
            .map(|(n, v)| v1::Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        value,
        timestamp,
    }
}

impl V2 {
    fn exemplar(&mut self, labels: &[(&str, &str)], value: f64, timestamp: i64) -> v2::Exemplar {
        v2::Exemplar {
            labels_refs: labels
                .iter()
                .flat_map(|(n, v)| [self.sym(n), self.sym(v)])
                .collect(),
            value,
            timestamp,
        }
    }
}

#[test]
fn exemplars_are_stored_from_both_versions() {
    // 128 characters exactly: 60 two-byte ones and 68 ASCII.
    let name = "é".repeat(60);
    let value = "v".repeat(68);
    let sent: [(Pairs, f64, i64); 4] = [
        (
            vec![("trace_id", "4bf92f3577b34da6"), ("span_id", "00f067aa")],
            0.25,
            NOW,
        ),
        // No labels, no timestamp: both optional.
        (vec![], 1.5, 0),
        (
            vec![(name.as_str(), value.as_str())],
            f64::from_bits(STALE_NAN),
            NOW - 1,
        ),
        // An empty value is kept: exemplar labels are not an identity.
        (vec![("trace_id", "")], -7.0, NOW),
    ];
    let want = vec![
        Exemplar {
            labels: labels(&[("span_id", "00f067aa"), ("trace_id", "4bf92f3577b34da6")]),
            value: 0.25,
            timestamp_ms: Some(NOW),
        },
        Exemplar {
            labels: vec![],
            value: 1.5,
            timestamp_ms: None,
        },
        Exemplar {
            labels: labels(&[(name.as_str(), value.as_str())]),
            value: f64::from_bits(STALE_NAN),
            timestamp_ms: Some(NOW - 1),
        },
        Exemplar {
            labels: labels(&[("trace_id", "")]),
            value: -7.0,
            timestamp_ms: Some(NOW),
        },
    ];
    let mut series = v1_series(&[("__name__", "rpc_seconds_bucket"), ("le", "0.5")], &[]);
    series.exemplars = sent
        .iter()
        .map(|(l, v, t)| v1_exemplar(l, *v, *t))
        .collect();
    let mut b = V2::new();
    let exemplars = sent.iter().map(|(l, v, t)| b.exemplar(l, *v, *t)).collect();
    b.series(&[("__name__", "rpc_seconds_bucket"), ("le", "0.5")], &[])
        .exemplars = exemplars;
    for d in [decode_v1(vec![series]), b.decode().unwrap()] {
        assert!(d.refused.is_empty(), "{:?}", d.refused);
        assert_eq!((d.samples, d.histograms, d.exemplars), (0, 0, 4));
        let got = &d.series[0].exemplars;
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(
                (&g.labels, g.value.to_bits(), g.timestamp_ms),
                (&w.labels, w.value.to_bits(), w.timestamp_ms)
            );
        }
    }
}

#[test]
fn each_exemplar_rule_refuses_that_exemplar_alone() {
    let name = "é".repeat(60);
    let value = "v".repeat(69);
    let control = "a\u{1b}b";
    let cases: Vec<(Pairs, i64, &str)> = vec![
        (
            vec![(name.as_str(), value.as_str())],
            NOW,
            "labels over 128 characters, names and values together",
        ),
        (
            vec![("trace_id", "a"), ("trace_id", "b")],
            NOW,
            "duplicate label \"trace_id\"",
        ),
        (vec![("", "a")], NOW, "invalid label name \"\": empty"),
        (
            vec![(control, "a")],
            NOW,
            "invalid label name \"a\\u{1b}b\": control character",
        ),
        (vec![("trace_id", "a")], -1, "timestamp -1 ms, before 1970"),
        (
            vec![("trace_id", "a")],
            NOW + MAX_FUTURE_MS + 1,
            "timestamp 1700000600001 ms, more than 10 minutes in the future",
        ),
    ];
    for (pairs, ts, why) in &cases {
        let good = v1_exemplar(&[("trace_id", "ok")], 1.0, NOW);
        let mut series = v1_series(&[("__name__", "x")], &[(1.0, NOW)]);
        series.exemplars = vec![good, v1_exemplar(pairs, 2.0, *ts)];
        let mut b = V2::new();
        let exemplars = vec![
            b.exemplar(&[("trace_id", "ok")], 1.0, NOW),
            b.exemplar(pairs, 2.0, *ts),
        ];
        b.series(&[("__name__", "x")], &[(1.0, NOW)]).exemplars = exemplars;
        for d in [decode_v1(vec![series]), b.decode().unwrap()] {
            let r = &d.refused;
            assert_eq!(
                (r.series, r.samples, r.exemplars),
                (0, 0, 1),
                "{why}: {r:?}"
            );
            assert_eq!((d.samples, d.exemplars), (1, 1), "{why}");
            assert_eq!(
                r.reasons,
                vec![format!(
                    r#"series {{__name__="x"}}: 1 exemplars refused, the first: {why}"#
                )],
                "{why}"
            );
        }
    }
    // 2.0 refs: whole, and in the table.
    let mut b = V2::new();
    let good = b.exemplar(&[("trace_id", "ok")], 1.0, NOW);
    let mut odd = good.clone();
    odd.labels_refs.push(1);
    let mut far = good.clone();
    far.labels_refs[1] = 1000;
    b.series(&[("__name__", "x")], &[]).exemplars = vec![odd, good.clone()];
    b.series(&[("__name__", "y")], &[]).exemplars = vec![far, good];
    let d = b.decode().unwrap();
    assert_eq!((d.refused.exemplars, d.exemplars), (2, 2));
    assert!(
        d.refused.reasons[0].ends_with("the first: labels_refs has an odd length (3)"),
        "{:?}",
        d.refused
    );
    assert!(
        d.refused.reasons[1].contains("the first: label ref 1000 out of range"),
        "{:?}",
        d.refused
    );
}

#[test]
fn v2_metadata_unit_and_help_reach_every_point() {
    let mut b = V2::new();
    let unit = b.sym("seconds");
    let help = b.sym("How long a request took.");
    let long_help = "é".repeat(MAX_HELP_LEN);
    let long = b.sym(&long_help);
    let ex = b.exemplar(&[("trace_id", "abc")], 0.2, NOW);
    let s = b.series(&[("__name__", "rpc_seconds"), ("job", "a")], &[(1.0, NOW)]);
    s.metadata = Some(v2::Metadata {
        r#type: v2::metadata::MetricType::Histogram as i32,
        help_ref: help,
        unit_ref: unit,
    });
    s.histograms = vec![int_exponential()];
    s.exemplars = vec![ex];
    b.series(&[("__name__", "doc"), ("job", "a")], &[(2.0, NOW)])
        .metadata = Some(v2::Metadata {
        r#type: 0,
        help_ref: long,
        unit_ref: 0,
    });
    let mut d = b.decode().unwrap();
    assert!(d.refused.is_empty(), "{:?}", d.refused);
    // The series keeps its help as sent; what is remembered is cut.
    assert_eq!(d.series[1].help.as_deref(), Some(long_help.as_str()));
    let remembered = d.metadata[1].1.help.as_deref().unwrap();
    assert_eq!(remembered, "é".repeat(MAX_HELP_LEN / 2));
    let types = TypeCache::default();
    let metrics = metrics_of(&mut d, "prom", &types);
    assert_eq!(metrics.len(), 4);
    for m in &metrics[..3] {
        assert_eq!(m.kind, crate::record::MetricType::Histogram);
        assert_eq!(m.unit.as_deref(), Some("seconds"), "{m:?}");
        assert_eq!(m.help.as_deref(), Some("How long a request took."));
    }
    assert_eq!(metrics[3].unit, None);
    assert_eq!(metrics[3].help.as_deref(), Some(long_help.as_str()));
    assert_eq!(metrics[3].kind, crate::record::MetricType::Unknown);
}

#[test]
fn v1_metadata_unit_and_help_are_remembered_per_sender() {
    let types = TypeCache::default();
    // 600 bytes of help: cut to the last character boundary under 512.
    let long_help = format!("x{}", "é".repeat(300));
    let metadata = v1::WriteRequest {
        timeseries: vec![],
        metadata: vec![
            v1::MetricMetadata {
                r#type: v1::metric_metadata::MetricType::Counter as i32,
                metric_family_name: "http_requests".into(),
                help: "Requests served.".into(),
                unit: "requests".into(),
            },
            v1::MetricMetadata {
                r#type: v1::metric_metadata::MetricType::Gaugehistogram as i32,
                metric_family_name: "queue_depth".into(),
                help: long_help.clone(),
                unit: String::new(),
            },
        ],
    };
    let mut d = decode(Version::V1, &metadata.encode_to_vec(), NOW).unwrap();
    assert!(metrics_of(&mut d, "prom", &types).is_empty());

    // Samples come later, in requests of their own.
    let mut h = v1_series(&[("__name__", "queue_depth"), ("q", "a")], &[]);
    h.histograms = vec![histogram()];
    let body = v1_body(vec![
        v1_series(
            &[("__name__", "http_requests_total"), ("code", "200")],
            &[(1.0, NOW)],
        ),
        v1_series(
            &[("__name__", "queue_depth_bucket"), ("le", "1")],
            &[(2.0, NOW)],
        ),
        h,
        v1_series(&[("__name__", "other")], &[(3.0, NOW)]),
    ]);
    let mut d = decode(Version::V1, &body, NOW).unwrap();
    let metrics = metrics_of(&mut d, "prom", &types);
    let got: Vec<_> = metrics
        .iter()
        .map(|m| {
            (
                m.name.as_ref(),
                m.kind,
                m.unit.as_deref(),
                m.help.as_ref().map(|h| h.len()),
            )
        })
        .collect();
    use crate::record::MetricType as T;
    let cut = long_help[..labels::boundary(&long_help, MAX_HELP_LEN)].len();
    assert_eq!(cut, 511);
    assert_eq!(
        got,
        vec![
            (
                "http_requests_total",
                T::Counter,
                Some("requests"),
                Some(16)
            ),
            ("queue_depth_bucket", T::GaugeHistogram, None, Some(cut)),
            ("queue_depth", T::GaugeHistogram, None, Some(cut)),
            ("other", T::Unknown, None, None),
        ]
    );
    assert_eq!(metrics[0].help.as_deref(), Some("Requests served."));
    // Another sender's series know nothing of it.
    let mut d = decode(Version::V1, &body, NOW).unwrap();
    assert!(metrics_of(&mut d, "other-sender", &types)
        .iter()
        .all(|m| m.help.is_none() && m.unit.is_none()));
}

#[test]
fn v2_start_timestamps_are_per_sample() {
    let mut b = V2::new();
    let s = b.series(
        &[("__name__", "jobs_total")],
        &[(1.0, NOW - 2), (2.0, NOW - 1), (3.0, NOW)],
    );
    s.samples[1].start_timestamp = NOW - 60_000;
    s.samples[2].start_timestamp = NOW - 30_000;
    let s = b.series(&[("__name__", "old_sender")], &[(1.0, NOW - 1), (2.0, NOW)]);
    s.created_timestamp = NOW - 5;
    s.samples[1].start_timestamp = NOW - 3;
    let mut h = int_exponential();
    h.start_timestamp = NOW - 7;
    b.series(&[("__name__", "h")], &[]).histograms = vec![int_exponential(), h];
    let mut d = b.decode().unwrap();
    assert_eq!(
        starts(&d.series[0]),
        vec![None, Some(NOW - 60_000), Some(NOW - 30_000)]
    );
    // The deprecated per-series one where a sample has none.
    assert_eq!(starts(&d.series[1]), vec![Some(NOW - 5), Some(NOW - 3)]);
    let metrics = metrics_of(&mut d, "prom", &TypeCache::default());
    let created: Vec<Option<u64>> = metrics.iter().map(|m| m.created_timestamp).collect();
    let ms = |t: i64| Some(t as u64);
    assert_eq!(
        created,
        vec![
            None,
            ms(NOW - 60_000),
            ms(NOW - 30_000),
            ms(NOW - 5),
            ms(NOW - 3),
            None,
            ms(NOW - 7)
        ]
    );
    // A series of native histograms without a type is a histogram.
    assert_eq!(metrics[5].kind, crate::record::MetricType::Histogram);
    assert_eq!(metrics[0].kind, crate::record::MetricType::Unknown);
}

/// What `metrics_of` makes of every kind of point is stored and read back
/// as it was decoded: each histogram field by field (floats by their
/// bits, the staleness marker and a NaN payload included), each exemplar,
/// the start timestamps, unit and help.
#[test]
fn decoded_points_read_back_from_a_compact_record_bit_for_bit() {
    use crate::record::{self, Format, PartitionReader};

    let mut b = V2::new();
    let unit = b.sym("seconds");
    let help = b.sym("Request latency.");
    let mut stale = int_exponential();
    stale.sum = f64::from_bits(STALE_NAN);
    stale.start_timestamp = NOW - 9_000;
    let mut payload = float_exponential();
    payload.positive_counts = vec![f64::from_bits(0x7ff8_0000_dead_beef)];
    payload.sum = f64::from_bits(0x7ff8_0000_0000_0001);
    let histograms = vec![stale, payload, int_custom(), float_custom()];
    let exemplars = vec![
        b.exemplar(&[("trace_id", "abc"), ("span_id", "d")], 0.3, NOW - 4),
        b.exemplar(&[], f64::INFINITY, 0),
        b.exemplar(&[("trace_id", "ünï")], f64::from_bits(STALE_NAN), NOW),
    ];
    let s = b.series(
        &[
            ("__name__", "http.server.duration"),
            ("service.name", "api"),
        ],
        &[(0.1 + 0.2, NOW - 1), (f64::from_bits(STALE_NAN), NOW)],
    );
    s.samples[0].start_timestamp = NOW - 60_000;
    s.metadata = Some(v2::Metadata {
        r#type: v2::metadata::MetricType::Histogram as i32,
        help_ref: help,
        unit_ref: unit,
    });
    s.histograms = histograms;
    s.exemplars = exemplars;
    b.series(&[("__name__", "plain")], &[(-1.5, NOW)]);
    let mut d = b.decode().unwrap();
    assert!(d.refused.is_empty(), "{:?}", d.refused);
    let decoded = d.clone();
    let received_at = (NOW + 1) as u64;
    let mut metrics = metrics_of(&mut d, "prom", &TypeCache::default());
    let payloads =
        record::records(Format::Compact, "prom", received_at, &mut metrics, 1 << 20).unwrap();
    let mut reader = PartitionReader::new();
    let mut read = Vec::new();
    for (offset, p) in payloads.into_iter().enumerate() {
        let head = reader
            .read(offset as u64, &p.into_bytes().unwrap(), &mut read)
            .unwrap();
        assert_eq!(head.client_id, "prom");
    }
    assert_eq!(read.len(), decoded.points());

    let mut read = read.iter();
    for series in &decoded.series {
        let tags: Vec<(String, String)> = series.labels.clone();
        for s in &series.samples {
            let got = read.next().unwrap();
            assert!(got.is_plain(), "{got:?}");
            assert_eq!(
                (got.name(), got.labels()),
                (series.name.as_str(), &tags[..])
            );
            assert_eq!(got.value.as_f64().to_bits(), s.value.to_bits());
            assert_eq!(got.timestamp, s.timestamp_ms);
            let extra = got.extra.as_deref();
            assert_eq!(
                extra.and_then(|e| e.start_timestamp),
                s.start_timestamp_ms.map(|t| t as u64)
            );
            assert_eq!(
                extra.and_then(|e| e.unit.as_deref()),
                series.unit.as_deref()
            );
            assert_eq!(
                extra.and_then(|e| e.help.as_deref()),
                series.help.as_deref()
            );
        }
        for h in &series.histograms {
            let got = read.next().unwrap();
            let g = got.histogram().expect("a histogram");
            assert_eq!(got.name(), series.name);
            assert_eq!(got.timestamp, h.timestamp);
            assert_eq!(got.value, metrics_count(h));
            assert_eq!(got.kind, crate::record::MetricType::Histogram);
            assert_eq!(g.count.map(count_bits), h.count.map(count_bits));
            assert_eq!(g.zero_count.map(zero_bits), h.zero_count.map(zero_bits));
            assert_eq!(g.sum.to_bits(), h.sum.to_bits());
            assert_eq!(g.schema, h.schema);
            assert_eq!(g.zero_threshold.to_bits(), h.zero_threshold.to_bits());
            assert_eq!(g.negative_spans, h.negative_spans);
            assert_eq!(g.negative_deltas, h.negative_deltas);
            assert_eq!(bits(&g.negative_counts), bits(&h.negative_counts));
            assert_eq!(g.positive_spans, h.positive_spans);
            assert_eq!(g.positive_deltas, h.positive_deltas);
            assert_eq!(bits(&g.positive_counts), bits(&h.positive_counts));
            assert_eq!(g.reset_hint, h.reset_hint);
            assert_eq!(g.timestamp, h.timestamp);
            assert_eq!(bits(&g.custom_values), bits(&h.custom_values));
            assert_eq!(g.start_timestamp, h.start_timestamp);
            let extra = got.extra.as_deref().unwrap();
            assert_eq!(
                extra.start_timestamp,
                (h.start_timestamp > 0).then_some(h.start_timestamp as u64)
            );
            assert_eq!(extra.unit.as_deref(), Some("seconds"));
            assert_eq!(extra.help.as_deref(), Some("Request latency."));
        }
        for e in &series.exemplars {
            let got = read.next().unwrap();
            assert_eq!(got.exemplar(), Some(&e.labels[..]), "{got:?}");
            assert_eq!(got.name(), series.name);
            assert_eq!(got.value.as_f64().to_bits(), e.value.to_bits());
            // No timestamp sent: the receive time.
            assert_eq!(got.timestamp, e.timestamp_ms.unwrap_or(NOW + 1));
        }
    }
    assert!(read.next().is_none());
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|f| f.to_bits()).collect()
}

fn count_bits(c: Count) -> (bool, u64) {
    match c {
        Count::CountInt(n) => (false, n),
        Count::CountFloat(f) => (true, f.to_bits()),
    }
}

fn zero_bits(c: ZeroCount) -> (bool, u64) {
    match c {
        ZeroCount::ZeroCountInt(n) => (false, n),
        ZeroCount::ZeroCountFloat(f) => (true, f.to_bits()),
    }
}

fn metrics_count(h: &v2::Histogram) -> crate::record::Value {
    match h.count {
        Some(Count::CountFloat(f)) => crate::record::Value::Float(f),
        Some(Count::CountInt(n)) => crate::record::Value::UInt(n),
        None => panic!("decoding sets the count"),
    }
}

/// Names as Prometheus 3 and OpenTelemetry send them, each stored as sent
/// by both versions; the few still refused, each for its reason.
#[test]
fn utf8_names_hostile_table() {
    let at_limit = format!("{}x", "é".repeat(127));
    let over = format!("{}xy", "é".repeat(127));
    assert_eq!(
        (at_limit.len(), over.len()),
        (MAX_NAME_LEN, MAX_NAME_LEN + 1)
    );
    let accepted: Vec<(&str, Pairs)> = vec![
        (
            "dotted OpenTelemetry names",
            vec![
                ("__name__", "http.server.request.duration"),
                ("http.request.method", "GET"),
                ("service.name", "checkout"),
            ],
        ),
        (
            "non-ASCII",
            vec![
                ("__name__", "température_°C"),
                ("städte", "Zürich"),
                ("日本", "東京"),
            ],
        ),
        (
            "emoji",
            vec![("__name__", "🔥_total"), ("🦀", "ferris"), ("🦀🦀", "two")],
        ),
        (
            "a metric name of only __",
            vec![("__", "x"), ("__name__", "__")],
        ),
        (
            "reserved __ names, as Prometheus 3 sends them",
            vec![
                ("__name__", "rpc_seconds"),
                ("__type__", "histogram"),
                ("__unit__", "seconds"),
            ],
        ),
        (
            "PromQL punctuation",
            vec![
                ("\"quoted\"", "v"),
                ("__name__", "a{b=\"c\"}"),
                ("a b", "v"),
                ("{}=,", "v"),
            ],
        ),
        (
            "leading digit and dash",
            vec![("1abc", "v"), ("__name__", "x"), ("a-b", "v")],
        ),
        (
            "combining mark alone",
            vec![("__name__", "x"), ("\u{301}", "v")],
        ),
        // Sorted by bytes (UTF-8 and code points agree): U+FF21 before
        // U+1F980, which UTF-16 order would put the other way round.
        (
            "sorted by bytes",
            vec![
                ("Z", "1"),
                ("__name__", "x"),
                ("a", "2"),
                ("é", "3"),
                ("Ａ", "4"),
                ("🦀", "5"),
            ],
        ),
        (
            "names at 255 bytes",
            vec![("__name__", &at_limit), (&at_limit, "v")],
        ),
    ];
    for (what, pairs) in &accepted {
        let mut b = V2::new();
        b.series(pairs, &[(1.0, NOW)]);
        for d in [
            decode_v1(vec![v1_series(pairs, &[(1.0, NOW)])]),
            b.decode().unwrap(),
        ] {
            assert!(d.refused.is_empty(), "{what}: {:?}", d.refused);
            let s = &d.series[0];
            let mut want: Vec<(String, String)> = labels(pairs);
            let name = want.iter().position(|(n, _)| n == "__name__").unwrap();
            let (_, metric) = want.remove(name);
            assert_eq!((&s.name, &s.labels), (&metric, &want), "{what}");
        }
    }
    let refused: Vec<(&str, Pairs, &str)> = vec![
        (
            "newline in a metric name",
            vec![("__name__", "http.server\nduration")],
            "control character in metric name",
        ),
        (
            "tab in a label name",
            vec![("__name__", "x"), ("service\tname", "v")],
            r#"invalid label name "service\tname": control character"#,
        ),
        (
            "terminal escape in a label name",
            vec![("\u{1b}[31mred", "v"), ("__name__", "x")],
            "control character",
        ),
        (
            "DEL",
            vec![("__name__", "x\u{7f}")],
            "control character in metric name",
        ),
        (
            "C1 control (NEL)",
            vec![("__name__", "x"), ("a\u{85}", "v")],
            "control character",
        ),
        (
            "NUL",
            vec![("__name__", "x"), ("a\0", "v")],
            "control character",
        ),
        (
            "overlong multi-byte metric name",
            vec![("__name__", &over)],
            "metric name over 255 bytes",
        ),
        (
            "overlong multi-byte label name",
            vec![("__name__", "x"), (&over, "v")],
            "over 255 bytes",
        ),
        (
            "empty label name",
            vec![("", "v"), ("__name__", "x")],
            "empty",
        ),
        (
            "sorted by UTF-16, not by bytes",
            vec![("__name__", "x"), ("🦀", "1"), ("Ａ", "2")],
            "labels not sorted",
        ),
        (
            "the same dotted name twice",
            vec![
                ("__name__", "x"),
                ("service.name", "a"),
                ("service.name", "b"),
            ],
            "duplicate label \"service.name\"",
        ),
    ];
    for (what, pairs, why) in &refused {
        let reason = refusal(pairs);
        assert!(reason.contains(why), "{what}: {reason}");
        assert!(reason.len() <= MAX_REASON_LEN, "{what}: {reason}");
        let mut b = V2::new();
        b.series(pairs, &[(1.0, NOW)]);
        let d = b.decode().unwrap();
        assert!(d.series.is_empty(), "{what}");
        assert!(
            d.refused.reasons[0].contains(why),
            "{what}: {:?}",
            d.refused
        );
    }
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
fn family_for_tries_the_family_suffixes() {
    let mut metadata: HashMap<String, Family> = [
        ("req", Kind::Counter),
        ("req_total", Kind::Counter),
        ("lat", Kind::Histogram),
        ("glat", Kind::GaugeHistogram),
        ("rpc", Kind::Summary),
        ("temp", Kind::Gauge),
    ]
    .into_iter()
    .map(|(n, k)| (n.to_string(), family(Some(k), None, None)))
    .collect();
    // Described without a type: matched by its own name only.
    metadata.insert("doc".into(), family(None, None, Some("documented")));
    let cases = [
        ("req_total", Some(Kind::Counter)),
        ("req_created", Some(Kind::Counter)),
        ("lat_bucket", Some(Kind::Histogram)),
        ("lat_sum", Some(Kind::Histogram)),
        ("lat_count", Some(Kind::Histogram)),
        ("lat_gcount", Some(Kind::Histogram)),
        ("glat_bucket", Some(Kind::GaugeHistogram)),
        ("glat_gsum", Some(Kind::GaugeHistogram)),
        ("glat_gcount", Some(Kind::GaugeHistogram)),
        ("glat_created", None),
        ("rpc_sum", Some(Kind::Summary)),
        ("rpc_count", Some(Kind::Summary)),
        ("rpc_bucket", None),
        ("temp", Some(Kind::Gauge)),
        ("temp_total", None),
        ("temp_sum", None),
        ("other", None),
        ("_total", None),
        ("doc", None),
    ];
    for (name, kind) in cases {
        let got = family_for(name, &metadata).and_then(|f| f.kind);
        assert_eq!(got, kind, "{name}");
    }
    assert_eq!(
        family_for("doc", &metadata).and_then(|f| f.help.as_deref()),
        Some("documented")
    );
    assert!(family_for("doc_total", &metadata).is_none());
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
    // Every kind of point, valid and not, under UTF-8 names, with unit
    // and help: what the fuzzer starts from to reach each rule.
    let mut bad = int_custom();
    bad.custom_values = vec![1.0, f64::NAN];
    let mut h1 = v1_series(&[("__name__", "rpc.duration"), ("service.name", "é")], &[]);
    h1.histograms = all_kinds().iter().chain([&bad]).map(to_v1).collect();
    h1.exemplars = vec![
        v1_exemplar(&[("trace_id", "abc")], 0.5, NOW),
        v1_exemplar(&[("a", "1"), ("a", "2")], 0.5, 0),
    ];
    let v1_points = v1::WriteRequest {
        timeseries: vec![h1],
        metadata: vec![v1::MetricMetadata {
            r#type: v1::metric_metadata::MetricType::Histogram as i32,
            metric_family_name: "rpc.duration".into(),
            help: "RPC latency.".into(),
            unit: "seconds".into(),
        }],
    }
    .encode_to_vec();
    let mut b = V2::new();
    let help = b.sym("RPC latency.");
    let unit = b.sym("seconds");
    let exemplars = vec![
        b.exemplar(&[("trace_id", "🦀")], 0.5, NOW),
        b.exemplar(&[("trace_id", "x")], 0.5, -1),
    ];
    let s = b.series(&[("__name__", "rpc.duration"), ("🦀", "1")], &[(1.0, NOW)]);
    s.samples[0].start_timestamp = NOW - 1;
    s.histograms = all_kinds().into_iter().chain([bad]).collect();
    s.exemplars = exemplars;
    s.metadata = Some(v2::Metadata {
        r#type: v2::metadata::MetricType::Gaugehistogram as i32,
        help_ref: help,
        unit_ref: unit,
    });
    let v2_points = b.body();
    let seeds: [(&str, u8, Vec<u8>); 12] = [
        ("v1-points", 2, snappy(&v1_points)),
        ("v2-points", 3, snappy(&v2_points)),
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
    assert_eq!(
        d.metadata,
        vec![(
            "rpc_seconds".to_string(),
            family(Some(Kind::Summary), None, None)
        )]
    );
    assert!(d.series.is_empty() && d.refused.is_empty());

    let mut b = V2::new();
    b.series(&[("__name__", "rpc_seconds")], &[]).metadata = Some(v2::Metadata {
        r#type: v2::metadata::MetricType::Summary as i32,
        ..Default::default()
    });
    let d = b.decode().unwrap();
    assert_eq!(
        d.metadata,
        vec![(
            "rpc_seconds".to_string(),
            family(Some(Kind::Summary), None, None)
        )]
    );
    assert!(d.series.is_empty() && d.refused.is_empty());
}
