//! A real sender: Prometheus 2.42 scraping the node exporter and itself
//! every second, remote-writing to `metricstream serve`. Every sample
//! Prometheus holds in its own TSDB for the window is read back by
//! `metricstream consume` with the same labels, timestamp and value, and
//! Prometheus counts no failed sample; then the same with metricstream
//! SIGKILLed and restarted in the middle (Prometheus retries, nothing is
//! missing), also with `--partition-by series`, where one request is
//! stored as several parts.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::broker::free_port;
use common::prometheus::{consumed_samples, missing_from, NodeExporter, Prometheus, RemoteWrite};
use common::report::{record, Figures};
use common::{consume_all, Server};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn run(crash: bool, partition_by: &str) {
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let serve_args = [
        "--listen",
        listen.as_str(),
        "--api-key",
        "prom-a:s3cret",
        "--partition-by",
        partition_by,
    ];
    let mut server = Server::start(dir.path(), &serve_args);
    let node = NodeExporter::start();
    let started = now_ms();
    let prom = Prometheus::start(
        &[node.addr],
        Some(RemoteWrite {
            url: format!("http://{listen}/api/v1/write"),
            bearer_token: Some("s3cret".into()),
        }),
        false,
    );
    std::thread::sleep(Duration::from_secs(10));
    let mut restart_ms = 0;
    if crash {
        server.kill();
        // Prometheus keeps scraping and retries its queue meanwhile.
        std::thread::sleep(Duration::from_secs(2));
        let restarted = Instant::now();
        server = Server::start(dir.path(), &serve_args);
        restart_ms = restarted.elapsed().as_millis() as u64;
    }
    std::thread::sleep(Duration::from_secs(10));
    // Compare up to a second ago, once Prometheus says it has sent past it
    // (a slow or busy machine only makes this wait longer).
    let window_end = now_ms() - 1_000;
    prom.wait_sent_past(window_end);
    let expected = prom.raw_samples(r#"{__name__=~".+"}"#, window_end, window_end - started);
    let failed = prom.own_metric("prometheus_remote_storage_samples_failed_total");
    let dropped = prom.own_metric("prometheus_remote_storage_samples_dropped_total");
    let sent = prom.own_metric("prometheus_remote_storage_samples_total");
    let retried = prom.own_metric("prometheus_remote_storage_samples_retried_total");
    drop(prom);
    let status = server.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status:?}");

    let samples: usize = expected.values().map(|p| p.len()).sum();
    let jobs: std::collections::BTreeSet<&str> = expected
        .keys()
        .filter_map(|l| l.get("job").map(String::as_str))
        .collect();
    assert!(
        samples > 5_000,
        "only {samples} samples in Prometheus' window"
    );
    assert_eq!(jobs, ["node", "prometheus"].into(), "{jobs:?}");
    assert_eq!(failed, 0.0, "Prometheus counted failed samples");
    assert_eq!(dropped, 0.0, "Prometheus counted dropped samples");
    if crash {
        assert!(
            retried > 0.0,
            "the crash did not make Prometheus retry anything"
        );
    }

    let lines = consume_all(dir.path(), "check");
    assert!(lines.iter().all(|l| l["client_id"] == "prom-a"));
    let consumed = consumed_samples(&lines);
    // All of them, for the count; the first 20 are shown.
    let missing = missing_from(&expected, &consumed, usize::MAX);
    if crash {
        record(Figures {
            scenario: &format!(
                "SIGKILL under load, remote_write from Prometheus 2.42, --partition-by \
                 {partition_by}"
            ),
            checks: "Prometheus scraping the node exporter and itself every second, \
                     remote-writing to the server (durable ack), which is SIGKILLed after 10 s \
                     and restarted 2 s later; every sample Prometheus holds in its TSDB for the \
                     window (so had sent and seen acknowledged: it counts none failed or \
                     dropped) read back by consume with its labels, timestamp and value",
            acknowledged: samples as u64,
            lost: missing.len() as u64,
            duplicated: stored_twice(&expected, &lines) as u64,
            recovery_ms: restart_ms,
            detail: format!(
                "counts are samples, not requests: {samples} in {} series compared; \
                 Prometheus sent {sent}, retried {retried} (the requests the kill cut, and \
                 those refused while the server was down), failed {failed}, dropped \
                 {dropped}; consume read {} lines; a duplicate is a retried request that \
                 had been stored before the kill cut its answer; restart (spawn to listening) {restart_ms} ms",
                expected.len(),
                lines.len()
            ),
        });
    }
    assert!(
        missing.is_empty(),
        "{} of {samples} samples in Prometheus' TSDB are not as sent in what consume read \
         ({} lines); the first:\n{}",
        missing.len(),
        lines.len(),
        missing[..missing.len().min(20)].join("\n")
    );
    eprintln!(
        "crash={crash} partition-by={partition_by}: {samples} samples in {} series compared; Prometheus sent {sent}, \
         retried {retried}; consume read {} lines",
        expected.len(),
        lines.len()
    );
}

/// How many of the window's samples consume printed more than once (the
/// same labels and timestamp): Prometheus re-sends a request it got no
/// answer for, and one the kill cut after it was stored is stored twice.
fn stored_twice(expected: &common::prometheus::Samples, lines: &[serde_json::Value]) -> usize {
    let mut copies: BTreeMap<(BTreeMap<String, String>, i64), usize> = BTreeMap::new();
    for l in lines {
        let mut labels: BTreeMap<String, String> = l["tags"]
            .as_object()
            .map(|t| {
                t.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        labels.insert(
            "__name__".into(),
            l["name"].as_str().unwrap_or_default().into(),
        );
        let Some(ts) = l["timestamp"].as_i64() else {
            continue;
        };
        if expected.get(&labels).is_some_and(|p| p.contains_key(&ts)) {
            *copies.entry((labels, ts)).or_default() += 1;
        }
    }
    copies.values().filter(|n| **n > 1).count()
}

#[test]
fn prometheus_remote_writes_and_consume_reads_back_every_sample() {
    run(false, "client");
}

#[test]
fn nothing_is_missing_after_metricstream_is_sigkilled_mid_run() {
    run(true, "client");
}

/// Partitioned by series, a request is stored as several parts: a crash
/// between them means the retried request stores some parts twice, never
/// that a part is missing.
#[test]
fn nothing_is_missing_after_a_sigkill_with_requests_split_over_partitions() {
    run(true, "series");
}
