//! A real Kafka-API broker per test: tansu on a free loopback port with its
//! own temporary sqlite storage, killed when dropped. The binary comes from
//! `METRICSTREAM_TANSU`, else `~/.cache/metricstream/tansu-0.6.0/bin/tansu`
//! (`./scripts/kafka-broker.sh install` puts it there; `./scripts/test.sh`
//! runs that). Without it the test fails, saying so: it never skips.
//!
//! Kafka is read back by an independent client, Python's confluent-kafka
//! (its own librdkafka build), from `METRICSTREAM_PYTHON` or `python3`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn tansu_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("METRICSTREAM_TANSU") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/metricstream/tansu-0.6.0/bin/tansu")
}

pub fn python() -> String {
    std::env::var("METRICSTREAM_PYTHON").unwrap_or_else(|_| "python3".into())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub struct Broker {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    pub log: Arc<Mutex<String>>,
}

impl Broker {
    /// Starts a broker and waits until it answers.
    pub fn start() -> Broker {
        let mut b = Broker::unstarted();
        b.spawn();
        b
    }

    /// A broker with its port and storage chosen but not running yet:
    /// [`restart`](Self::restart) starts it.
    pub fn unstarted() -> Broker {
        let bin = tansu_bin();
        assert!(
            bin.exists(),
            "the Kafka tests need tansu (a Kafka-API broker) at {}: run \
             `./scripts/kafka-broker.sh install` (./scripts/test.sh does it) or set \
             METRICSTREAM_TANSU to the binary",
            bin.display()
        );
        Broker {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().expect("temp dir"),
            log: Arc::default(),
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let mut child = Command::new(tansu_bin())
            .current_dir(self.dir.path())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", tansu_bin().display()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        self.child = Some(child);
        let addr: SocketAddr = self.addr().parse().unwrap();
        let start = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("tansu exited ({status}):\n{}", self.log.lock().unwrap());
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "tansu did not listen on {addr} within 30s:\n{}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: the broker vanishes mid-request, like a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP: the broker stops answering but keeps its connections, so
    /// every batch sent meanwhile waits for an ack that will not come
    /// (until [`kill`](Self::kill) or a restart).
    pub fn freeze(&mut self) {
        let child = self
            .child
            .as_ref()
            .expect("freeze: the broker is not running");
        let status = Command::new("kill")
            .args(["-STOP", &child.id().to_string()])
            .status()
            .expect("running kill -STOP");
        assert!(status.success(), "kill -STOP {}: {status}", child.id());
    }

    /// Starts it (again) on the same port with the same storage.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        let out = Command::new(tansu_bin())
            .args([
                "topic",
                "create",
                name,
                "--partitions",
                &partitions.to_string(),
            ])
            .args(["--broker", &format!("tcp://127.0.0.1:{}", self.port)])
            .output()
            .expect("tansu topic create");
        assert!(
            out.status.success(),
            "creating topic {name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Every record of the topic, read from the beginning by Python's
    /// confluent-kafka until each partition reports its end, each value in
    /// the version 1 JSON form whatever its format (compact records are
    /// decoded by `tests/clients/record_reader.py`, from the `.proto`).
    pub fn read_topic(&self, topic: &str) -> Vec<KafkaRecord> {
        let out = Command::new(python())
            .args(["-c", READ_TOPIC, &self.addr(), topic, CLIENTS])
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "running {} ({e}): the Kafka tests read topics with Python's \
                     confluent-kafka; ./scripts/test.sh (or `source scripts/deps.sh`) installs it \
                     and sets METRICSTREAM_PYTHON",
                    python()
                )
            });
        assert!(
            out.status.success(),
            "reading {topic} with confluent-kafka failed (`pip install confluent-kafka`; \
             ./scripts/test.sh does it and sets METRICSTREAM_PYTHON): {}\nbroker log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let v: serde_json::Value =
                    serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}"));
                KafkaRecord {
                    partition: v["partition"].as_u64().unwrap() as u32,
                    offset: v["offset"].as_u64().unwrap(),
                    key: v["key"].as_str().unwrap_or_default().to_string(),
                    value: serde_json::from_str(v["value"].as_str().unwrap())
                        .unwrap_or(serde_json::Value::Null),
                }
            })
            .collect()
    }

    /// Reads until `done` holds for what was read (or panics after `within`).
    pub fn read_until(
        &self,
        topic: &str,
        within: Duration,
        mut done: impl FnMut(&[KafkaRecord]) -> bool,
    ) -> Vec<KafkaRecord> {
        let start = Instant::now();
        loop {
            let records = self.read_topic(topic);
            if done(&records) {
                return records;
            }
            assert!(
                start.elapsed() < within,
                "{topic}: still not complete after {within:?} ({} records)",
                records.len()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

#[derive(Debug, Clone)]
pub struct KafkaRecord {
    pub partition: u32,
    pub offset: u64,
    pub key: String,
    pub value: serde_json::Value,
}

impl KafkaRecord {
    /// The `seq` tag of the batch's first metric (`cpp_body` sets it).
    pub fn seq(&self) -> Option<String> {
        self.value["metrics"][0]["tags"]["seq"]
            .as_str()
            .map(str::to_string)
    }
}

/// How many times each seq appears.
pub fn seq_counts(records: &[KafkaRecord]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in records {
        if let Some(s) = r.seq() {
            *m.entry(s).or_default() += 1;
        }
    }
    m
}

/// Where the Python clients are (`record_reader.py` among them).
const CLIENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients");

const READ_TOPIC: &str = r#"
import json, sys, time, uuid
from confluent_kafka import Consumer, KafkaError, TopicPartition, OFFSET_BEGINNING
brokers, topic = sys.argv[1], sys.argv[2]
sys.path.insert(0, sys.argv[3])
import record_reader
c = Consumer({"bootstrap.servers": brokers, "group.id": "verify-" + uuid.uuid4().hex,
              "enable.auto.commit": False, "enable.partition.eof": True,
              "auto.offset.reset": "earliest"})
md = c.list_topics(topic, timeout=10)
parts = sorted(md.topics[topic].partitions)
if not parts:
    sys.exit("topic %s has no partitions" % topic)
c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
at_end, deadline = set(), time.time() + 30
while len(at_end) < len(parts):
    if time.time() > deadline:
        sys.exit("no end of partitions %s after 30s" % (set(parts) - at_end))
    m = c.poll(0.5)
    if m is None:
        continue
    if m.error():
        if m.error().code() == KafkaError._PARTITION_EOF:
            at_end.add(m.partition())
            continue
        sys.exit(str(m.error()))
    at_end.discard(m.partition())
    print(json.dumps({"partition": m.partition(), "offset": m.offset(),
                      "key": (m.key() or b"").decode(),
                      "value": json.dumps(record_reader.decode(m.value() or b""))}))
c.close()
"#;

/// What one request of a [`Load`] got.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub seq: u64,
    pub client: String,
    pub status: u16,
    pub body: String,
    pub retry_after: Option<String>,
    /// When the answer came, and how long it took.
    pub at: Instant,
    pub took: Duration,
}

impl Outcome {
    /// When the request was sent.
    pub fn sent(&self) -> Instant {
        self.at - self.took
    }
}

/// Client threads POSTing C++-shaped batches with unique `seq` tags, one
/// fresh connection per request, until stopped.
pub struct Load {
    stop: Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
}

impl Load {
    /// `clients` threads; seqs are `base + client * 1_000_000 + i`.
    pub fn start(addr: SocketAddr, clients: u64, base: u64, pause: Duration) -> Load {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let outcomes: Arc<Mutex<Vec<Outcome>>> = Arc::default();
        let threads = (0..clients)
            .map(|c| {
                let (stop, outcomes) = (stop.clone(), outcomes.clone());
                std::thread::spawn(move || {
                    let client = format!("client-{c}");
                    let mut i = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let seq = base + c * 1_000_000 + i;
                        let body = super::cpp_body(&format!("host{c}"), seq);
                        let sent = Instant::now();
                        let r = super::request(
                            addr,
                            "POST",
                            "/metrics",
                            &[("Authorization", &client)],
                            body.as_bytes(),
                        );
                        outcomes.lock().unwrap().push(Outcome {
                            seq,
                            client: client.clone(),
                            status: r.status,
                            retry_after: r.header("retry-after").map(str::to_string),
                            body: r.body,
                            at: Instant::now(),
                            took: sent.elapsed(),
                        });
                        i += 1;
                        std::thread::sleep(pause);
                    }
                })
            })
            .collect();
        Load {
            stop,
            threads,
            outcomes,
        }
    }

    /// Outcomes so far.
    pub fn snapshot(&self) -> Vec<Outcome> {
        self.outcomes.lock().unwrap().clone()
    }

    pub fn stop(self) -> Vec<Outcome> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        let o = self.outcomes.lock().unwrap().clone();
        o
    }
}

/// The `metricstream serve` flags for a Kafka queue on this broker.
pub fn kafka_args<'a>(broker_addr: &'a str, topic: &'a str) -> Vec<&'a str> {
    vec![
        "--queue",
        "kafka",
        "--brokers",
        broker_addr,
        "--topic",
        topic,
        "--create-topic",
        "--partitions",
        "4",
    ]
}

/// Seqs that got a 200 and are not in Kafka.
pub fn missing_acked(outcomes: &[Outcome], records: &[KafkaRecord]) -> Vec<u64> {
    let seen = seq_counts(records);
    outcomes
        .iter()
        .filter(|o| o.status == 200 && !seen.contains_key(&o.seq.to_string()))
        .map(|o| o.seq)
        .collect()
}

/// Copies beyond the first, over every seq: 0 means no duplicates.
pub fn duplicated(records: &[KafkaRecord]) -> u64 {
    seq_counts(records).values().map(|n| *n as u64 - 1).sum()
}

/// Asserts that every seq that got a 200 is in Kafka.
pub fn assert_all_acked_in_kafka(outcomes: &[Outcome], records: &[KafkaRecord]) {
    let missing = missing_acked(outcomes, records);
    let acked = outcomes.iter().filter(|o| o.status == 200).count();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged batches are not in Kafka: {:?}",
        missing.len(),
        acked,
        &missing[..missing.len().min(10)]
    );
}
