//! remote_write 2.0 from an independent client: `tests/clients/rw2_client.py`
//! builds `io.prometheus.write.v2.Request` bodies by hand (protobuf
//! descriptors made at run time, no protoc, cramjam's snappy block format)
//! and POSTs them to the real `metricstream serve`. Each case gets its
//! documented answer and written headers, and `metricstream consume` reads
//! back exactly the points that should have been stored, bit for bit
//! (float samples, native histograms field by field, exemplars with their
//! labels, UTF-8 names, unit and help), and nothing of what was refused.
//!
//! Needs Python with protobuf and cramjam at `METRICSTREAM_PYTHON`:
//! `./scripts/test.sh` (or `source scripts/deps.sh`) installs and sets it.
//! Without it the test fails, saying so: it never skips.

mod common;

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{consume_all, Server};
use serde_json::{json, Value};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/rw2_client.py");

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The venv's Python, checked to have what the client imports.
fn python() -> String {
    let python = std::env::var("METRICSTREAM_PYTHON").unwrap_or_else(|_| {
        panic!(
            "METRICSTREAM_PYTHON is not set: this test runs a Python remote_write 2.0 client \
             that needs protobuf and cramjam. Run ./scripts/test.sh, or `source scripts/deps.sh` \
             (it installs them in a venv and exports METRICSTREAM_PYTHON), then run it again"
        )
    });
    let out = Command::new(&python)
        .args([
            "-c",
            "import cramjam, google.protobuf.descriptor_pb2, google.protobuf.message_factory",
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "METRICSTREAM_PYTHON={python} cannot be run ({e}): run ./scripts/test.sh or \
                 `source scripts/deps.sh`"
            )
        });
    assert!(
        out.status.success(),
        "METRICSTREAM_PYTHON={python} lacks protobuf or cramjam: run ./scripts/test.sh or \
         `source scripts/deps.sh` (it installs them). {}",
        String::from_utf8_lossy(&out.stderr)
    );
    python
}

/// What one case must be answered.
struct Answer {
    case: &'static str,
    status: u64,
    /// The three written headers; None: absent (not a 2.0 answer).
    written: Option<[&'static str; 3]>,
    /// Each must be in the error; none: no error body.
    error_has: &'static [&'static str],
}

fn answers() -> Vec<Answer> {
    let a = |case, status, written, error_has| Answer {
        case,
        status,
        written,
        error_has,
    };
    vec![
        a("normal", 204, Some(["12", "0", "0"]), &[]),
        // Refused whole: nothing written, and the headers say so.
        a(
            "symbols0_not_empty",
            400,
            Some(["0", "0", "0"]),
            &["symbols[0]", "empty string first"],
        ),
        a(
            "ref_past_table",
            400,
            Some(["2", "0", "0"]),
            &[
                "1 series refused (2 samples, 0 native histogram samples, 0 exemplars); \
                 2 samples stored",
                "ref_bad",
                "out of range",
            ],
        ),
        a(
            "odd_refs",
            400,
            Some(["1", "0", "0"]),
            &[
                "1 series refused (1 samples, 0 native histogram samples, 0 exemplars); \
                 1 samples stored",
                "odd length (3)",
            ],
        ),
        a("heavy_reuse", 204, Some(["4", "0", "0"]), &[]),
        a("unicode", 204, Some(["2", "0", "0"]), &[]),
        a("utf8_names", 204, Some(["2", "0", "0"]), &[]),
        a("native_histograms", 204, Some(["0", "4", "3"]), &[]),
        a(
            "histogram_refused",
            400,
            Some(["1", "0", "0"]),
            &[
                "1 series refused (0 samples, 2 native histogram samples, 1 exemplars); \
                 1 samples stored, 0 native histogram samples stored, 0 exemplars stored",
                "series {__name__=\"hist_mixed\",case=\"histogram\"}: 1 native histogram \
                 samples refused, the first: schema 9: must be -4..=8",
                "1 exemplars refused, the first: labels_refs has an odd length (1)",
                "custom buckets: bounds must be strictly increasing, 1 follows 1",
            ],
        ),
        a(
            "v2_body_as_v1",
            400,
            None,
            &[
                "a remote write 2.0 body",
                "proto=io.prometheus.write.v2.Request",
            ],
        ),
        a(
            "wrong_encoding",
            415,
            Some(["0", "0", "0"]),
            &["snappy", "gzip"],
        ),
        a(
            "wrong_proto",
            415,
            None,
            &["unsupported Content-Type", "v2.Requests"],
        ),
    ]
}

/// A stored value as comparable text: the JSON string for NaN, ±Inf and
/// the staleness marker, the bits of a finite number (which must be a JSON
/// number).
fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => format!("bits {:#018x}", n.as_f64().unwrap().to_bits()),
        other => panic!("value is neither a number nor a string: {other}"),
    }
}

fn bits(f: f64) -> String {
    format!("bits {:#018x}", f.to_bits())
}

/// One stored point as compared: name, tags, type, created timestamp,
/// timestamp, value; unit, help, histogram and exemplar null unless set
/// with [`with`].
fn row(name: &str, tags: Value, kind: &str, created: Option<i64>, ts: i64, value: String) -> Value {
    json!({
        "name": name,
        "tags": tags,
        "type": kind,
        "created_timestamp": created,
        "timestamp": ts,
        "value": value,
        "unit": null,
        "help": null,
        "histogram": null,
        "exemplar": null,
    })
}

/// `row` with `key` set.
fn with(mut row: Value, key: &str, value: Value) -> Value {
    row[key] = value;
    row
}

/// `row` with its series' unit and help.
fn described(row: Value, unit: Option<&str>, help: &str) -> Value {
    with(with(row, "unit", json!(unit)), "help", json!(help))
}

fn expected(t: i64) -> Vec<Value> {
    let counter_tags = json!({"case": "normal", "job": "batch"});
    let temp_tags = json!({"case": "normal", "instance": "a:9100", "job": "batch"});
    let reuse_tags = json!({
        "a": "reuse", "b": "reuse", "case": "reuse", "reuse": "reuse",
        "x": "a", "y": "b", "z": "x",
    });
    let unicode_tags = json!({
        "case": "unicode",
        "city": "Zürich",
        "emoji": "🦀 ferris",
        "jp": "日本語",
        "mixed": "e\u{301} \u{e9} \u{2028} ☕",
    });
    let created = Some(t - 60_000);
    let s = |x: &str| x.to_string();
    let mut rows = vec![
        // normal
        row(
            "jobs_done_total",
            counter_tags.clone(),
            "counter",
            created,
            t - 2000,
            bits(1.0),
        ),
        row(
            "jobs_done_total",
            counter_tags,
            "counter",
            created,
            t - 1000,
            bits(2.5),
        ),
        row(
            "temp_celsius",
            temp_tags.clone(),
            "gauge",
            None,
            t - 5,
            bits(-3.5),
        ),
        row(
            "temp_celsius",
            temp_tags.clone(),
            "gauge",
            None,
            t - 4,
            bits(0.1 + 0.2),
        ),
        row(
            "temp_celsius",
            temp_tags.clone(),
            "gauge",
            None,
            t - 3,
            bits(-0.0),
        ),
        row(
            "temp_celsius",
            temp_tags.clone(),
            "gauge",
            None,
            t - 2,
            bits(5e-324),
        ),
        row(
            "temp_celsius",
            temp_tags,
            "gauge",
            None,
            t - 1,
            bits(f64::MAX),
        ),
        row(
            "up",
            json!({"case": "normal", "job": "batch"}),
            "gauge",
            None,
            t - 5,
            s("NaN"),
        ),
        // Python's NaN (not Prometheus'): kept by its bits.
        row(
            "up",
            json!({"case": "normal", "job": "batch"}),
            "gauge",
            None,
            t - 4,
            s("NaN:0x7ff8000000000000"),
        ),
        row(
            "up",
            json!({"case": "normal", "job": "batch"}),
            "gauge",
            None,
            t - 3,
            s("+Inf"),
        ),
        row(
            "up",
            json!({"case": "normal", "job": "batch"}),
            "gauge",
            None,
            t - 2,
            s("-Inf"),
        ),
        row(
            "up",
            json!({"case": "normal", "job": "batch"}),
            "gauge",
            None,
            t - 1,
            s("StaleNaN"),
        ),
        // ref_past_table: the good series around the bad one
        row(
            "ref_ok",
            json!({"case": "ref_past"}),
            "gauge",
            None,
            t,
            bits(1.0),
        ),
        row(
            "ref_ok2",
            json!({"case": "ref_past"}),
            "gauge",
            None,
            t,
            bits(4.0),
        ),
        // odd_refs
        row(
            "odd_ok",
            json!({"case": "odd"}),
            "gauge",
            None,
            t,
            bits(5.0),
        ),
        // heavy_reuse
        row(
            "reuse",
            reuse_tags.clone(),
            "counter",
            None,
            t - 2,
            bits(7.0),
        ),
        row(
            "reuse",
            reuse_tags.clone(),
            "counter",
            None,
            t - 1,
            bits(8.0),
        ),
        row("reuse", reuse_tags, "counter", None, t, bits(9.0)),
        row(
            "reuse",
            json!({"case": "reuse"}),
            "counter",
            None,
            t,
            bits(10.0),
        ),
        // unicode
        row("unicode_values", unicode_tags, "gauge", None, t, bits(11.0)),
        row(
            "smörgåsbord.total_°C",
            json!({"case": "unicode"}),
            "gauge",
            None,
            t,
            bits(12.0),
        ),
    ];
    // The normal case's metadata: unit and help on every point.
    for r in &mut rows {
        let (unit, help) = match r["name"].as_str() {
            Some("jobs_done_total") => (None, "Jobs done."),
            Some("temp_celsius") => (Some("celsius"), "Temperature."),
            _ => continue,
        };
        *r = described(r.take(), unit, help);
    }
    // utf8_names: stored as sent, Prometheus 3's __type__ label included.
    rows.push(described(
        row(
            "http.server.request.duration",
            json!({
                "__type__": "gauge", "case": "utf8", "région": "Zürich",
                "service.name": "checkout", "🦀": "ferris",
            }),
            "gauge",
            None,
            t,
            bits(17.0),
        ),
        Some("s"),
        "Request duration.",
    ));
    rows.push(row(
        "__",
        json!({"case": "utf8"}),
        "gauge",
        None,
        t,
        bits(18.0),
    ));
    // native_histograms: each histogram field as sent (consume's JSON
    // shape), then the series' exemplars (which carry no unit or help).
    let rpc = json!({"case": "histogram"});
    let rpc_row = |created, ts, value| {
        described(
            row("rpc.duration", rpc.clone(), "histogram", created, ts, value),
            Some("seconds"),
            "RPC latency.",
        )
    };
    rows.push(with(
        rpc_row(created, t - 1000, bits(7.0)),
        "histogram",
        json!({
            "count": 7, "sum": 12.5, "schema": 3, "zero_threshold": 1e-128,
            "zero_count": 1, "negative_spans": [[-2, 1]], "negative_deltas": [2],
            "positive_spans": [[-1, 2], [3, 1]], "positive_deltas": [1, 1, -1],
            "reset_hint": "no", "start_timestamp": t - 60_000,
        }),
    ));
    rows.push(with(
        rpc_row(None, t, bits(6.0)),
        "histogram",
        json!({
            "count": 6, "sum": 10.0, "schema": -53, "zero_threshold": 0.0,
            "zero_count": 0, "positive_spans": [[0, 2], [1, 1]],
            "positive_deltas": [1, 2, -1], "reset_hint": "yes",
            "custom_values": [0.1, 0.5, 1.0],
        }),
    ));
    let exemplar = |tags: &Value, kind, ts, value, labels: Value| {
        let r = row(
            tags["name"].as_str().unwrap_or_default(),
            tags["tags"].clone(),
            kind,
            None,
            ts,
            value,
        );
        with(r, "exemplar", json!({ "labels": labels }))
    };
    let rpc_series = json!({"name": "rpc.duration", "tags": rpc});
    rows.push(exemplar(
        &rpc_series,
        "histogram",
        t - 1000,
        bits(0.042),
        json!({"span_id": "def", "trace_id": "abc"}),
    ));
    rows.push(exemplar(
        &rpc_series,
        "histogram",
        t,
        bits(0.2),
        json!({"trace_id": "xyz"}),
    ));
    let queue = json!({"case": "histogram", "région": "Zürich"});
    let queue_row = |ts, value| {
        row(
            "queue.wait",
            queue.clone(),
            "gaugehistogram",
            None,
            ts,
            value,
        )
    };
    rows.push(with(
        queue_row(t - 1, bits(6.5)),
        "histogram",
        json!({
            "float": true, "count": 6.5, "sum": -3.25, "schema": -4,
            "zero_threshold": 0.001, "zero_count": 0.5,
            "negative_spans": [[0, 2]], "negative_counts": [1.0, 2.0],
            "positive_spans": [[1, 1]], "positive_counts": [3.0],
            "reset_hint": "gauge",
        }),
    ));
    rows.push(with(
        queue_row(t, bits(2.5)),
        "histogram",
        json!({
            "float": true, "count": 2.5, "sum": "StaleNaN", "schema": -53,
            "zero_threshold": 0.0, "zero_count": 0.0,
            "positive_spans": [[1, 2]], "positive_counts": [1.5, 1.0],
            "reset_hint": "unknown", "custom_values": [-1.0, 0.0, 2.5],
        }),
    ));
    rows.push(exemplar(
        &json!({"name": "queue.wait", "tags": queue}),
        "gaugehistogram",
        t,
        bits(1.25),
        json!({"trace_id": "ünï"}),
    ));
    // histogram_refused: the float sample beside the refused histogram and
    // exemplar.
    rows.push(row(
        "hist_mixed",
        json!({"case": "histogram"}),
        "gauge",
        None,
        t,
        bits(13.0),
    ));
    rows
}

#[test]
fn python_rw2_client_gets_documented_answers_and_exact_storage() {
    let python = python();
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let url = format!("http://{}/api/v1/write", server.addr);
    // A little in the past, so that t + 1 is never ahead of the server.
    let t = now_ms() - 5_000;
    let out = Command::new(&python)
        .arg(SCRIPT)
        .arg(&url)
        .arg(t.to_string())
        .output()
        .unwrap_or_else(|e| panic!("running {python} {SCRIPT}: {e}"));
    assert!(
        out.status.success(),
        "{SCRIPT} failed: {}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );
    let got: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect();

    let answers = answers();
    let cases: Vec<&str> = got.iter().map(|r| r["case"].as_str().unwrap()).collect();
    let want_cases: Vec<&str> = answers.iter().map(|a| a.case).collect();
    assert_eq!(cases, want_cases, "cases answered: {got:#?}");
    for (a, r) in answers.iter().zip(&got) {
        assert_eq!(r["status"], a.status, "{}: {r}", a.case);
        let headers = [
            &r["samples_written"],
            &r["histograms_written"],
            &r["exemplars_written"],
        ];
        match a.written {
            Some(w) => assert_eq!(headers, w.map(|h| json!(h)).each_ref(), "{}: {r}", a.case),
            // Not a 2.0 request: no 2.0 headers.
            None => assert!(headers.iter().all(|h| h.is_null()), "{}: {r}", a.case),
        }
        if a.error_has.is_empty() {
            assert!(r["error"].is_null(), "{}: {r}", a.case);
        }
        let error = r["error"].as_str().unwrap_or_default();
        for needle in a.error_has {
            assert!(error.contains(needle), "{}: no {needle:?} in {r}", a.case);
        }
    }

    let status = server.terminate(Duration::from_secs(15));
    assert!(
        status.success(),
        "server exit: {status:?}\n{}",
        server.log_text()
    );

    let lines = consume_all(dir.path(), "check");
    let refused = [
        "sym0_metric",
        "ref_bad",
        "odd_bad",
        "hist_only",
        "as_v1",
        "gzip",
        "proto",
    ];
    for l in &lines {
        let name = l["name"].as_str().unwrap_or_default();
        assert!(!refused.contains(&name), "a refused series was stored: {l}");
    }
    let stored: Vec<Value> = lines
        .iter()
        .map(|l| {
            let mut r = row(
                l["name"].as_str().expect("name"),
                l["tags"].clone(),
                l["type"].as_str().expect("type"),
                l.get("created_timestamp").and_then(Value::as_i64),
                l["timestamp"].as_i64().expect("timestamp"),
                value_text(&l["value"]),
            );
            for key in ["unit", "help", "histogram", "exemplar"] {
                if let Some(v) = l.get(key) {
                    r[key] = v.clone();
                }
            }
            r
        })
        .collect();
    for l in &lines {
        // Absent, or a number of ms: never another shape read as "none".
        if let Some(c) = l.get("created_timestamp") {
            assert!(c.is_null() || c.is_i64(), "{l}");
        }
    }
    let want = expected(t);
    assert_eq!(
        stored.len(),
        want.len(),
        "stored {} samples, want {}:\n{stored:#?}",
        stored.len(),
        want.len()
    );
    for (i, (s, w)) in stored.iter().zip(&want).enumerate() {
        assert_eq!(s, w, "sample {i} differs");
    }
}
