//! The broker dies under load and comes back.
//! Durable: every 200 is in Kafka, requests get 503 (with Retry-After) while
//! it is away, and metricstream recovers by itself.
//! Accepted: every request keeps getting 200; batches go to the spill log and
//! reach Kafka once it is back, whether metricstream keeps running or is
//! stopped and started again, and a further restart re-sends nothing.

mod common;

use std::time::{Duration, Instant};

use common::broker::{assert_all_acked_in_kafka, kafka_args, seq_counts, Broker, Load};
use common::{wait_for, Server};

#[test]
fn durable_broker_kill_and_restart_under_load() {
    let mut broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let addr = broker.addr();
    let mut s = Server::start(dir.path(), &kafka_args(&addr, "metrics"));

    let load = Load::start(s.addr, 6, 0, Duration::from_millis(5));
    std::thread::sleep(Duration::from_millis(1500));
    let killed = Instant::now();
    broker.kill();
    wait_for("/ready to turn 503", Duration::from_secs(5), || {
        s.get("/ready").status == 503
    });
    // Back within the delivery timeout (10 s): batches caught by the kill
    // are delivered after all (the load's threads wait in those requests);
    // new requests get a 503 at once meanwhile.
    for i in 0..5 {
        let sent = Instant::now();
        let r = s.post(
            &common::cpp_body("probe", 900_000_000 + i),
            &[("Authorization", "probe")],
        );
        assert_eq!(r.status, 503, "{r:?}");
        assert!(r.header("retry-after").is_some(), "{r:?}");
        assert!(r.body.contains("no Kafka broker reachable"), "{r:?}");
        assert!(sent.elapsed() < Duration::from_secs(1));
        std::thread::sleep(Duration::from_millis(300));
    }
    broker.restart();
    let back = Instant::now();
    wait_for("/ready to turn 200 again", Duration::from_secs(20), || {
        s.get("/ready").status == 200
    });
    std::thread::sleep(Duration::from_secs(2));
    let outcomes = load.stop();

    let unexpected: Vec<_> = outcomes
        .iter()
        .filter(|o| o.status != 200 && o.status != 503)
        .collect();
    assert!(
        unexpected.is_empty(),
        "{:?}",
        &unexpected[..unexpected.len().min(5)]
    );
    let refused: Vec<_> = outcomes
        .iter()
        .filter(|o| o.at > killed && o.status == 503)
        .collect();
    assert!(
        refused.iter().all(|o| o.retry_after.is_some()),
        "503 without Retry-After"
    );
    let recovered = outcomes
        .iter()
        .filter(|o| o.at > back && o.status == 200)
        .count();
    assert!(
        recovered > 20,
        "only {recovered} 200s after the broker came back"
    );
    let acked = outcomes.iter().filter(|o| o.status == 200).count();
    assert!(acked > 100, "too little load: {acked}");

    let records = broker.read_until("metrics", Duration::from_secs(60), |r| {
        let seen = seq_counts(r);
        outcomes
            .iter()
            .filter(|o| o.status == 200)
            .all(|o| seen.contains_key(&o.seq.to_string()))
    });
    assert_all_acked_in_kafka(&outcomes, &records);
    // Offsets answered are the offsets in Kafka.
    let at: std::collections::HashMap<(u64, u64), String> = records
        .iter()
        .map(|r| ((r.partition as u64, r.offset), r.seq().unwrap_or_default()))
        .collect();
    for o in outcomes.iter().filter(|o| o.status == 200) {
        let j: serde_json::Value = serde_json::from_str(&o.body).unwrap();
        let (p, off) = (
            j["partition"].as_u64().unwrap(),
            j["offset"].as_u64().unwrap(),
        );
        assert_eq!(
            at.get(&(p, off)),
            Some(&o.seq.to_string()),
            "seq {} at {p}/{off}",
            o.seq
        );
    }
    let status = s.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status:?}\n{}", s.log_text());
}

#[test]
fn durable_requests_get_503_within_the_delivery_timeout() {
    let mut broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let addr = broker.addr();
    let mut args = kafka_args(&addr, "metrics");
    args.extend(["--delivery-timeout", "2s"]);
    let mut s = Server::start(dir.path(), &args);
    let load = Load::start(s.addr, 6, 0, Duration::from_millis(5));
    std::thread::sleep(Duration::from_secs(1));
    let killed = Instant::now();
    broker.kill(); // and it stays away
    std::thread::sleep(Duration::from_secs(4));
    let outcomes = load.stop();
    let after: Vec<_> = outcomes.iter().filter(|o| o.at > killed).collect();
    assert!(after.len() > 10, "{after:?}");
    let slowest = after.iter().map(|o| o.took).max().unwrap();
    assert!(
        slowest < Duration::from_millis(3500),
        "a request waited {slowest:?}, past the 2 s delivery timeout"
    );
    // Requests that were inside the producer when it died get a 503 at
    // the latest when their delivery times out; later ones at once.
    let late: Vec<_> = after
        .iter()
        .filter(|o| o.at > killed + Duration::from_millis(2500))
        .collect();
    assert!(
        !late.is_empty() && late.iter().all(|o| o.status == 503),
        "{late:?}"
    );
    assert_eq!(s.get("/ready").status, 503);
    // Nothing was accepted without being acknowledged: exit 0.
    let status = s.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status:?}\n{}", s.log_text());
    let acked: Vec<_> = outcomes
        .iter()
        .filter(|o| o.status == 200)
        .cloned()
        .collect();
    broker.restart();
    let records = broker.read_topic("metrics");
    assert_all_acked_in_kafka(&acked, &records);
}

#[test]
fn accepted_mode_spills_while_the_broker_is_away() {
    let mut broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let addr = broker.addr();
    let mut args = kafka_args(&addr, "metrics");
    args.extend(["--ack", "accepted", "--shutdown-timeout", "4s"]);

    // 1. The broker goes away and comes back while metricstream runs.
    let mut s = Server::start(dir.path(), &args);
    let load = Load::start(s.addr, 6, 0, Duration::from_millis(5));
    std::thread::sleep(Duration::from_secs(1));
    broker.kill();
    wait_for("/ready to turn 503", Duration::from_secs(5), || {
        s.get("/ready").status == 503
    });
    std::thread::sleep(Duration::from_secs(2));
    let spilled_before = s.get("/stats").json()["spilled"].as_u64().unwrap();
    assert!(
        spilled_before > 0,
        "nothing spilled while the broker was away"
    );
    broker.restart();
    std::thread::sleep(Duration::from_secs(2));
    let first = load.stop();
    assert!(
        first.iter().all(|o| o.status == 200),
        "accepted mode must keep answering 200: {:?}",
        first.iter().find(|o| o.status != 200)
    );
    broker.read_until("metrics", Duration::from_secs(60), |r| {
        let seen = seq_counts(r);
        first.iter().all(|o| seen.contains_key(&o.seq.to_string()))
    });
    let stats = s.get("/stats").json();
    assert!(stats["resent"].as_u64().unwrap() > 0, "{stats}");

    // 2. The broker goes away; metricstream is stopped while it is away:
    //    everything accepted is on disk, exit 0; the next start re-sends it.
    let load = Load::start(s.addr, 6, 100_000_000, Duration::from_millis(5));
    std::thread::sleep(Duration::from_millis(500));
    broker.kill();
    std::thread::sleep(Duration::from_secs(2));
    let status = s.terminate(Duration::from_secs(20));
    let second = load.stop();
    let log = s.log_text();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("lost=0"), "{log}");
    assert!(second.iter().filter(|o| o.status == 200).count() > 50);
    assert!(
        second
            .iter()
            .all(|o| o.status == 200 || o.status == 503 || o.status == 0),
        "{:?}",
        second.iter().find(|o| ![0, 200, 503].contains(&o.status))
    );
    drop(s);

    broker.restart();
    let s = Server::start(dir.path(), &args);
    assert!(s.log_text().contains("re-sent first"), "{}", s.log_text());
    let all: Vec<_> = first.iter().chain(second.iter()).cloned().collect();
    let records = broker.read_until("metrics", Duration::from_secs(60), |r| {
        let seen = seq_counts(r);
        all.iter()
            .filter(|o| o.status == 200)
            .all(|o| seen.contains_key(&o.seq.to_string()))
    });
    assert_all_acked_in_kafka(&all, &records);
    wait_for("the spill log to drain", Duration::from_secs(20), || {
        s.log_text().contains("producing directly again")
    });
    let mut s = s;
    let status = s.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status:?}\n{}", s.log_text());
    drop(s);

    // 3. Another start re-sends nothing: the progress was recorded.
    let count = records.len();
    let mut s = Server::start(dir.path(), &args);
    std::thread::sleep(Duration::from_secs(2));
    assert!(!s.log_text().contains("re-sent first"), "{}", s.log_text());
    let again = broker.read_topic("metrics");
    assert_eq!(again.len(), count, "spilled batches were sent again");
    let dups = seq_counts(&again).values().filter(|n| **n > 1).count();
    // Batches in flight when the broker died may be sent twice
    // (at-least-once); never more than a handful.
    assert!(dups <= 50, "{dups} duplicated batches");
    let status = s.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status:?}");
}
