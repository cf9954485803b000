//! The contract's status table, end to end against the real binary.

mod common;

use std::io::Write;
use std::time::Duration;

use common::in_process::InProcess;
use common::{consume_all, cpp_body, request, Server};
use metricstream::queue::AckMode;

const JSON: (&str, &str) = ("Content-Type", "application/json");

fn error_of(r: &common::Response) -> String {
    r.json()["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error field: {r:?}"))
        .to_string()
}

#[test]
fn status_table() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["--max-body", "65536"]);

    // 200: the C++ load test's request, with its Authorization header.
    let r = s.post(
        &cpp_body("web1", 1),
        &[JSON, ("Authorization", "load_client_0")],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let j = r.json();
    assert_eq!(j["success"], true);
    assert_eq!(j["metrics_processed"], 3);
    assert!(j["partition"].as_u64().unwrap() < 4);
    assert_eq!(j["offset"], 0);
    // A missing Content-Type is taken as JSON; `default` client.
    let r = s.post(&cpp_body("web2", 2), &[]);
    assert_eq!(r.status, 200, "{r:?}");

    // 400s, each naming what and where.
    let cases: Vec<(String, &str)> = vec![
        ("{not json".into(), "invalid JSON"),
        (r#"{"metrics":[]}"#.into(), "metrics: the batch is empty"),
        (
            format!(r#"{{"metrics":[{}]}}"#, vec![r#"{"name":"x","value":1,"type":"gauge"}"#; 1001].join(",")),
            "metrics: at most 1000 metrics per request, got 1001",
        ),
        (r#"{"metrics":[{"name":"","value":1,"type":"gauge"}]}"#.into(), "metrics[0].name: must not be empty"),
        (
            format!(r#"{{"metrics":[{{"name":"{}","value":1,"type":"gauge"}}]}}"#, "n".repeat(256)),
            "metrics[0].name: longer than 255",
        ),
        (
            r#"{"metrics":[{"name":"a","value":1,"type":"gauge"},{"name":"b","value":"x","type":"gauge"}]}"#.into(),
            "metrics[1].value: invalid type",
        ),
        (r#"{"metrics":[{"name":"a","value":1e999,"type":"gauge"}]}"#.into(), "invalid JSON in metrics[0].value"),
        (r#"{"metrics":[{"name":"a","value":1,"type":"meter"}]}"#.into(), "metrics[0].type: unknown variant `meter`"),
        (r#"{"metrics":[{"name":"a","value":1,"type":"gauge","tags":{"k":2}}]}"#.into(), "metrics[0].tags.k: invalid type"),
    ];
    for (body, want) in &cases {
        let r = s.post(body, &[JSON]);
        assert_eq!(r.status, 400, "{body:.80}: {r:?}");
        let e = error_of(&r);
        assert!(
            e.starts_with(want),
            "{body:.80}: error {e:?} should start with {want:?}"
        );
    }

    // 413: over the body limit (64 KiB here).
    let big = format!(
        r#"{{"metrics":[{{"name":"{}","value":1,"type":"gauge"}}]}}"#,
        "x".repeat(70_000)
    );
    let r = s.post(&big, &[JSON]);
    assert_eq!(r.status, 413, "{r:?}");
    assert!(error_of(&r).contains("limit"));

    // 415: not JSON.
    let r = s.post(&cpp_body("web1", 3), &[("Content-Type", "text/plain")]);
    assert_eq!(r.status, 415, "{r:?}");
    assert!(error_of(&r).contains("Content-Type"));

    // gzip bodies are accepted; a bad one is a clear 400.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(cpp_body("web3", 4).as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let r = request(
        s.addr,
        "POST",
        "/metrics",
        &[JSON, ("Content-Encoding", "gzip")],
        &gz,
    );
    assert_eq!(r.status, 200, "{r:?}");
    let r = request(
        s.addr,
        "POST",
        "/metrics",
        &[JSON, ("Content-Encoding", "gzip")],
        b"not gzip",
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert!(error_of(&r).contains("gzip"));

    // Side endpoints.
    let r = s.get("/health");
    assert_eq!(
        r.json(),
        serde_json::json!({"status":"healthy","service":"ingestion"})
    );
    assert_eq!(s.get("/ready").status, 200);
    let st = s.get("/stats").json();
    assert_eq!(st["batches_processed"], 3);
    assert_eq!(st["metrics_received"], 9);
    assert_eq!(st["validation_errors"], cases.len() as u64);
    assert_eq!(st["rate_limited_requests"], 0);
    assert_eq!(st["delivered"], 3);
    let m = s.get("/metrics");
    assert_eq!(m.status, 200);
    assert!(
        m.body
            .contains("metricstream_http_requests_total{protocol=\"json\",status=\"400\"}"),
        "{}",
        m.body
    );
    assert!(m.body.contains("metricstream_queue_latency_seconds_bucket"));

    // Only the three accepted batches are in the log, whole.
    drop(s);
    let lines = consume_all(dir.path(), "check");
    assert_eq!(lines.len(), 9, "{lines:?}");
    let clients: std::collections::BTreeSet<_> = lines
        .iter()
        .map(|l| l["client_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        clients,
        ["default", "load_client_0"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    assert!(lines
        .iter()
        .all(|l| l["timestamp"].as_u64().unwrap() > 1_700_000_000_000));
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// Whatever follows a gzip member is read too: a second member that is
/// not JSON, or bytes that are not gzip, make the body a 400 and nothing
/// of it is stored (reading the first member alone answered 200).
#[test]
fn a_gzip_body_is_judged_whole() {
    let dir = tempfile::tempdir().unwrap();
    let s = InProcess::start(dir.path(), AckMode::Durable);
    let gz = [JSON, ("Content-Encoding", "gzip")];
    let json = gzip(cpp_body("web1", 1).as_bytes());
    let bodies = [
        (
            "a second member of garbage",
            [json.clone(), gzip(b"garbage")].concat(),
        ),
        (
            "bytes that are not gzip",
            [json.clone(), b"garbage".to_vec()].concat(),
        ),
    ];
    for (what, body) in &bodies {
        let r = request(s.addr, "POST", "/metrics", &gz, body);
        assert_eq!(r.status, 400, "{what}: {r:?}");
    }
    // Two members that make one valid batch together are one batch.
    let batch = cpp_body("web2", 2);
    let (head, tail) = batch.split_at(40);
    let split = [gzip(head.as_bytes()), gzip(tail.as_bytes())].concat();
    let r = request(s.addr, "POST", "/metrics", &gz, &split);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["metrics_processed"], 3);
    s.stop();
    let lines = consume_all(dir.path(), "check");
    assert_eq!(lines.len(), 3, "only the valid batch: {lines:?}");
    assert!(
        lines.iter().all(|l| l["tags"]["host"] == "web2"),
        "{lines:?}"
    );
}

#[test]
fn api_keys_gate_every_write() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "# name:secret\nsvc-b:other-secret\n").unwrap();
    let s = Server::start(
        &dir.path().join("data"),
        &[
            "--api-key",
            "svc-a:s3cret",
            "--api-keys-file",
            keys.to_str().unwrap(),
        ],
    );
    for auth in [
        None,
        Some("s3cret"),
        Some("Bearer wrong"),
        Some("Bearer s3cre"),
    ] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        let r = s.post(&cpp_body("web1", 1), &headers);
        assert_eq!(r.status, 401, "{auth:?}: {r:?}");
        assert!(error_of(&r).starts_with("Authorization"));
    }
    assert_eq!(
        s.post(&cpp_body("w", 1), &[("Authorization", "Bearer s3cret")])
            .status,
        200
    );
    assert_eq!(
        s.post(
            &cpp_body("w", 2),
            &[("Authorization", "Bearer other-secret")]
        )
        .status,
        200
    );
    assert!(
        !s.log_text().contains("s3cret"),
        "a key leaked into the log"
    );
    drop(s);
    let lines = consume_all(&dir.path().join("data"), "g");
    let mut clients: Vec<_> = lines
        .iter()
        .map(|l| l["client_id"].as_str().unwrap())
        .collect();
    clients.dedup();
    clients.sort();
    assert_eq!(clients, ["svc-a", "svc-b"]);
}

#[test]
fn rate_limit_answers_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["--rate-limit", "5"]);
    let mut statuses = Vec::new();
    for i in 0..20 {
        let r = s.post(&cpp_body("web1", i), &[("Authorization", "busy")]);
        if r.status == 429 {
            assert!(r.header("Retry-After").is_some(), "{r:?}");
            assert!(error_of(&r).contains("busy"));
        }
        statuses.push(r.status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    // Another client is not affected.
    assert_eq!(
        s.post(&cpp_body("web1", 99), &[("Authorization", "calm")])
            .status,
        200
    );
    let st = s.get("/stats").json();
    assert_eq!(
        st["rate_limited_requests"],
        statuses.iter().filter(|s| **s == 429).count() as u64
    );
}

#[test]
fn overload_is_a_503_with_retry_after() {
    // One request slot; a client that never finishes its body holds it.
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["--max-inflight", "1"]);
    let mut slow = std::net::TcpStream::connect(s.addr).unwrap();
    slow.write_all(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"met")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let r = s.post(&cpp_body("web1", 1), &[JSON]);
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.header("Retry-After").is_some());
    drop(slow);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.post(&cpp_body("web1", 2), &[JSON]).status, 200);
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    for ack in ["durable", "accepted"] {
        let data = dir.path().join(ack);
        let mut s = Server::start(&data, &["--ack", ack]);
        let addr = s.addr;
        let clients: Vec<_> = (0..8)
            .map(|c| {
                std::thread::spawn(move || {
                    let mut ok = 0;
                    for i in 0..50 {
                        let r = request(
                            addr,
                            "POST",
                            "/metrics",
                            &[("Authorization", &format!("c{c}"))],
                            cpp_body("h", i).as_bytes(),
                        );
                        if r.status == 200 {
                            ok += 1;
                        }
                    }
                    ok
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        let status = s.terminate(Duration::from_secs(10));
        let ok: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
        assert!(status.success(), "{ack}: exit {status:?}\n{}", s.log_text());
        assert!(s.log_text().contains("shutdown complete"));
        let batches: std::collections::BTreeSet<_> = consume_all(&data, "g")
            .iter()
            .map(|l| {
                (
                    l["partition"].as_u64().unwrap(),
                    l["offset"].as_u64().unwrap(),
                )
            })
            .collect();
        assert!(
            batches.len() >= ok,
            "{ack}: {ok} acknowledged but {} stored",
            batches.len()
        );
    }
}
