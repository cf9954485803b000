//! OTLP/HTTP from a real client: the OpenTelemetry Python SDK with its own
//! OTLP/HTTP exporter (`tests/clients/otlp_sdk.py`) exports a counter, an
//! up-down counter, two gauges and two histograms to the real `metricstream
//! serve`, plain, gzipped and with delta temporality, and `metricstream
//! consume` must print exactly what the script, from the request the SDK
//! sent, says should be stored: value for value, tag for tag, nanosecond for
//! nanosecond. Then an OTLP
//! JSON body made by hand (the SDK only speaks protobuf), gzipped, with
//! 64-bit integers as strings and as numbers, NaN and infinities, a delta
//! sum, a summary and a refused point.
//!
//! Needs Python with `opentelemetry-sdk` and
//! `opentelemetry-exporter-otlp-proto-http` at `METRICSTREAM_PYTHON`:
//! `./scripts/test.sh` (or `source scripts/deps.sh`) installs and sets it.
//! Without it the test fails, saying so: it never skips. That test is
//! behind the `external` feature; the hand-made body's needs no program.

mod common;

use std::io::Write;
#[cfg(feature = "external")]
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{consume_all, request, Server};
use serde_json::{json, Value};

#[cfg(feature = "external")]
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/otlp_sdk.py");

/// The venv's Python, checked to have the SDK and its OTLP/HTTP exporter.
#[cfg(feature = "external")]
fn python() -> String {
    let hint = "run ./scripts/test.sh, or `source scripts/deps.sh` (it installs \
                opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http in a venv and \
                exports METRICSTREAM_PYTHON), then run it again";
    let python = std::env::var("METRICSTREAM_PYTHON").unwrap_or_else(|_| {
        panic!(
            "METRICSTREAM_PYTHON is not set: this test runs the OpenTelemetry Python SDK; {hint}"
        )
    });
    let out = Command::new(&python)
        .args([
            "-c",
            "import opentelemetry.sdk.metrics, opentelemetry.exporter.otlp.proto.http.metric_exporter",
        ])
        .output()
        .unwrap_or_else(|e| panic!("METRICSTREAM_PYTHON={python} cannot be run ({e}): {hint}"));
    assert!(
        out.status.success(),
        "METRICSTREAM_PYTHON={python} lacks the OpenTelemetry SDK or its OTLP/HTTP exporter: \
         {hint}. {}",
        String::from_utf8_lossy(&out.stderr)
    );
    python
}

/// Runs the SDK script; its `expected` rows.
#[cfg(feature = "external")]
fn export(
    python: &str,
    server: &Server,
    compression: &str,
    service: &str,
    temporality: &str,
) -> Vec<Value> {
    let url = format!("http://{}/v1/metrics", server.addr);
    let out = Command::new(python)
        .args([SCRIPT, &url, compression, service, temporality])
        .output()
        .unwrap_or_else(|e| panic!("running {python} {SCRIPT}: {e}"));
    assert!(
        out.status.success(),
        "{SCRIPT} failed: {}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{SCRIPT} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert_eq!(
        printed["export"],
        "SUCCESS",
        "the SDK's export failed: {printed}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    printed["expected"]
        .as_array()
        .expect("expected rows")
        .clone()
}

/// `le` or `quantile` as a number: the script prints numbers, metricstream
/// writes strings (`"1"`, `"+Inf"`).
fn bound(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) if s == "+Inf" => Some(f64::INFINITY),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Same tags; `le` and `quantile` compared as numbers (the exponential
/// bounds the script computes with `**` may be an ulp or two off exp2).
fn same_tags(stored: &Value, want: &Value) -> bool {
    let (Some(s), Some(w)) = (stored.as_object(), want.as_object()) else {
        return false;
    };
    s.len() == w.len()
        && w.iter().all(|(k, wv)| match (k.as_str(), s.get(k)) {
            ("le" | "quantile", Some(sv)) => match (bound(sv), bound(wv)) {
                (Some(a), Some(b)) => a == b || ((a - b) / b).abs() < 1e-12,
                _ => false,
            },
            (_, Some(sv)) => sv == wv,
            (_, None) => false,
        })
}

/// Every row stored once and nothing else: name, type, tags, the value
/// (JSON-equal: an integer must come back an integer), the times.
fn assert_stored_exactly(lines: &[Value], want: &[Value], client: &str) {
    let mut unmatched: Vec<&Value> = lines.iter().collect();
    for w in want {
        let at = unmatched
            .iter()
            .position(|l| l["name"] == w["name"] && same_tags(&l["tags"], &w["tags"]));
        let Some(at) = at else {
            panic!("not stored: {w}\nstored:\n{lines:#?}");
        };
        let l = unmatched.remove(at);
        assert_eq!(l["type"], w["type"], "{l}\nwant {w}");
        assert_eq!(l["value"], w["value"], "{l}\nwant {w}");
        assert_eq!(l["client_id"], client, "{l}");
        let ns = w["timestamp_ns"].as_u64().expect("timestamp_ns");
        // Only when it says more than `timestamp` (as for line protocol).
        let whole_ms = ns % 1_000_000 == 0;
        let want_ns = if whole_ms { Value::Null } else { json!(ns) };
        assert_eq!(
            l.get("timestamp_ns").cloned().unwrap_or(Value::Null),
            want_ns,
            "{l}"
        );
        assert_eq!(l["timestamp"], ns / 1_000_000, "{l}");
        let created = w.get("created_timestamp").cloned().unwrap_or(Value::Null);
        assert_eq!(
            l.get("created_timestamp").cloned().unwrap_or(Value::Null),
            created,
            "{l}"
        );
    }
    assert!(unmatched.is_empty(), "stored but not sent: {unmatched:#?}");
}

#[cfg(feature = "external")]
#[test]
fn python_sdk_exports_are_stored_value_for_value() {
    let python = python();
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let mut want = export(&python, &server, "none", "plain-svc", "cumulative");
    assert!(want.len() >= 20, "the script expects too little: {want:#?}");
    want.extend(export(&python, &server, "gzip", "gzip-svc", "cumulative"));
    let delta = export(&python, &server, "gzip", "delta-svc", "delta");
    let tagged = |r: &&Value| r["tags"]["otel_temporality"] == "delta";
    assert!(delta.iter().filter(tagged).count() >= 10, "{delta:#?}");
    want.extend(delta);

    let stats = server.get("/stats").json();
    assert_eq!(
        stats["protocols"]["otlp"]["samples_received"],
        want.len(),
        "{stats}"
    );
    let status = server.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status:?}\n{}", server.log_text());

    let lines = consume_all(dir.path(), "check");
    assert_stored_exactly(&lines, &want, "otel-sdk");
    // Each kind the SDK sent, as documented.
    for (name, kind) in [
        ("http.requests", "counter"),
        ("queue.depth", "gauge"),
        ("room.temperature", "gauge"),
        ("cpu.load", "gauge"),
        ("http.duration_bucket", "histogram"),
        ("rpc.latency_count", "histogram"),
    ] {
        assert!(
            lines.iter().any(|l| l["name"] == name && l["type"] == kind),
            "no {kind} {name} among {lines:#?}"
        );
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[test]
fn a_json_body_made_by_hand_is_stored_as_the_otlp_json_mapping_says() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // Sub-millisecond digits that must survive.
    let t = now_ms * 1_000_000 - 5_000_000_000 + 123_457;
    let start = t - 60_000_000_000;
    let point = |extra: Value| {
        let mut p = json!({"timeUnixNano": t.to_string(), "startTimeUnixNano": start.to_string()});
        p.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        p
    };
    let body = json!({"resourceMetrics": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "by-hand"}},
            {"key": "host.cores", "value": {"intValue": "8"}}
        ]},
        "scopeMetrics": [{
            "scope": {"name": "hand", "version": "0.1"},
            "metrics": [
                {"name": "big.counter", "sum": {"aggregationTemporality": 2, "isMonotonic": true, "dataPoints": [
                    point(json!({"attributes": [{"key": "as", "value": {"stringValue": "string"}}],
                                 "asInt": "9007199254740993"})),
                    // 64-bit integers as JSON numbers: taken, exactly.
                    {"attributes": [{"key": "as", "value": {"stringValue": "number"}}],
                     "timeUnixNano": t, "startTimeUnixNano": start, "asInt": 9_223_372_036_854_775_807_i64}
                ]}},
                {"name": "delta.bytes", "sum": {"aggregationTemporality": 1, "isMonotonic": true, "dataPoints": [
                    point(json!({"asDouble": 1.5}))
                ]}},
                {"name": "weird.gauge", "gauge": {"dataPoints": [
                    point(json!({"attributes": [{"key": "k", "value": {"intValue": "-5"}}], "asDouble": "NaN"})),
                    point(json!({"attributes": [{"key": "k", "value": {"intValue": 6}}], "asDouble": "-Infinity"}))
                ]}},
                {"name": "latency", "histogram": {"aggregationTemporality": 2, "dataPoints": [
                    point(json!({"count": "3", "sum": 0.75, "bucketCounts": ["1", 2], "explicitBounds": [0.5]}))
                ]}},
                {"name": "rpc.summary", "summary": {"dataPoints": [
                    point(json!({"count": "10", "sum": 5.5, "quantileValues": [
                        {"quantile": 0.5, "value": 0.4}, {"quantile": 0.99, "value": "Infinity"}]}))
                ]}},
                {"name": "", "gauge": {"dataPoints": [point(json!({"asInt": "1"}))]}}
            ]
        }]
    }]});
    let r = request(
        server.addr,
        "POST",
        "/v1/metrics",
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
            ("Authorization", "by-hand"),
        ],
        &gzip(body.to_string().as_bytes()),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let answer = r.json();
    assert_eq!(
        answer["partialSuccess"]["rejectedDataPoints"], "1",
        "{answer}"
    );
    let message = answer["partialSuccess"]["errorMessage"].as_str().unwrap();
    assert!(
        message
            .contains(r#"resource_metrics[0].scope_metrics[0].metrics[5] "": empty metric name"#),
        "{message}"
    );
    let status = server.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status:?}\n{}", server.log_text());

    let base = json!({"service.name": "by-hand", "host.cores": "8",
                      "otel_scope_name": "hand", "otel_scope_version": "0.1"});
    let tags = |extra: Value| {
        let mut t = base.clone();
        t.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        t
    };
    let created = start / 1_000_000;
    let row = |name: &str, kind: &str, tags: Value, value: Value, started: bool| {
        let mut r =
            json!({"name": name, "type": kind, "tags": tags, "value": value, "timestamp_ns": t});
        if started {
            r["created_timestamp"] = json!(created);
        }
        r
    };
    let want = vec![
        row(
            "big.counter",
            "counter",
            tags(json!({"as": "string"})),
            json!(9_007_199_254_740_993_i64),
            true,
        ),
        row(
            "big.counter",
            "counter",
            tags(json!({"as": "number"})),
            json!(i64::MAX),
            true,
        ),
        row(
            "delta.bytes",
            "counter",
            tags(json!({"otel_temporality": "delta"})),
            json!(1.5),
            true,
        ),
        row(
            "weird.gauge",
            "gauge",
            tags(json!({"k": "-5"})),
            json!("NaN"),
            false,
        ),
        row(
            "weird.gauge",
            "gauge",
            tags(json!({"k": "6"})),
            json!("-Inf"),
            false,
        ),
        row(
            "latency_bucket",
            "histogram",
            tags(json!({"le": 0.5})),
            json!(1),
            true,
        ),
        row(
            "latency_bucket",
            "histogram",
            tags(json!({"le": "+Inf"})),
            json!(3),
            true,
        ),
        row(
            "latency_sum",
            "histogram",
            tags(json!({})),
            json!(0.75),
            true,
        ),
        row(
            "latency_count",
            "histogram",
            tags(json!({})),
            json!(3),
            true,
        ),
        row(
            "rpc.summary",
            "summary",
            tags(json!({"quantile": 0.5})),
            json!(0.4),
            true,
        ),
        row(
            "rpc.summary",
            "summary",
            tags(json!({"quantile": 0.99})),
            json!("+Inf"),
            true,
        ),
        row(
            "rpc.summary_sum",
            "summary",
            tags(json!({})),
            json!(5.5),
            true,
        ),
        row(
            "rpc.summary_count",
            "summary",
            tags(json!({})),
            json!(10),
            true,
        ),
    ];
    let lines = consume_all(dir.path(), "check");
    assert_stored_exactly(&lines, &want, "by-hand");
}
