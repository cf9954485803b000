//! A real sender: Prometheus 2.42 scraping the node exporter and itself
//! every second, remote-writing to `metricstream serve`. Every sample
//! Prometheus holds in its own TSDB for the window is read back by
//! `metricstream consume` with the same labels, timestamp and value, and
//! Prometheus counts no failed sample; then the same with metricstream
//! SIGKILLed and restarted in the middle (Prometheus retries, nothing is
//! missing), also with `--partition-by series`, where one request is
//! stored as several parts.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::broker::free_port;
use common::prometheus::{consumed_samples, missing_from, NodeExporter, Prometheus, RemoteWrite};
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
    if crash {
        server.kill();
        // Prometheus keeps scraping and retries its queue meanwhile.
        std::thread::sleep(Duration::from_secs(2));
        server = Server::start(dir.path(), &serve_args);
    }
    std::thread::sleep(Duration::from_secs(10));
    // Compare up to a second ago, once Prometheus says it has sent past it
    // (a slow or busy machine only makes this wait longer).
    let window_end = now_ms() - 1_000;
    common::wait_for(
        "Prometheus to remote-write past the window",
        Duration::from_secs(60),
        || {
            let sent_s =
                prom.own_metric("prometheus_remote_storage_queue_highest_sent_timestamp_seconds");
            sent_s * 1000.0 >= window_end as f64
        },
    );
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
    let missing = missing_from(&expected, &consumed, 20);
    assert!(
        missing.is_empty(),
        "{} of {samples} samples in Prometheus' TSDB are not as sent in what consume read \
         ({} lines); the first:\n{}",
        missing.len(),
        lines.len(),
        missing.join("\n")
    );
    eprintln!(
        "crash={crash} partition-by={partition_by}: {samples} samples in {} series compared; Prometheus sent {sent}, \
         retried {retried}; consume read {} lines",
        expected.len(),
        lines.len()
    );
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
