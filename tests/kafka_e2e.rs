//! HTTP in → Kafka → read back by an independent client (Python's
//! confluent-kafka): content, keys, partitions and offsets. Plus the start-up
//! checks (missing topic, unreachable broker) and the producer figures.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::broker::{free_port, kafka_args, Broker};
use common::{cpp_body, Server, BIN};
use metricstream::queue::partitioner::partition_for;

#[test]
fn durable_batches_reach_kafka_with_keys_partitions_and_offsets() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let addr = broker.addr();
    let mut s = Server::start(dir.path(), &kafka_args(&addr, "metrics"));
    assert_eq!(s.get("/ready").status, 200);

    // seq → (client, partition, offset) as answered.
    let mut answered = BTreeMap::new();
    for i in 0..60u64 {
        let client = format!("client-{}", i % 7);
        let r = s.post(&cpp_body("web1", i), &[("Authorization", &client)]);
        assert_eq!(r.status, 200, "{r:?}");
        let j = r.json();
        assert_eq!(j["metrics_processed"], 3);
        let partition = j["partition"].as_u64().unwrap() as u32;
        assert_eq!(partition, partition_for(client.as_bytes(), 4), "{client}");
        let offset = j["offset"]
            .as_u64()
            .expect("durable replies carry the offset");
        answered.insert(i.to_string(), (client, partition, offset));
    }

    let records = broker.read_until("metrics", Duration::from_secs(30), |r| r.len() >= 60);
    assert_eq!(records.len(), 60, "exactly the batches sent");
    for r in &records {
        let seq = r.seq().expect("seq tag");
        let (client, partition, offset) = &answered[&seq];
        assert_eq!(&r.key, client, "key = client id");
        assert_eq!(r.partition, *partition, "murmur2 partition, as answered");
        assert_eq!(r.offset, *offset, "offset as answered");
        assert_eq!(r.value["client_id"], client.as_str());
        let metrics = r.value["metrics"].as_array().unwrap();
        assert_eq!(metrics.len(), 3);
        assert_eq!(metrics[0]["name"], "cpu_usage");
        assert_eq!(metrics[0]["value"], 42.123456);
        assert_eq!(metrics[0]["tags"]["host"], "web1");
        assert_eq!(metrics[1]["value"], 4_000_000_000.0);
        assert_eq!(metrics[2]["type"], "counter");
        assert!(metrics[0]["timestamp"].as_u64().unwrap() > 1_600_000_000_000);
    }
    // Per-client order: offsets grow with seq within each client's partition.
    let mut last: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let mut by_seq: Vec<_> = records.iter().collect();
    by_seq.sort_by_key(|r| r.seq().unwrap().parse::<u64>().unwrap());
    for r in by_seq {
        if let Some((_, off)) = last.get(r.key.as_str()) {
            assert!(r.offset > *off, "client {} out of order", r.key);
        }
        last.insert(&r.key, (0, r.offset));
    }

    let stats = s.get("/stats").json();
    assert_eq!(stats["delivered"], 60);
    assert_eq!(stats["batches_processed"], 60);
    let text = s.get("/metrics").body;
    for name in [
        "metricstream_deliveries_total 60",
        "metricstream_kafka_delivery_latency_seconds_bucket",
        "metricstream_kafka_in_flight",
        "metricstream_kafka_retries_total",
        "metricstream_queue_depth 0",
        "metricstream_spills_total 0",
        "metricstream_kafka_broker_reachable 1",
    ] {
        assert!(text.contains(name), "/metrics lacks {name}:\n{text}");
    }
    let status = s.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status:?}\n{}", s.log_text());
}

#[test]
fn accepted_replies_name_the_partition_kafka_uses() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let addr = broker.addr();
    let mut args = kafka_args(&addr, "acc");
    args.extend(["--ack", "accepted"]);
    let mut s = Server::start(dir.path(), &args);
    let mut answered = BTreeMap::new();
    for i in 0..40u64 {
        let client = format!("c{i}");
        let r = s.post(&cpp_body("h", i), &[("Authorization", &client)]);
        assert_eq!(r.status, 200, "{r:?}");
        let j = r.json();
        assert!(j.get("offset").is_none(), "no offset in accepted mode");
        answered.insert(i.to_string(), j["partition"].as_u64().unwrap() as u32);
    }
    let status = s.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status:?}\n{}", s.log_text());
    let records = broker.read_until("acc", Duration::from_secs(30), |r| r.len() >= 40);
    assert_eq!(records.len(), 40);
    for r in &records {
        assert_eq!(r.partition, answered[&r.seq().unwrap()]);
        assert_eq!(r.partition, partition_for(r.key.as_bytes(), 4));
    }
}

/// Runs `serve` expecting it to fail at start; returns its stderr and how long it took.
fn failing_start(args: &[&str]) -> (String, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(!status.success(), "serve should have failed");
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("serve hung instead of failing");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (
        String::from_utf8_lossy(&out.stderr).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn start_fails_clearly_without_topic_or_broker() {
    let broker = Broker::start();
    let addr = broker.addr();
    let (err, _) = failing_start(&["--queue", "kafka", "--brokers", &addr, "--topic", "nope"]);
    assert!(
        err.contains("\"nope\" does not exist")
            && err.contains(&addr)
            && err.contains("--create-topic"),
        "{err}"
    );

    let nobody = format!("127.0.0.1:{}", free_port());
    let (err, took) = failing_start(&[
        "--queue",
        "kafka",
        "--brokers",
        &nobody,
        "--connect-timeout",
        "3s",
    ]);
    assert!(
        err.contains(&format!("cannot reach Kafka at {nobody} within 3s")),
        "{err}"
    );
    assert!(took < Duration::from_secs(15), "took {took:?}");

    let (err, _) = failing_start(&["--queue", "kafka"]);
    assert!(err.contains("--queue kafka needs --brokers"), "{err}");
}
