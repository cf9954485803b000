//! `consume --sink remote-write` into a real Prometheus 2.42 (remote_write
//! receiver on): every sample consumed is in the store with the same
//! labels, value and timestamp; and so it stays with the store killed and
//! restarted mid-stream, with the consumer SIGKILLed and restarted, and
//! with a few samples the store refuses for good (those, and only those,
//! in the dead-letter file). After each, the committed offsets are at the
//! end of every partition. And at a scripted store that decodes what it
//! gets: native histograms and exemplars (UTF-8 names, unit, help) arrive
//! in their own lists, once each, none as a float; a histogram the store
//! answers 500 "invalid" to (as Prometheus does) is dead-lettered, not
//! retried for ever.

mod common;

use std::path::Path;
use std::time::Duration;

use common::fake_store::{FakeStore, What};
use common::prometheus::{
    assert_holds_exactly, consumed_samples, now_ms, Prometheus, PrometheusConfig, Samples,
};
use common::sink::{
    assert_delivered, dead_letters, ends, expected_metadata, expected_points, native_requests,
    post_rw, remote_write_args, store_requests, wait_committed, Consumer, Series,
};
use common::{consume_all, Server};

fn store() -> Prometheus {
    Prometheus::launch(PrometheusConfig {
        receiver: true,
        ..PrometheusConfig::default()
    })
}

fn write_url(p: &Prometheus) -> String {
    format!("http://{}/api/v1/write", p.addr)
}

/// Request `i` of client `c`: 8 series, one sample each at `base + i s`;
/// series 0 goes through +Inf, -Inf and NaN, series 1 has a staleness
/// marker now and then.
fn request_of(c: usize, i: i64, base: i64) -> Vec<Series> {
    (0..8)
        .map(|s| {
            let value = match (s, i % 7) {
                (0, 1) => f64::INFINITY,
                (0, 2) => f64::NEG_INFINITY,
                (0, 3) => f64::from_bits(0x7ff8_0000_0000_0001),
                (1, 4) => f64::from_bits(0x7ff0_0000_0000_0002),
                _ => i as f64 * 1.25 + s as f64 / 3.0,
            };
            (
                format!("sink_test_{}", if s % 2 == 0 { "gauge" } else { "total" }),
                vec![
                    ("client".to_string(), format!("c{c}")),
                    ("series".to_string(), s.to_string()),
                ],
                vec![(value, base + i * 1000)],
            )
        })
        .collect()
}

fn post_range(server: &Server, clients: usize, from: i64, to: i64, base: i64) {
    for i in from..to {
        for c in 0..clients {
            post_rw(server, &format!("client-{c}"), &request_of(c, i, base));
        }
    }
}

/// What the queue holds, as the store should print it.
fn queued(data: &Path) -> (Samples, std::collections::BTreeMap<u32, u64>) {
    let lines = consume_all(data, "reference");
    (consumed_samples(&lines), ends(&lines))
}

/// The store holds exactly `expected`: nothing missing, nothing else.
fn assert_store_has(p: &Prometheus, expected: &Samples, log: &str) {
    let total = assert_holds_exactly(p, r#"{__name__=~"sink_test_.+"}"#, expected, log);
    eprintln!(
        "{total} samples in {} series checked in the store",
        expected.len()
    );
}

#[test]
fn every_consumed_sample_is_in_prometheus_and_offsets_are_committed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--partition-by", "series"]);
    let base = now_ms() - 30 * 60 * 1000;
    post_range(&server, 4, 0, 60, base);
    let prom = store();
    let args = remote_write_args(&write_url(&prom));
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.push("--exit-at-end");
    let mut consumer = Consumer::start(dir.path(), "to-prom", &args);
    let status = consumer.wait(Duration::from_secs(60));
    assert!(status.success(), "{status:?}: {}", consumer.log_text());
    let (expected, ends) = queued(dir.path());
    assert!(
        ends.len() >= 3,
        "the series did not spread over the partitions: {ends:?}"
    );
    wait_committed(
        dir.path(),
        "to-prom",
        &ends,
        Duration::from_secs(1),
        &|| consumer.log_text(),
    );
    assert_store_has(&prom, &expected, &consumer.log_text());
    assert!(dead_letters(dir.path(), "to-prom").is_empty());
}

#[test]
fn the_store_killed_and_restarted_mid_stream_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let base = now_ms() - 30 * 60 * 1000;
    post_range(&server, 2, 0, 10, base);
    let mut prom = store();
    let args = remote_write_args(&write_url(&prom));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut consumer = Consumer::start(dir.path(), "g", &args);
    let writer = std::thread::spawn({
        let addr_dir = dir.path().to_path_buf();
        let _ = addr_dir;
        let server_addr = server.addr;
        move || {
            for i in 10..200 {
                for c in 0..2 {
                    let body = common::sink::rw_body(&request_of(c, i, base));
                    let r = common::request(
                        server_addr,
                        "POST",
                        "/api/v1/write",
                        &[
                            ("Content-Type", "application/x-protobuf"),
                            ("Content-Encoding", "snappy"),
                            ("Authorization", &format!("client-{c}")),
                        ],
                        &body,
                    );
                    assert!((200..300).contains(&r.status), "{r:?}");
                }
                std::thread::sleep(Duration::from_millis(15));
            }
        }
    });
    std::thread::sleep(Duration::from_millis(800));
    prom.sigkill();
    std::thread::sleep(Duration::from_secs(2));
    prom.restart();
    writer.join().unwrap();
    let (expected, ends) = queued(dir.path());
    wait_committed(dir.path(), "g", &ends, Duration::from_secs(30), &|| {
        consumer.log_text()
    });
    let status = consumer.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status:?}");
    let log = consumer.log_text();
    assert!(
        log.contains("retrying"),
        "the store's death went unnoticed:\n{log}"
    );
    assert_store_has(&prom, &expected, &log);
    let dead = dead_letters(dir.path(), "g");
    assert!(dead.is_empty(), "dead-lettered: {dead:?}");
}

#[test]
fn the_consumer_sigkilled_and_restarted_resends_without_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--partitions", "2"]);
    let base = now_ms() - 30 * 60 * 1000;
    post_range(&server, 2, 0, 150, base);
    let prom = store();
    let mut args = remote_write_args(&write_url(&prom));
    // Small batches: the kill lands between deliveries and commits.
    args.extend(["--batch-samples".into(), "40".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut first = Consumer::start(dir.path(), "g", &args);
    // Requests under way (offsets are committed only every 200 ms, so
    // waiting for a commit could outlast the whole stream).
    common::wait_for("some deliveries", Duration::from_secs(30), || {
        common::sink::sent_marks(dir.path(), "g")
            .values()
            .sum::<u64>()
            > 20
    });
    first.sigkill();
    let at_kill = common::sink::committed(dir.path(), "g");
    let mut args = args.clone();
    args.push("--exit-at-end");
    let mut second = Consumer::start(dir.path(), "g", &args);
    let status = second.wait(Duration::from_secs(60));
    assert!(status.success(), "{status:?}: {}", second.log_text());
    let (expected, ends) = queued(dir.path());
    wait_committed(dir.path(), "g", &ends, Duration::from_secs(1), &|| {
        second.log_text()
    });
    assert!(
        at_kill.values().sum::<u64>() < ends.values().sum::<u64>(),
        "killed after the end"
    );
    let log = format!(
        "{}\n--- after the restart:\n{}",
        first.log_text(),
        second.log_text()
    );
    let summary = log
        .lines()
        .rev()
        .find(|l| l.contains("consumer stopped"))
        .unwrap_or_default();
    eprintln!("killed at {at_kill:?} of {ends:?}; {summary}");
    assert_store_has(&prom, &expected, &log);
    let dead = dead_letters(dir.path(), "g");
    assert!(
        dead.is_empty(),
        "replayed samples were dead-lettered: {dead:?}\n{log}"
    );
}

#[test]
fn samples_the_store_refuses_go_to_the_dead_letter_file_and_the_rest_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--partitions", "2"]);
    let base = now_ms() - 30 * 60 * 1000;
    post_range(&server, 2, 0, 20, base);
    let prom = store();
    let args = remote_write_args(&write_url(&prom));
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.push("--exit-at-end");
    // First the store gets recent samples: from then on it refuses
    // anything much older than its newest one ("out of bounds").
    let mut first = Consumer::start(dir.path(), "g", &args);
    assert!(
        first.wait(Duration::from_secs(60)).success(),
        "{}",
        first.log_text()
    );
    let two_days_ago = now_ms() - 2 * 86_400_000;
    let mut bad = Vec::new();
    for i in 20..40 {
        for c in 0..2 {
            let mut req = request_of(c, i, base);
            if i % 7 == 0 {
                let labels = vec![
                    ("client".to_string(), format!("c{c}")),
                    ("i".to_string(), i.to_string()),
                ];
                req.insert(
                    3,
                    (
                        "sink_test_old".into(),
                        labels.clone(),
                        vec![(42.0, two_days_ago + i)],
                    ),
                );
                bad.push((format!("c{c}"), i.to_string(), two_days_ago + i));
            }
            post_rw(&server, &format!("client-{c}"), &req);
        }
    }
    let mut second = Consumer::start(dir.path(), "g", &args);
    let status = second.wait(Duration::from_secs(60));
    assert!(status.success(), "{status:?}: {}", second.log_text());
    let (mut expected, ends) = queued(dir.path());
    wait_committed(dir.path(), "g", &ends, Duration::from_secs(1), &|| {
        second.log_text()
    });

    let dead = dead_letters(dir.path(), "g");
    let mut got: Vec<(String, String, i64)> = dead
        .iter()
        .map(|d| {
            assert_eq!(d["name"], "sink_test_old", "{d}");
            assert_eq!(d["status"], 400, "{d}");
            assert!(
                d["reason"].as_str().unwrap().contains("out of bounds"),
                "{d}"
            );
            let labels = &d["tags"];
            (
                labels["client"].as_str().unwrap().to_string(),
                labels["i"].as_str().unwrap().to_string(),
                d["timestamp"].as_i64().unwrap(),
            )
        })
        .collect();
    got.sort();
    bad.sort();
    assert_eq!(
        got, bad,
        "the dead-letter file must hold exactly the refused samples"
    );
    expected.retain(|labels, _| labels["__name__"] != "sink_test_old");
    assert_store_has(&prom, &expected, &second.log_text());
}

#[test]
fn two_group_members_split_the_partitions_into_one_store() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--partition-by", "series"]);
    let base = now_ms() - 30 * 60 * 1000;
    post_range(&server, 1, 0, 1, base); // creates the queue so members can join
    let prom = store();
    let args = remote_write_args(&write_url(&prom));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut a = Consumer::start(dir.path(), "pair", &args);
    let mut b = Consumer::start(dir.path(), "pair", &args);
    std::thread::sleep(Duration::from_millis(1500)); // both joined and balanced
    post_range(&server, 4, 1, 40, base);
    let (expected, ends) = queued(dir.path());
    wait_committed(dir.path(), "pair", &ends, Duration::from_secs(30), &|| {
        format!("{}\n---\n{}", a.log_text(), b.log_text())
    });
    for c in [&mut a, &mut b] {
        let status = c.terminate(Duration::from_secs(15));
        assert!(status.success(), "{status:?}");
    }
    let sent = |c: &Consumer| -> u64 {
        let log = c.log_text();
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains("consumer stopped"))
            .unwrap_or_default();
        line.split("sent=")
            .nth(1)
            .and_then(|r| r.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no summary in:\n{log}"))
    };
    let (sa, sb) = (sent(&a), sent(&b));
    assert!(
        sa > 0 && sb > 0,
        "one member did all the work: {sa} and {sb}"
    );
    let log = format!("{}\n---\n{}", a.log_text(), b.log_text());
    assert_store_has(&prom, &expected, &log);
    assert!(dead_letters(dir.path(), "pair").is_empty());
}

/// Native histograms (integer, float with custom buckets) and exemplars,
/// with UTF-8 names, unit and help, stored as `serve` stores them, reach a
/// remote_write 1.0 store each in its series' `histograms` or `exemplars`,
/// once, in order, nothing as a float that was not one; the families'
/// metadata carries unit and help; every offset is committed.
#[test]
fn native_histograms_and_exemplars_reach_a_1_0_store_as_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let mut requests = native_requests(30, now_ms() - 60_000);
    store_requests(dir.path(), 2, &mut requests);
    let store = FakeStore::start(Box::new(|_| Some((204, vec![]))));
    let mut args = remote_write_args(&store.url());
    // Small batches: points of one record go out in several requests.
    args.extend(["--batch-samples", "7", "--exit-at-end"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut consumer = Consumer::start(dir.path(), "g", &args);
    let status = consumer.wait(Duration::from_secs(60));
    assert!(status.success(), "{status:?}: {}", consumer.log_text());
    let (_, ends) = queued(dir.path());
    wait_committed(dir.path(), "g", &ends, Duration::from_secs(1), &|| {
        consumer.log_text()
    });
    let received = store.received.lock().unwrap();
    assert!(received.len() >= 20, "{} requests", received.len());
    assert!(received
        .iter()
        .all(|r| r.content_type == "application/x-protobuf"));
    assert_delivered(
        &received,
        &expected_points(&requests, 1),
        &expected_metadata(),
    );
    assert!(dead_letters(dir.path(), "g").is_empty());
}

/// Prometheus answers 500 to a native histogram it finds invalid, which no
/// retry changes: those histograms, and only they, go to the dead-letter
/// file with the store's reason; everything else arrives; every offset is
/// committed (the partition does not stall on them).
#[test]
fn histograms_the_store_finds_invalid_are_dead_lettered_not_retried_for_ever() {
    let dir = tempfile::tempdir().unwrap();
    let mut requests = native_requests(12, now_ms() - 60_000);
    store_requests(dir.path(), 2, &mut requests);
    const INVALID: &str = "7 observations found in buckets, but the Count field is 4.5: \
        histogram's observation count should be at least the number of observations \
        found in the buckets";
    // As Prometheus 2.42 answers: the whole request fails on the first
    // invalid histogram.
    let invalid = |p: &common::fake_store::Point| {
        matches!(p.what, What::Histogram(_)) && p.series["__name__"] == "queue_wait_seconds"
    };
    let store = FakeStore::answering(Box::new(move |_, r| {
        let bad = r.decoded().points.iter().any(invalid);
        Some(match bad {
            true => (500, vec![], INVALID.to_string()),
            false => (204, vec![], String::new()),
        })
    }));
    let mut args = remote_write_args(&store.url());
    args.extend(["--batch-samples", "9", "--exit-at-end"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut consumer = Consumer::start(dir.path(), "g", &args);
    let status = consumer.wait(Duration::from_secs(60));
    assert!(status.success(), "{status:?}: {}", consumer.log_text());
    let (_, ends) = queued(dir.path());
    wait_committed(dir.path(), "g", &ends, Duration::from_secs(1), &|| {
        consumer.log_text()
    });

    let mut expected = expected_points(&requests, 1);
    expected.retain(|p| !invalid(p));
    let mut metadata = expected_metadata();
    // The series had nothing else: no request of it was taken.
    metadata.remove("queue_wait_seconds");
    let received = store.received.lock().unwrap();
    assert!(received.iter().any(|r| r.status == Some(500)));
    assert_delivered(&received, &expected, &metadata);
    let dead = dead_letters(dir.path(), "g");
    let mut times: Vec<i64> = dead
        .iter()
        .map(|d| {
            assert_eq!(d["name"], "queue_wait_seconds", "{d}");
            assert_eq!((&d["status"], &d["reason"]), (&500.into(), &INVALID.into()));
            assert_eq!(d["histogram"]["float"], true, "{d}");
            d["timestamp"].as_i64().unwrap()
        })
        .collect();
    times.sort();
    let mut want: Vec<i64> = requests
        .iter()
        .flat_map(|(_, _, metrics)| metrics)
        .filter(|m| m.name == "queue_wait_seconds")
        .map(|m| m.timestamp.unwrap() as i64)
        .collect();
    want.sort();
    assert_eq!(times, want, "every invalid histogram dead-lettered once");
    let log = consumer.log_text();
    assert!(
        !log.contains("retrying"),
        "an invalid histogram was retried:\n{log}"
    );
}
