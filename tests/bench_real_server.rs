//! `metricstream bench` against the real server: counts add up, and what the
//! server refuses is counted as failures by kind, never as successes.

mod common;

use std::process::Command;

use common::{Server, BIN};

fn bench(url: &str, args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let out = Command::new(BIN)
        .args(["bench", "--url", url, "--json"])
        .arg(&json)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Success Rate"), "table missing:\n{stdout}");
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

#[test]
fn bench_counts_match_what_the_server_stored() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let url = format!("http://{}/metrics", s.addr);
    let r = bench(
        &url,
        &["--clients", "4", "--requests", "25", "--new-connection"],
    );
    assert_eq!(r["total"], 100);
    assert_eq!(r["successful"], 100);
    assert_eq!(r["failed"], 0);
    assert_eq!(r["success_rate"], 100.0);
    let stats = s.get("/stats").json();
    assert_eq!(stats["batches_processed"], 100);
    assert_eq!(stats["metrics_received"], 300);
}

#[test]
fn refusals_are_failures_by_kind() {
    let dir = tempfile::tempdir().unwrap();
    // 5 requests/s per client: most of a fast run is answered 429.
    let s = Server::start(dir.path(), &["--rate-limit", "5"]);
    let url = format!("http://{}/metrics", s.addr);
    let r = bench(
        &url,
        &["--clients", "2", "--requests", "40", "--keep-alive"],
    );
    let (ok, failed, total) = (
        r["successful"].as_u64().unwrap(),
        r["failed"].as_u64().unwrap(),
        r["total"].as_u64().unwrap(),
    );
    assert_eq!(total, 80);
    assert_eq!(ok + failed, total);
    let limited = r["failures"]["status_429"].as_u64().unwrap_or(0);
    assert_eq!(limited, failed, "{r}");
    assert!(limited > 40, "{r}");
    assert_eq!(
        s.get("/stats").json()["batches_processed"]
            .as_u64()
            .unwrap(),
        ok
    );

    // A server that is gone: every request fails as a connect error.
    let gone = format!("http://{}/metrics", s.addr);
    drop(s);
    let r = bench(
        &gone,
        &["--clients", "1", "--requests", "5", "--timeout", "1s"],
    );
    assert_eq!(r["successful"], 0);
    assert_eq!(r["failed"], 5);
    assert_eq!(r["failures"]["connect_error"], 5, "{r}");
}

#[test]
fn remote_write_bench_is_stored_sample_for_sample() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["--rate-limit", "0"]);
    let url = format!("http://{}/api/v1/write", s.addr);
    let r = bench(
        &url,
        &[
            "--format",
            "remote-write",
            "--samples-per-request",
            "2000",
            "--clients",
            "3",
            "--requests",
            "20",
            "--keep-alive",
        ],
    );
    assert_eq!(r["total"], 60, "{r}");
    assert_eq!(r["successful"], 60, "{r}");
    assert_eq!(r["success_rate"], 100.0);
    assert_eq!(r["params"]["format"], "remote-write");
    assert_eq!(r["params"]["samples_per_request"], 2000);
    assert!(r["samples_per_sec"].as_f64().unwrap() > 0.0, "{r}");
    let stats = s.get("/stats").json();
    let rw = &stats["protocols"]["remote_write"];
    assert_eq!(rw["samples_received"], 60 * 2000, "{stats}");
    assert_eq!(rw["samples_refused"], 0, "{stats}");
}

#[test]
fn otlp_bench_is_stored_point_for_point() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["--rate-limit", "0"]);
    let url = format!("http://{}/v1/metrics", s.addr);
    let r = bench(
        &url,
        &[
            "--format",
            "otlp",
            "--samples-per-request",
            "95",
            "--clients",
            "3",
            "--requests",
            "20",
            "--keep-alive",
            "--gzip",
        ],
    );
    assert_eq!(
        (r["total"].as_u64(), r["successful"].as_u64()),
        (Some(60), Some(60)),
        "{r}"
    );
    assert_eq!(r["params"]["format"], "otlp");
    assert_eq!(r["params"]["samples_per_request"], 95);
    let stats = s.get("/stats").json();
    let otlp = &stats["protocols"]["otlp"];
    assert_eq!(otlp["samples_received"], 60 * 95, "{stats}");
    assert_eq!(otlp["samples_refused"], 0, "{stats}");
}
