//! `GET /api/status` with `serve --queue kafka`, against a real broker
//! (tansu) and an independent reader of the same figures (Python's
//! confluent-kafka, its own librdkafka build): the partitions' watermarks
//! and first records' timestamps, a consumer group's committed offsets and
//! lag after `consume` read part of the topic and stopped, lag 0 once a
//! consumer caught up, and a frozen broker that makes the status say "not
//! answering" at once instead of hanging.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::broker::{kafka_args, python, Broker};
use common::{cpp_body, sigterm, wait_for, Server, BIN};
use serde_json::Value;

const GROUP: &str = "g";

/// What the independent reader sees: per partition, the watermarks, the
/// group's committed offset (-1: none) and the first record's timestamp.
const READ_FIGURES: &str = r#"
import json, sys, time
from confluent_kafka import Consumer, KafkaError, TopicPartition
brokers, topic, group = sys.argv[1], sys.argv[2], sys.argv[3]
# group.id is the group's, but it never subscribes: committed() only asks.
c = Consumer({"bootstrap.servers": brokers, "group.id": group,
              "enable.auto.commit": False, "enable.partition.eof": True})
parts = sorted(c.list_topics(topic, timeout=10).topics[topic].partitions)
out = {}
for p in parts:
    low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
    out[p] = {"low": low, "high": high, "committed": -1, "first_ts": None}
for tp in c.committed([TopicPartition(topic, p) for p in parts], timeout=10):
    if tp.error:
        sys.exit("committed %s: %s" % (tp.partition, tp.error))
    out[tp.partition]["committed"] = tp.offset
want = [p for p in parts if out[p]["high"] > out[p]["low"]]
c.assign([TopicPartition(topic, p, out[p]["low"]) for p in want])
deadline = time.time() + 30
while any(out[p]["first_ts"] is None for p in want):
    if time.time() > deadline:
        sys.exit("no first record of every partition after 30s")
    m = c.poll(0.5)
    if m is None or m.error():
        continue
    if out[m.partition()]["first_ts"] is None:
        out[m.partition()]["first_ts"] = m.timestamp()[1]
c.close()
print(json.dumps(out))
"#;

#[derive(Debug, PartialEq, Clone, Copy)]
struct Seen {
    low: u64,
    high: u64,
    committed: Option<u64>,
    first_ts: Option<i64>,
}

fn independent(broker: &Broker, topic: &str) -> BTreeMap<u32, Seen> {
    let out = Command::new(python())
        .args(["-c", READ_FIGURES, &broker.addr(), topic, GROUP])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "running {} ({e}): this test reads Kafka with Python's confluent-kafka; \
                 `source scripts/deps.sh` installs it and sets METRICSTREAM_PYTHON",
                python()
            )
        });
    assert!(
        out.status.success(),
        "the independent read failed: {}\nbroker log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        broker.log_text()
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_object()
        .unwrap()
        .iter()
        .map(|(p, f)| {
            let c = f["committed"].as_i64().unwrap();
            (
                p.parse().unwrap(),
                Seen {
                    low: f["low"].as_u64().unwrap(),
                    high: f["high"].as_u64().unwrap(),
                    committed: (c >= 0).then_some(c as u64),
                    first_ts: f["first_ts"].as_i64(),
                },
            )
        })
        .collect()
}

fn status(s: &Server) -> Value {
    let r = s.get("/api/status");
    assert_eq!(r.status, 200, "{r:?}");
    r.json()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn group(st: &Value) -> Option<&Value> {
    st["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == GROUP)
}

/// The status' view in the independent reader's shape (timestamps aside).
fn status_view(st: &Value) -> BTreeMap<u32, (u64, u64, Option<u64>)> {
    let committed: BTreeMap<u64, Option<u64>> = group(st)
        .map(|g| {
            g["partitions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p["partition"].as_u64().unwrap(), p["committed"].as_u64()))
                .collect()
        })
        .unwrap_or_default();
    st["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let id = p["partition"].as_u64().unwrap();
            (
                id as u32,
                (
                    p["start_offset"].as_u64().unwrap(),
                    p["end_offset"].as_u64().unwrap(),
                    committed.get(&id).copied().flatten(),
                ),
            )
        })
        .collect()
}

/// Polls the status until its figures are the independent reader's
/// (the status refreshes every few seconds); returns both.
fn agreeing(s: &Server, broker: &Broker) -> (Value, BTreeMap<u32, Seen>) {
    let start = Instant::now();
    loop {
        let seen = independent(broker, "metrics");
        let st = status(s);
        let want: BTreeMap<u32, (u64, u64, Option<u64>)> = seen
            .iter()
            .map(|(p, f)| (*p, (f.low, f.high, f.committed)))
            .collect();
        let got = status_view(&st);
        if got == want {
            return (st, seen);
        }
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "the status never agreed with the independent read:\nstatus {got:?}\nread   \
             {want:?}\n{st:#}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn post(s: &Server, from: u64, n: u64) {
    for i in from..from + n {
        let client = format!("client-{}", i % 16);
        let r = s.post(&cpp_body("h", i), &[("Authorization", &client)]);
        assert_eq!(r.status, 200, "{r:?}");
    }
}

fn consume(broker: &Broker, follow: bool) -> Command {
    let mut c = Command::new(BIN);
    c.args(["consume", "--queue", "kafka", "--brokers", &broker.addr()])
        .args(["--topic", "metrics", "--group", GROUP, "--from-beginning"])
        .env("NO_COLOR", "1");
    if !follow {
        c.arg("--exit-at-end");
    }
    c
}

#[test]
fn kafka_figures_match_an_independent_read() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let addr = broker.addr();
    let mut args = kafka_args(&addr, "metrics");
    args.extend(["--status-group", GROUP]);
    let s = Server::start(dir.path(), &args);
    let started_ms = now_ms();

    // The 404 names the status page and its JSON.
    let r = s.get("/no-such-thing");
    assert_eq!(r.status, 404);
    assert!(
        r.body.contains("/api/status") && r.body.contains("GET / "),
        "{}",
        r.body
    );

    // A consumer reads the first 200 batches and is stopped.
    post(&s, 0, 200);
    let mut member = consume(&broker, true)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(0usize));
    let out = member.stdout.take().unwrap();
    let count = lines.clone();
    std::thread::spawn(move || {
        for _ in BufReader::new(out).lines().map_while(Result::ok) {
            *count.lock().unwrap() += 1;
        }
    });
    // Three metrics per batch, one line each.
    wait_for(
        "the consumer to read 200 batches",
        Duration::from_secs(60),
        || *lines.lock().unwrap() >= 600,
    );
    sigterm(&member);
    let exit = member.wait().unwrap();
    assert!(exit.success(), "consume exited with {exit}");
    // 150 more that nobody reads: the group's lag.
    post(&s, 200, 150);

    let (st, seen) = agreeing(&s, &broker);
    let k = &st["kafka"];
    assert_eq!(st["queue"], "kafka");
    assert_eq!(k["answering"], true, "{k}");
    let total: u64 = seen.values().map(|f| f.high - f.low).sum();
    assert_eq!(total, 350, "one record per batch: {seen:?}");
    let g = group(&st).expect("group g on the status");
    let mut lag = 0;
    for (p, gp) in g["partitions"].as_array().unwrap().iter().enumerate() {
        let f = seen[&(p as u32)];
        let want = f.high - f.committed.unwrap_or(f.low).max(f.low);
        assert_eq!(
            gp["lag_records"].as_u64(),
            Some(want),
            "partition {p}: {gp}"
        );
        lag += want;
        if want > 0 {
            // The age of the first waiting record: it was sent after the
            // server started, and is no older than that.
            let age = gp["lag_seconds"].as_f64().unwrap_or_else(|| panic!("{gp}"));
            assert!(
                age >= 0.0 && age <= (now_ms() - started_ms) as f64 / 1000.0 + 1.0,
                "{gp}"
            );
        }
    }
    assert!(lag >= 150, "the 150 unread batches wait: {lag}");
    assert_eq!(g["lag_records"].as_u64(), Some(lag));
    // Members: the broker's group list, or unknown when it lists none.
    match k["group_list_error"].as_str() {
        Some(_) => {
            assert_eq!(k["groups_from"], "status-group");
            assert!(g["members_alive"].is_null(), "{g}");
        }
        None => {
            assert_eq!(k["groups_from"], "broker");
            assert_eq!(g["members_alive"].as_u64(), Some(0), "{g}");
        }
    }
    for p in st["partitions"].as_array().unwrap() {
        let f = seen[&(p["partition"].as_u64().unwrap() as u32)];
        assert!(p["bytes_on_disk"].is_null(), "unknown, not 0: {p}");
        assert_eq!(p["records"].as_u64(), Some(f.high - f.low));
        // The first record's age against its timestamp as read apart
        // (the status read it at figures_at_ms, then aged it to now).
        if let Some(ts) = f.first_ts {
            let age = p["oldest_record_age_seconds"]
                .as_f64()
                .unwrap_or_else(|| panic!("{p}"));
            let want = (st["generated_at_ms"].as_i64().unwrap() - ts) as f64 / 1000.0;
            assert!((age - want).abs() < 0.01, "{p}: want {want}");
        }
    }
    assert!(
        st["notes"]
            .to_string()
            .contains("Bytes on disk are unknown"),
        "{}",
        st["notes"]
    );

    // The consumer catches up: lag 0 everywhere.
    let out = consume(&broker, false).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (st, seen) = agreeing(&s, &broker);
    assert!(
        seen.values().all(|f| f.committed == Some(f.high)),
        "{seen:?}"
    );
    let g = group(&st).unwrap();
    assert_eq!(g["lag_records"].as_u64(), Some(0), "{g}");
    assert_eq!(g["lag_seconds"].as_f64(), Some(0.0), "{g}");

    // A frozen broker: the status answers at once and says since when the
    // broker does not answer, with the last figures.
    let mut broker = broker;
    let frozen_ms = now_ms();
    broker.freeze();
    wait_for(
        "the status to say the broker does not answer",
        Duration::from_secs(30),
        || {
            let t = Instant::now();
            let st = status(&s);
            assert!(
                t.elapsed() < Duration::from_secs(1),
                "/api/status took {:?} with the broker frozen",
                t.elapsed()
            );
            st["kafka"]["answering"] == false
        },
    );
    let st = status(&s);
    let since = st["kafka"]["not_answering_since_ms"].as_i64().unwrap();
    assert!(since >= frozen_ms - 5_000, "{}", st["kafka"]);
    assert!(st["kafka"]["error"].is_string(), "{}", st["kafka"]);
    assert_eq!(status_view(&st).len(), seen.len(), "the last figures stay");
    broker.kill();
}
