//! `POST /api/v1/write` end to end in-process: what each request gets, and
//! what `consume` reads back, value for value (NaN staleness markers and
//! infinities included).

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::in_process::InProcess;
use common::{consume_all, request, Response};
use metricstream::queue::AckMode;
use prompb::{v1, v2};
use prost::Message as _;

const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;
const V1: &str = "application/x-protobuf";
const V2: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn snappy(raw: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(raw).unwrap()
}

fn post(s: &InProcess, content_type: &str, body: &[u8]) -> Response {
    request(
        s.addr,
        "POST",
        "/api/v1/write",
        &[
            ("Content-Type", content_type),
            ("Content-Encoding", "snappy"),
            ("X-Prometheus-Remote-Write-Version", "0.1.0"),
            ("Authorization", "prom-a"),
        ],
        body,
    )
}

fn labels(pairs: &[(&str, &str)]) -> Vec<v1::Label> {
    pairs
        .iter()
        .map(|(n, v)| v1::Label {
            name: n.to_string(),
            value: v.to_string(),
        })
        .collect()
}

fn series(pairs: &[(&str, &str)], samples: &[(f64, i64)]) -> v1::TimeSeries {
    v1::TimeSeries {
        labels: labels(pairs),
        samples: samples
            .iter()
            .map(|&(value, timestamp)| v1::Sample { value, timestamp })
            .collect(),
        ..Default::default()
    }
}

fn v1_body(timeseries: Vec<v1::TimeSeries>, metadata: Vec<v1::MetricMetadata>) -> Vec<u8> {
    snappy(
        &v1::WriteRequest {
            timeseries,
            metadata,
        }
        .encode_to_vec(),
    )
}

fn counter_metadata(family: &str) -> v1::MetricMetadata {
    v1::MetricMetadata {
        r#type: v1::metric_metadata::MetricType::Counter as i32,
        metric_family_name: family.to_string(),
        help: "help".into(),
        unit: String::new(),
    }
}

/// The error message; "" for an answer without a body (204).
fn error_of(r: &Response) -> String {
    if r.body.is_empty() {
        return String::new();
    }
    r.json()["error"].as_str().unwrap_or_default().to_string()
}

#[test]
fn v1_samples_are_read_back_exactly_with_their_types() {
    let dir = tempfile::tempdir().unwrap();
    let s = InProcess::start(dir.path(), AckMode::Durable);
    let t = now_ms();
    // Prometheus sends metadata in requests of its own: remembered per sender.
    let r = post(
        &s,
        V1,
        &v1_body(vec![], vec![counter_metadata("http_requests_total")]),
    );
    assert_eq!(r.status, 204, "{r:?}");
    let body = v1_body(
        vec![
            series(
                &[
                    ("__name__", "http_requests_total"),
                    ("code", "200"),
                    ("job", "api"),
                ],
                &[(1.0, t - 2000), (2.5, t - 1000)],
            ),
            series(
                &[("__name__", "up"), ("instance", "a:9100"), ("job", "node")],
                &[
                    (f64::from_bits(STALE_NAN), t - 3),
                    (f64::INFINITY, t - 2),
                    (f64::NEG_INFINITY, t - 1),
                    (0.1 + 0.2, t),
                ],
            ),
        ],
        vec![],
    );
    let r = post(&s, V1, &body);
    assert_eq!(r.status, 204, "{r:?}");
    let stats = request(s.addr, "GET", "/stats", &[], b"").json();
    assert_eq!(stats["protocols"]["remote_write"]["samples_received"], 6);
    assert_eq!(s.stop().lost, 0);

    let lines = consume_all(dir.path(), "check");
    assert_eq!(lines.len(), 6, "{lines:#?}");
    let first = &lines[0];
    assert_eq!(first["name"], "http_requests_total");
    assert_eq!(first["type"], "counter");
    assert_eq!(first["client_id"], "prom-a");
    assert_eq!(
        first["tags"],
        serde_json::json!({"code": "200", "job": "api"})
    );
    assert_eq!(first["timestamp"], t - 2000);
    assert_eq!(first["value"], 1.0);
    // The help of the remembered metadata comes with the type.
    assert_eq!(first["help"], "help");
    assert!(first.get("unit").is_none(), "{first}");
    let up: Vec<&serde_json::Value> = lines.iter().filter(|l| l["name"] == "up").collect();
    assert_eq!(up[0]["type"], "unknown", "no metadata was sent for up");
    assert_eq!(up[0]["value"], "StaleNaN");
    assert_eq!(up[1]["value"], "+Inf");
    assert_eq!(up[2]["value"], "-Inf");
    assert_eq!(
        up[3]["value"].as_f64().unwrap().to_bits(),
        (0.1f64 + 0.2).to_bits()
    );
    assert_eq!(up[3]["timestamp"], t);
}

#[test]
fn v2_symbols_types_created_timestamps_and_written_headers() {
    let dir = tempfile::tempdir().unwrap();
    let s = InProcess::start(dir.path(), AckMode::Durable);
    let t = now_ms();
    let req = v2::Request {
        symbols: [
            "",
            "__name__",
            "jobs_done_total",
            "job",
            "batch",
            "help text",
            "temp_celsius",
        ]
        .map(String::from)
        .to_vec(),
        timeseries: vec![
            v2::TimeSeries {
                labels_refs: vec![1, 2, 3, 4],
                samples: vec![v2::Sample {
                    value: 7.0,
                    timestamp: t,
                    ..Default::default()
                }],
                metadata: Some(v2::Metadata {
                    r#type: v2::metadata::MetricType::Counter as i32,
                    help_ref: 5,
                    unit_ref: 0,
                }),
                created_timestamp: t - 60_000,
                ..Default::default()
            },
            v2::TimeSeries {
                labels_refs: vec![1, 6, 3, 4],
                samples: vec![v2::Sample {
                    value: -3.5,
                    timestamp: t,
                    ..Default::default()
                }],
                metadata: Some(v2::Metadata {
                    r#type: v2::metadata::MetricType::Gauge as i32,
                    ..Default::default()
                }),
                ..Default::default()
            },
        ],
    };
    let r = post(&s, V2, &snappy(&req.encode_to_vec()));
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(
        r.header("x-prometheus-remote-write-samples-written"),
        Some("2")
    );
    assert_eq!(
        r.header("x-prometheus-remote-write-histograms-written"),
        Some("0")
    );
    assert_eq!(
        r.header("x-prometheus-remote-write-exemplars-written"),
        Some("0")
    );
    // A ref past the symbol table refuses that series only.
    let mut bad = req.clone();
    bad.timeseries[1].labels_refs = vec![1, 6, 3, 99];
    let r = post(&s, V2, &snappy(&bad.encode_to_vec()));
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(
        r.header("x-prometheus-remote-write-samples-written"),
        Some("1")
    );
    assert!(error_of(&r).contains("1 series refused"), "{r:?}");
    assert_eq!(s.stop().lost, 0);

    let lines = consume_all(dir.path(), "check");
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert_eq!(lines[0]["name"], "jobs_done_total");
    assert_eq!(lines[0]["type"], "counter");
    assert_eq!(lines[0]["created_timestamp"], t - 60_000);
    assert_eq!(lines[0]["tags"], serde_json::json!({"job": "batch"}));
    assert_eq!(lines[1]["name"], "temp_celsius");
    assert_eq!(lines[1]["type"], "gauge");
    assert_eq!(lines[1]["value"], -3.5);
}

#[test]
fn one_bad_series_costs_only_itself() {
    let dir = tempfile::tempdir().unwrap();
    let s = InProcess::start(dir.path(), AckMode::Durable);
    let t = now_ms();
    let body = v1_body(
        vec![
            series(&[("__name__", "good"), ("job", "a")], &[(1.0, t)]),
            series(
                &[("__name__", "x"), ("zone", "b"), ("job", "y")],
                &[(2.0, t)],
            ),
            series(&[("__name__", "good"), ("job", "b")], &[(3.0, t)]),
        ],
        vec![],
    );
    let r = post(&s, V1, &body);
    assert_eq!(r.status, 400, "{r:?}");
    let e = error_of(&r);
    assert!(e.contains("1 series refused (1 samples"), "{e}");
    assert!(e.contains("2 samples stored"), "{e}");
    assert!(
        e.contains(r#"{__name__="x""#) && e.contains("not sorted"),
        "{e}"
    );
    assert_eq!(s.stop().lost, 0);
    let values: Vec<f64> = consume_all(dir.path(), "c")
        .iter()
        .map(|l| l["value"].as_f64().unwrap())
        .collect();
    assert_eq!(values, vec![1.0, 3.0]);
}

/// Each hostile request gets its documented answer, stores nothing it should
/// not, and the server keeps serving.
#[test]
fn hostile_requests_get_their_documented_answers() {
    let dir = tempfile::tempdir().unwrap();
    let s = InProcess::start(dir.path(), AckMode::Durable);
    let t = now_ms();
    let good = |name: &str| series(&[("__name__", name), ("job", "j")], &[(1.0, t)]);
    let v1_raw = v1::WriteRequest {
        timeseries: vec![good("a"), good("b")],
        metadata: vec![],
    }
    .encode_to_vec();
    let v2_raw = v2::Request {
        symbols: ["", "__name__", "a"].map(String::from).to_vec(),
        timeseries: vec![v2::TimeSeries {
            labels_refs: vec![1, 2],
            samples: vec![v2::Sample {
                value: 1.0,
                timestamp: t,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec();
    // A 100-byte body whose snappy header declares 4 GiB.
    let mut huge = vec![0x80, 0x80, 0x80, 0x80, 0x10];
    huge.resize(100, 0);
    let mut unknown_field = v1_raw.clone();
    // Field 15, varint 1: a field this version does not know.
    unknown_field.extend_from_slice(&[0x78, 0x01]);
    let ten_thousand: Vec<v1::TimeSeries> = (0..10_000)
        .map(|i| {
            series(
                &[("__name__", "many"), ("i", &i.to_string())],
                &[(i as f64, t)],
            )
        })
        .collect();

    type Case = (&'static str, &'static str, Vec<u8>, u16, &'static str);
    let cases: Vec<Case> = vec![
        (
            "not snappy",
            V1,
            b"definitely not snappy".to_vec(),
            400,
            "not valid snappy",
        ),
        (
            "snappy declaring 4 GiB",
            V1,
            huge,
            413,
            "declares 4294967296 bytes",
        ),
        (
            "truncated protobuf",
            V1,
            snappy(&v1_raw[..v1_raw.len() - 3]),
            400,
            "body:",
        ),
        (
            "unknown protobuf field",
            V1,
            snappy(&unknown_field),
            204,
            "",
        ),
        (
            "missing __name__",
            V1,
            v1_body(vec![series(&[("job", "j")], &[(1.0, t)])], vec![]),
            400,
            "__name__",
        ),
        (
            "unsorted labels",
            V1,
            v1_body(
                vec![series(
                    &[("__name__", "a"), ("z", "1"), ("b", "2")],
                    &[(1.0, t)],
                )],
                vec![],
            ),
            400,
            "not sorted",
        ),
        (
            "duplicate labels",
            V1,
            v1_body(
                vec![series(
                    &[("__name__", "a"), ("b", "1"), ("b", "2")],
                    &[(1.0, t)],
                )],
                vec![],
            ),
            400,
            "duplicate label",
        ),
        (
            "empty label value",
            V1,
            v1_body(
                vec![series(&[("__name__", "a"), ("b", "")], &[(1.0, t)])],
                vec![],
            ),
            400,
            "empty value",
        ),
        (
            "timestamp before 1970",
            V1,
            v1_body(vec![series(&[("__name__", "a")], &[(1.0, -1)])], vec![]),
            400,
            "1 samples",
        ),
        (
            "timestamp a day ahead",
            V1,
            v1_body(
                vec![series(&[("__name__", "a")], &[(1.0, t + 86_400_000)])],
                vec![],
            ),
            400,
            "1 samples",
        ),
        (
            "NaN and infinities",
            V1,
            v1_body(
                vec![series(
                    &[("__name__", "a")],
                    &[(f64::NAN, t), (f64::INFINITY, t)],
                )],
                vec![],
            ),
            204,
            "",
        ),
        ("10,000 series", V1, v1_body(ten_thousand, vec![]), 204, ""),
        (
            "2.0 body sent as 1.0",
            V1,
            snappy(&v2_raw),
            400,
            "a remote write 2.0 body",
        ),
        (
            "1.0 body sent as 2.0",
            V2,
            snappy(&v1_raw),
            400,
            "a remote write 1.0 body",
        ),
        (
            "JSON content type",
            "application/json",
            snappy(&v1_raw),
            415,
            "Content-Type",
        ),
        (
            "unknown proto parameter",
            "application/x-protobuf;proto=io.prometheus.write.v9.Request",
            snappy(&v1_raw),
            415,
            "unsupported Content-Type",
        ),
    ];
    for (what, content_type, body, status, says) in &cases {
        let r = post(&s, content_type, body);
        assert_eq!(r.status, *status, "{what}: {r:?}");
        assert!(error_of(&r).contains(says), "{what}: {r:?}");
        assert_eq!(
            request(s.addr, "GET", "/health", &[], b"").status,
            200,
            "after {what}"
        );
    }
    // Snappy is the only encoding remote_write takes.
    let r = request(
        s.addr,
        "POST",
        "/api/v1/write",
        &[("Content-Type", V1), ("Content-Encoding", "gzip")],
        &v1_raw,
    );
    assert_eq!(r.status, 415, "{r:?}");
    assert!(error_of(&r).contains("snappy"), "{r:?}");
    // Native histograms and exemplars are stored (they were refused before
    // issue 20): all-default ones are an empty integer histogram at 1970
    // and an exemplar without labels or timestamp, both valid. One that
    // breaks a rule is refused alone, counted, with its reason.
    let mut with_extras = series(&[("__name__", "h")], &[(1.0, t)]);
    with_extras.histograms = vec![v1::Histogram::default(); 3];
    with_extras.exemplars = vec![v1::Exemplar::default(); 2];
    let r = post(&s, V1, &v1_body(vec![with_extras.clone()], vec![]));
    assert_eq!(r.status, 204, "{r:?}");
    with_extras.histograms[1].schema = 9;
    with_extras.exemplars[0].timestamp = -1;
    let r = post(&s, V1, &v1_body(vec![with_extras], vec![]));
    assert_eq!(r.status, 400, "{r:?}");
    let e = error_of(&r);
    assert!(
        e.contains(
            "0 series refused (0 samples, 1 native histogram samples, 1 exemplars); \
             1 samples stored, 2 native histogram samples stored, 1 exemplars stored"
        ),
        "{e}"
    );
    assert!(e.contains("the first: schema 9"), "{e}");
    assert!(e.contains("the first: timestamp -1 ms, before 1970"), "{e}");
    assert_eq!(s.stop().lost, 0);
}

/// `--partition-by series`: one request spreads over the partitions, each
/// series' samples stay in one partition and in order across requests, and
/// the message key names the part's first series.
#[test]
fn series_partitioning_spreads_a_sender_and_keeps_each_series_in_order() {
    use metricstream::queue::PartitionBy;
    use std::collections::{BTreeMap, BTreeSet};

    let dir = tempfile::tempdir().unwrap();
    let s = InProcess::start_with(dir.path(), AckMode::Durable, PartitionBy::Series);
    let t = now_ms() - 10_000;
    for round in 0..3 {
        let all: Vec<v1::TimeSeries> = (0..200)
            .map(|i| {
                let id = i.to_string();
                let samples = [
                    (round as f64, t + round * 1000),
                    (round as f64 + 0.5, t + round * 1000 + 1),
                ];
                series(
                    &[("__name__", "load"), ("cpu", &id), ("job", "n")],
                    &samples,
                )
            })
            .collect();
        let r = post(&s, V1, &v1_body(all, vec![]));
        assert_eq!(r.status, 204, "{r:?}");
    }
    assert_eq!(s.stop().lost, 0);
    let lines = consume_all(dir.path(), "check");
    assert_eq!(lines.len(), 200 * 3 * 2);
    let mut partitions_of: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    let mut order: BTreeMap<String, Vec<(u64, u64, i64)>> = BTreeMap::new();
    for l in &lines {
        let cpu = l["tags"]["cpu"].as_str().unwrap().to_string();
        let p = l["partition"].as_u64().unwrap();
        partitions_of.entry(cpu.clone()).or_default().insert(p);
        order.entry(cpu).or_default().push((
            p,
            l["offset"].as_u64().unwrap(),
            l["timestamp"].as_i64().unwrap(),
        ));
    }
    assert!(
        partitions_of.values().all(|p| p.len() == 1),
        "a series in two partitions"
    );
    let used: BTreeSet<u64> = partitions_of.values().flatten().copied().collect();
    assert_eq!(
        used.len(),
        4,
        "200 series of one sender over all 4 partitions: {used:?}"
    );
    for (cpu, mut points) in order {
        points.sort();
        let stamps: Vec<i64> = points.iter().map(|p| p.2).collect();
        let mut sorted = stamps.clone();
        sorted.sort();
        assert_eq!(
            stamps, sorted,
            "series cpu={cpu}: samples out of order in the log"
        );
    }
    assert!(lines.iter().all(|l| l["client_id"] == "prom-a"));
}

fn span(offset: i32, length: u32) -> v2::BucketSpan {
    v2::BucketSpan { offset, length }
}

/// Native histograms (integer and float, exponential and custom buckets),
/// exemplars, UTF-8 names, unit and help, from both versions: the answers
/// count them, and `consume` prints each back as it was sent.
#[test]
fn native_histograms_exemplars_and_utf8_names_are_stored() {
    use v2::histogram::{Count, ResetHint, ZeroCount};

    let dir = tempfile::tempdir().unwrap();
    let s = InProcess::start(dir.path(), AckMode::Durable);
    let t = now_ms();

    // 1.0: the family's unit and help in a metadata request of their own,
    // then a histogram and an exemplar under dotted OpenTelemetry names.
    let metadata = v1::MetricMetadata {
        r#type: v1::metric_metadata::MetricType::Histogram as i32,
        metric_family_name: "http.server.duration".into(),
        help: "Duration of HTTP server requests.".into(),
        unit: "s".into(),
    };
    let r = post(&s, V1, &v1_body(vec![], vec![metadata]));
    assert_eq!(r.status, 204, "{r:?}");
    let mut h1 = series(
        &[
            ("__name__", "http.server.duration"),
            ("service.name", "api"),
        ],
        &[],
    );
    h1.histograms = vec![v1::Histogram {
        count: Some(v1::histogram::Count::CountInt(3)),
        sum: 1.5,
        schema: 3,
        zero_count: Some(v1::histogram::ZeroCount::ZeroCountInt(0)),
        positive_spans: vec![v1::BucketSpan {
            offset: -1,
            length: 2,
        }],
        positive_deltas: vec![1, 1],
        timestamp: t - 1000,
        ..Default::default()
    }];
    h1.exemplars = vec![v1::Exemplar {
        labels: labels(&[("trace_id", "4bf92f3577b34da6")]),
        value: 0.25,
        timestamp: t - 1000,
    }];
    let r = post(&s, V1, &v1_body(vec![h1], vec![]));
    assert_eq!(r.status, 204, "{r:?}");

    // 2.0: a float histogram of custom buckets with its start time, unit
    // and help by reference, an exemplar without a timestamp, and a float
    // sample with UTF-8 label names.
    let req = v2::Request {
        symbols: [
            "",
            "__name__",
            "queue.wait",
            "région",
            "Zürich",
            "seconds",
            "Time spent queued.",
            "trace_id",
            "abc",
            "température_°C",
            "🦀",
        ]
        .map(String::from)
        .to_vec(),
        timeseries: vec![
            v2::TimeSeries {
                labels_refs: vec![1, 2, 3, 4],
                histograms: vec![v2::Histogram {
                    count: Some(Count::CountFloat(2.5)),
                    sum: f64::from_bits(STALE_NAN),
                    schema: -53,
                    zero_count: Some(ZeroCount::ZeroCountFloat(0.0)),
                    positive_spans: vec![span(0, 1), span(1, 1)],
                    positive_counts: vec![1.5, 1.0],
                    custom_values: vec![0.5, 1.0],
                    reset_hint: ResetHint::No as i32,
                    timestamp: t,
                    start_timestamp: t - 60_000,
                    ..Default::default()
                }],
                exemplars: vec![v2::Exemplar {
                    labels_refs: vec![7, 8],
                    value: 0.75,
                    timestamp: 0,
                }],
                metadata: Some(v2::Metadata {
                    r#type: v2::metadata::MetricType::Gaugehistogram as i32,
                    help_ref: 6,
                    unit_ref: 5,
                }),
                ..Default::default()
            },
            v2::TimeSeries {
                labels_refs: vec![1, 9, 3, 4, 10, 4],
                samples: vec![v2::Sample {
                    value: 21.5,
                    timestamp: t,
                    start_timestamp: 0,
                }],
                ..Default::default()
            },
        ],
    };
    let r = post(&s, V2, &snappy(&req.encode_to_vec()));
    assert_eq!(r.status, 204, "{r:?}");
    let written = |r: &Response| {
        [
            "x-prometheus-remote-write-samples-written",
            "x-prometheus-remote-write-histograms-written",
            "x-prometheus-remote-write-exemplars-written",
        ]
        .map(|h| r.header(h).unwrap_or("absent").to_string())
    };
    assert_eq!(written(&r), ["1", "1", "1"]);
    // A histogram that breaks a rule: refused alone, the headers count
    // what was written.
    let mut bad = req.clone();
    bad.timeseries[0].histograms.push(v2::Histogram {
        schema: 9,
        timestamp: t,
        ..Default::default()
    });
    let r = post(&s, V2, &snappy(&bad.encode_to_vec()));
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(written(&r), ["1", "1", "1"]);
    assert!(
        error_of(&r).contains("1 native histogram samples refused"),
        "{r:?}"
    );
    assert_eq!(s.stop().lost, 0);

    let lines = consume_all(dir.path(), "check");
    assert_eq!(lines.len(), 2 + 3 + 3, "{lines:#?}");
    // 1.0: the histogram, then its exemplar; unit and help remembered.
    let h = &lines[0];
    assert_eq!(h["name"], "http.server.duration");
    assert_eq!(h["tags"], serde_json::json!({"service.name": "api"}));
    assert_eq!(h["type"], "histogram");
    assert_eq!(h["value"], 3);
    assert_eq!(h["timestamp"], t - 1000);
    assert_eq!(h["unit"], "s");
    assert_eq!(h["help"], "Duration of HTTP server requests.");
    assert_eq!(
        h["histogram"],
        serde_json::json!({
            "count": 3, "sum": 1.5, "schema": 3, "zero_threshold": 0.0,
            "zero_count": 0, "positive_spans": [[-1, 2]],
            "positive_deltas": [1, 1], "reset_hint": "unknown",
        })
    );
    let e = &lines[1];
    assert_eq!(e["name"], "http.server.duration");
    assert_eq!(
        e["exemplar"],
        serde_json::json!({"labels": {"trace_id": "4bf92f3577b34da6"}})
    );
    assert_eq!(
        (e["value"].as_f64(), e["timestamp"].as_i64()),
        (Some(0.25), Some(t - 1000))
    );
    // 2.0: the float histogram, its staleness-marker sum kept.
    let h = &lines[2];
    assert_eq!(h["name"], "queue.wait");
    assert_eq!(h["tags"], serde_json::json!({"région": "Zürich"}));
    assert_eq!(h["type"], "gaugehistogram");
    assert_eq!(
        (h["unit"].as_str(), h["help"].as_str()),
        (Some("seconds"), Some("Time spent queued."))
    );
    assert_eq!(h["created_timestamp"], t - 60_000);
    assert_eq!(
        h["histogram"],
        serde_json::json!({
            "float": true, "count": 2.5, "sum": "StaleNaN", "schema": -53,
            "zero_threshold": 0.0, "zero_count": 0.0,
            "positive_spans": [[0, 1], [1, 1]], "positive_counts": [1.5, 1.0],
            "reset_hint": "no", "custom_values": [0.5, 1.0],
            "start_timestamp": t - 60_000,
        })
    );
    // An exemplar sent without a timestamp gets the receive time.
    let e = &lines[3];
    assert_eq!(
        e["exemplar"],
        serde_json::json!({"labels": {"trace_id": "abc"}})
    );
    assert_eq!(e["value"], 0.75);
    let received = e["received_at"].as_i64().unwrap();
    assert_eq!(e["timestamp"], received);
    let sample = &lines[4];
    assert_eq!(sample["name"], "température_°C");
    assert_eq!(
        sample["tags"],
        serde_json::json!({"région": "Zürich", "🦀": "Zürich"})
    );
    assert_eq!(sample["value"], 21.5);
    assert!(sample.get("histogram").is_none() && sample.get("exemplar").is_none());
    // The partly refused request stored its good points again.
    let names: Vec<&str> = lines[5..]
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["queue.wait", "queue.wait", "température_°C"]);
}
