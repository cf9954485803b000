//! The sinks' retry and shutdown rules against a scripted store: 429 with
//! `Retry-After` is waited out (never sooner) and nothing is lost or
//! committed early; the consumer's own metrics show it; SIGTERM with a
//! request the store never answers exits 0 within the shutdown timeout,
//! committing nothing that was not acknowledged.

mod common;

use std::time::Duration;

use common::fake_store::FakeStore;
use common::prometheus::now_ms;
use common::sink::{committed, ends, post_rw, remote_write_args, wait_committed, Consumer};
use common::{broker::free_port, consume_all, request, Server};
use prost::Message;

fn samples_in(body: &[u8]) -> usize {
    let proto = snap::raw::Decoder::new()
        .decompress_vec(body)
        .expect("snappy");
    let req = prompb::v1::WriteRequest::decode(proto.as_slice()).expect("a WriteRequest");
    req.timeseries.iter().map(|t| t.samples.len()).sum()
}

fn fill(server: &Server, requests: i64) {
    let base = now_ms() - 60_000;
    for i in 0..requests {
        let series: Vec<common::sink::Series> = (0..5)
            .map(|s| {
                (
                    "retry_test".to_string(),
                    vec![("s".to_string(), s.to_string())],
                    vec![(i as f64, base + i * 10)],
                )
            })
            .collect();
        post_rw(server, "client-a", &series);
    }
}

#[test]
fn a_store_answering_429_with_retry_after_is_waited_out_and_gets_everything() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--partitions", "1"]);
    fill(&server, 30);
    let store = FakeStore::start(Box::new(|n| {
        if n < 2 {
            Some((429, vec![("Retry-After".into(), "1".into())]))
        } else {
            Some((204, vec![]))
        }
    }));
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut args = remote_write_args(&store.url());
    // One lane: the store sees one request at a time, so the gaps between
    // them are the waits.
    args.extend([
        "--metrics-listen".into(),
        metrics.clone(),
        "--in-flight".into(),
        "1".into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut consumer = Consumer::start(dir.path(), "g", &args);
    let lines = consume_all(dir.path(), "reference");
    let ends = ends(&lines);
    wait_committed(dir.path(), "g", &ends, Duration::from_secs(30), &|| {
        consumer.log_text()
    });

    let text = request(metrics.parse().unwrap(), "GET", "/metrics", &[], b"").body;
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("{name} not in:\n{text}"))
    };
    assert_eq!(
        value("metricstream_consume_requests_total{outcome=\"429\"}"),
        2.0
    );
    assert_eq!(
        value("metricstream_consume_samples_sent_total"),
        lines.len() as f64
    );
    assert!(value("metricstream_consume_samples_retried_total") > 0.0);
    assert_eq!(
        value("metricstream_consume_lag_records{partition=\"0\"}"),
        0.0
    );
    assert!(text.contains("metricstream_consume_store_latency_seconds_bucket"));
    assert!(
        text.contains("metricstream_consume_last_error{error=\"429"),
        "{text}"
    );
    let status = consumer.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status:?}");

    let received = store.received.lock().unwrap();
    // The first answer was 429, Retry-After: 1 — the next try at least 1 s later.
    assert!(received.len() >= 3);
    for w in received.windows(2).take(2) {
        let gap = w[1].at - w[0].at;
        assert!(
            gap >= Duration::from_millis(990),
            "retried after {gap:?} despite Retry-After: 1"
        );
    }
    let accepted: usize = received
        .iter()
        .filter(|r| r.status == Some(204))
        .map(|r| samples_in(&r.body))
        .sum();
    assert_eq!(
        accepted,
        lines.len(),
        "samples acknowledged by the store vs queued"
    );
}

#[test]
fn sigterm_abandons_a_request_the_store_never_answers_and_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--partitions", "1"]);
    fill(&server, 10);
    let store = FakeStore::start(Box::new(|_| None));
    let mut args = remote_write_args(&store.url());
    args.extend(["--shutdown-timeout".into(), "1s".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut consumer = Consumer::start(dir.path(), "g", &args);
    common::wait_for("the first request", Duration::from_secs(20), || {
        !store.received.lock().unwrap().is_empty()
    });
    let started = std::time::Instant::now();
    let status = consumer.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status:?}: {}", consumer.log_text());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        committed(dir.path(), "g").is_empty(),
        "committed without an acknowledgement: {:?}",
        committed(dir.path(), "g")
    );
    assert!(
        consumer.log_text().contains("abandoned"),
        "{}",
        consumer.log_text()
    );
}

/// 503 and 401 (a store restarting, credentials being rotated) are retried,
/// not dead-lettered: everything arrives once the store answers 2xx.
#[test]
fn unavailable_and_unauthorized_answers_are_retried_not_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--partitions", "1"]);
    fill(&server, 20);
    let store = FakeStore::start(Box::new(|n| match n {
        0 => Some((503, vec![])),
        1 | 2 => Some((401, vec![])),
        _ => Some((204, vec![])),
    }));
    let args = remote_write_args(&store.url());
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.push("--exit-at-end");
    let mut consumer = Consumer::start(dir.path(), "g", &args);
    let status = consumer.wait(Duration::from_secs(30));
    assert!(status.success(), "{status:?}: {}", consumer.log_text());
    let lines = consume_all(dir.path(), "reference");
    wait_committed(
        dir.path(),
        "g",
        &ends(&lines),
        Duration::from_secs(1),
        &|| consumer.log_text(),
    );
    let received = store.received.lock().unwrap();
    let accepted: usize = received
        .iter()
        .filter(|r| r.status == Some(204))
        .map(|r| samples_in(&r.body))
        .sum();
    assert_eq!(accepted, lines.len());
    assert!(common::sink::dead_letters(dir.path(), "g").is_empty());
    assert!(
        consumer
            .log_text()
            .contains("check --url and the credentials"),
        "{}",
        consumer.log_text()
    );
}
