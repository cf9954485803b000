//! Kafka faults, each checked against what an independent reader
//! (confluent-kafka) finds in the topic afterwards:
//! - the broker SIGKILLed and restarted several times under load, durable
//!   and accepted mode: every 200 is in Kafka, duplicates counted, time to
//!   recover per kill;
//! - no broker at start: a clear, bounded start-up error; a broker that
//!   comes up during `--connect-timeout` is used;
//! - the broker gone at SIGTERM: accepted mode spills everything, exits 0
//!   and re-sends it (once) on the next start; durable mode answers the
//!   requests in flight with 503 and exits within `--shutdown-timeout`.
//!
//! tansu 0.6.0 panics on the epoch bump librdkafka makes after a message
//! timeout (docs/kafka.md), so every outage here that metricstream lives
//! through is kept well below `--delivery-timeout` (10 s).

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::broker::{
    duplicated, free_port, kafka_args, missing_acked, Broker, KafkaRecord, Load, Outcome,
};
use common::report::{record, scale, Figures};
use common::{wait_for, Server, BIN};

/// How long each SIGKILLed broker stays away.
const AWAY: Duration = Duration::from_secs(2);

/// One broker outage.
struct Outage {
    killed: Instant,
    restarted: Instant,
    /// When the service was back to normal (see `bounce`).
    recovered: Instant,
    /// Requests sent while the broker was away (the load's clients may all
    /// be waiting in requests the broker took before it died).
    probes: Vec<Outcome>,
}

/// Restart to recovery of each outage, in ms.
fn recovery_ms(outages: &[Outage]) -> Vec<u64> {
    outages
        .iter()
        .map(|w| millis(w.recovered - w.restarted))
        .collect()
}

/// One POST of a batch with `seq`, as a [`Load`] client would send it.
fn probe(s: &Server, seq: u64) -> Outcome {
    let sent = Instant::now();
    let r = s.post(
        &common::cpp_body("probe", seq),
        &[("Authorization", "probe")],
    );
    Outcome {
        seq,
        client: "probe".into(),
        status: r.status,
        retry_after: r.header("retry-after").map(str::to_string),
        body: r.body,
        at: Instant::now(),
        took: sent.elapsed(),
    }
}

/// SIGKILLs the broker `kills` times while the load runs: each time it
/// stays away for `AWAY`, is started again, and `recovered` waits until the
/// service is back to normal and returns when that was.
fn bounce(
    broker: &mut Broker,
    s: &Server,
    kills: u64,
    mut recovered: impl FnMut(u64, Instant) -> Instant,
) -> Vec<Outage> {
    let mut outages = Vec::new();
    for i in 0..kills {
        std::thread::sleep(Duration::from_secs(1));
        let killed = Instant::now();
        broker.kill();
        wait_for("/ready to turn 503", Duration::from_secs(5), || {
            s.get("/ready").status == 503
        });
        let mut probes = Vec::new();
        while killed.elapsed() < AWAY {
            probes.push(probe(s, 900_000_000 + i * 1000 + probes.len() as u64));
            std::thread::sleep(Duration::from_millis(200));
        }
        broker.restart();
        let restarted = Instant::now();
        wait_for("/ready to turn 200 again", Duration::from_secs(20), || {
            s.get("/ready").status == 200
        });
        let recovered = recovered(i, restarted);
        outages.push(Outage {
            killed,
            restarted,
            recovered,
            probes,
        });
    }
    std::thread::sleep(Duration::from_secs(1));
    outages
}

/// A broker, metricstream on it and a load running, with the data dir and
/// the `serve` flags for starting metricstream again. Bind the data dir to
/// a name: a `..` or `_` pattern drops it, deleting it under the server.
type Rig = (Broker, Server, Load, tempfile::TempDir, Vec<String>);

/// Starts a broker, metricstream on it with the Kafka flags and `extra`,
/// and 6 clients that pause `pause` between requests.
fn rig(extra: &[&str], pause: Duration) -> Rig {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let addr = broker.addr();
    let args: Vec<String> = kafka_args(&addr, "metrics")
        .into_iter()
        .chain(extra.iter().copied())
        .map(String::from)
        .collect();
    let s = serve(&dir, &args);
    let load = Load::start(s.addr, 6, 0, pause);
    (broker, s, load, dir, args)
}

fn serve(dir: &tempfile::TempDir, args: &[String]) -> Server {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start(dir.path(), &args)
}

/// Reads the topic until every 200 of `outcomes` is there, for a minute at
/// most: the records, the acknowledged seqs still missing, the duplicates.
fn read_back(broker: &Broker, outcomes: &[Outcome]) -> (Vec<KafkaRecord>, Vec<u64>, u64) {
    let start = Instant::now();
    loop {
        let records = broker.read_topic("metrics");
        let lost = missing_acked(outcomes, &records);
        if lost.is_empty() || start.elapsed() > Duration::from_secs(60) {
            let dups = duplicated(&records);
            return (records, lost, dups);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The batches (seqs) stored at each (partition, offset).
fn held_at(records: &[KafkaRecord]) -> HashMap<(u64, u64), Vec<String>> {
    let mut at: HashMap<(u64, u64), Vec<String>> = HashMap::new();
    for r in records {
        at.entry((r.partition as u64, r.offset))
            .or_default()
            .push(r.seq().unwrap_or_default());
    }
    at
}

fn count(outcomes: &[Outcome], status: u16) -> usize {
    outcomes.iter().filter(|o| o.status == status).count()
}

fn millis(d: Duration) -> u64 {
    d.as_millis() as u64
}

#[test]
fn broker_sigkill_repeated_durable() {
    let kills = scale(3);
    let (mut broker, mut s, load, _dir, _) = rig(&[], Duration::from_millis(5));
    // Recovered: the first 200 to a request sent after the restart.
    let outages = bounce(&mut broker, &s, kills, |_, restarted| {
        let mut first = None;
        wait_for(
            "a 200 after the broker came back",
            Duration::from_secs(20),
            || {
                first = load
                    .snapshot()
                    .iter()
                    .filter(|o| o.status == 200 && o.sent() >= restarted)
                    .map(|o| o.at)
                    .min();
                first.is_some()
            },
        );
        first.unwrap()
    });
    let mut outcomes = load.stop();
    let status = s.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status:?}\n{}", s.log_text());
    // While the broker was away, new requests got a 503 at once.
    for o in outages.iter().flat_map(|w| &w.probes) {
        assert_eq!(o.status, 503, "{o:?}");
        assert!(o.body.contains("no Kafka broker reachable"), "{o:?}");
        assert!(o.took < Duration::from_secs(1), "{o:?}");
    }
    outcomes.extend(outages.iter().flat_map(|w| w.probes.clone()));

    let odd: Vec<_> = outcomes
        .iter()
        .filter(|o| o.status != 200 && o.status != 503)
        .collect();
    assert!(odd.is_empty(), "{:?}", &odd[..odd.len().min(5)]);
    assert!(
        outcomes
            .iter()
            .all(|o| o.status == 200 || o.retry_after.is_some()),
        "a 503 without Retry-After"
    );
    // 503s sent while the broker was away, per outage (load and probes).
    let refused: Vec<usize> = outages
        .iter()
        .map(|w| {
            outcomes
                .iter()
                .filter(|o| o.status == 503 && o.sent() >= w.killed && o.sent() < w.restarted)
                .count()
        })
        .collect();
    let acked = count(&outcomes, 200);
    assert!(acked > 100, "too little load: {acked}");

    let (records, lost, dups) = read_back(&broker, &outcomes);
    let recovery = recovery_ms(&outages);
    // Offsets answered are the offsets in Kafka, with one broker-made
    // exception. When tansu stored a batch but died before acking it,
    // librdkafka's retry is answered "duplicate sequence": librdkafka counts
    // it as delivered (it is in Kafka once: checked below) but the offset
    // tansu 0.6.0 returns with it is not the batch's (seen: 0, or none).
    // Apache Kafka returns the original offset there.
    let at = held_at(&records);
    let misplaced: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.status == 200)
        .filter(|o| {
            let j: serde_json::Value = serde_json::from_str(&o.body).unwrap();
            let p = j["partition"].as_u64().unwrap();
            j["offset"].as_u64().is_some_and(|off| {
                !at.get(&(p, off))
                    .is_some_and(|seqs| seqs.contains(&o.seq.to_string()))
            })
        })
        .collect();
    record(Figures {
        scenario: &format!("Kafka broker SIGKILL ×{kills}, durable"),
        checks: "broker SIGKILLed under load and restarted after 2 s, repeatedly: every 200 \
                 is in Kafka at the offset answered, 503 + Retry-After while it is away, \
                 recovery without a restart of metricstream",
        acknowledged: acked as u64,
        lost: lost.len() as u64,
        duplicated: dups,
        recovery_ms: recovery.iter().copied().max().unwrap_or(0),
        detail: format!(
            "{kills} kills; 503s {}, per outage {refused:?}; recovery ms per kill \
             {recovery:?} (restart to first 200); 200s answered without an offset {} \
             or with the broker's wrong offset for a retried batch {}",
            count(&outcomes, 503),
            outcomes
                .iter()
                .filter(|o| o.status == 200 && !o.body.contains("\"offset\""))
                .count(),
            misplaced.len()
        ),
    });
    assert!(lost.is_empty(), "acknowledged but not in Kafka: {lost:?}");
    // A batch answered with an offset that holds another batch must have
    // been in flight across a broker restart (see `misplaced`).
    for o in &misplaced {
        assert!(
            outages
                .iter()
                .any(|w| o.sent() < w.restarted && o.at >= w.restarted),
            "{o:?}: answered an offset that holds another batch, outside any restart"
        );
    }
    assert_eq!(dups, 0, "duplicates despite the idempotent producer");
}

#[test]
fn broker_sigkill_repeated_accepted() {
    let kills = scale(3);
    // Lighter than the durable load (whose clients wait for Kafka): the
    // spill log drains only while Kafka takes more than comes in.
    let (mut broker, mut s, load, _dir, _) = rig(&["--ack", "accepted"], Duration::from_millis(20));
    // Recovered: the spill log re-sent and requests produced directly again.
    let outages = bounce(&mut broker, &s, kills, |i, _| {
        let start = Instant::now();
        while s.log_text().matches("producing directly again").count() as u64 <= i {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the spill log did not drain within 60 s: {}\n{}",
                s.get("/stats").body,
                s.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Instant::now()
    });
    let mut outcomes = load.stop();
    outcomes.extend(outages.iter().flat_map(|w| w.probes.clone()));
    let stats = s.get("/stats").json();
    let status = s.terminate(Duration::from_secs(15));
    let log = s.log_text();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("lost=0"), "{log}");

    let not_ok: Vec<_> = outcomes.iter().filter(|o| o.status != 200).collect();
    assert!(
        not_ok.is_empty(),
        "accepted mode must keep answering 200: {:?}",
        &not_ok[..not_ok.len().min(5)]
    );
    let acked = outcomes.len();
    assert!(acked > 100, "too little load: {acked}");
    let spilled = stats["spilled"].as_u64().unwrap();
    let resent = stats["resent"].as_u64().unwrap();
    assert!(spilled > 0, "nothing spilled: {stats}");

    let (_, lost, dups) = read_back(&broker, &outcomes);
    let recovery = recovery_ms(&outages);
    record(Figures {
        scenario: &format!("Kafka broker SIGKILL ×{kills}, accepted"),
        checks: "broker SIGKILLed under load and restarted after 2 s, repeatedly: every \
                 request answered 200, batches spilled while it is away and re-sent \
                 when it is back, every 200 in Kafka",
        acknowledged: acked as u64,
        lost: lost.len() as u64,
        duplicated: dups,
        recovery_ms: recovery.iter().copied().max().unwrap_or(0),
        detail: format!(
            "{kills} kills; spilled {spilled}, re-sent {resent}; recovery ms per kill \
             {recovery:?} (restart to spill log drained)"
        ),
    });
    assert!(lost.is_empty(), "acknowledged but not in Kafka: {lost:?}");
    assert_eq!(resent, spilled, "every spilled batch re-sent once: {stats}");
    assert_eq!(dups, 0, "duplicates despite the idempotent producer");
}

/// Runs `serve` until it exits by itself (panics after `within`): its exit
/// status, stderr and how long it ran.
fn serve_until_exit(
    args: &[&str],
    within: Duration,
) -> (std::process::ExitStatus, String, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut child = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(args)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > within {
            let _ = child.kill();
            panic!("serve {args:?} still running after {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = started.elapsed();
    let out = child.wait_with_output().unwrap();
    (
        status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        took,
    )
}

#[test]
fn broker_unreachable_at_start() {
    // 1. Nothing listens: a start-up error naming the brokers, within
    //    --connect-timeout, and a non-zero exit.
    let brokers = format!("127.0.0.1:{},127.0.0.1:{}", free_port(), free_port());
    let (status, err, took) = serve_until_exit(
        &[
            "--queue",
            "kafka",
            "--brokers",
            &brokers,
            "--connect-timeout",
            "2s",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(status.code(), Some(1), "{status:?}\n{err}");
    assert!(
        err.contains(&format!("cannot reach Kafka at {brokers} within 2s")),
        "{err}"
    );
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(12),
        "failed after {took:?}, not at the 2 s connect timeout"
    );

    // 2. The broker comes up 2 s after metricstream: start-up waits for it
    //    (the HTTP port opens only then) and the service works normally.
    let mut broker = Broker::unstarted();
    let addr = broker.addr();
    let late = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        broker.restart();
        (broker, Instant::now())
    });
    let dir = tempfile::tempdir().unwrap();
    let mut args = kafka_args(&addr, "metrics");
    args.extend(["--connect-timeout", "15s"]);
    let mut s = Server::start(dir.path(), &args);
    let serving = Instant::now();
    let (broker, up) = late.join().unwrap();
    let wait = serving.saturating_duration_since(up);
    let r = s.post(&common::cpp_body("late", 1), &[("Authorization", "late")]);
    assert_eq!(r.status, 200, "{r:?}\n{}", s.log_text());
    let status = s.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status:?}\n{}", s.log_text());
    let records = broker.read_topic("metrics");
    let acked = vec![Outcome {
        seq: 1,
        client: "late".into(),
        status: 200,
        body: r.body,
        retry_after: None,
        at: serving,
        took: Duration::ZERO,
    }];
    let lost = missing_acked(&acked, &records);
    record(Figures {
        scenario: "Kafka broker unreachable at start",
        checks: "no broker: exit 1 within --connect-timeout with an error naming the \
                 brokers; a broker that comes up 2 s after start is used",
        acknowledged: 1,
        lost: lost.len() as u64,
        duplicated: duplicated(&records),
        recovery_ms: millis(wait),
        detail: format!(
            "error after {} ms with --connect-timeout 2s; serving {} ms after the late \
             broker listened",
            millis(took),
            millis(wait)
        ),
    });
    assert!(lost.is_empty());
    assert!(
        wait < Duration::from_secs(5),
        "serving only {wait:?} after the broker came"
    );
}

/// `key=N` from the "shutdown complete" log line.
fn shutdown_figure(log: &str, key: &str) -> u64 {
    let line = log
        .lines()
        .rfind(|l| l.contains("shutdown complete"))
        .unwrap_or_else(|| panic!("no shutdown line in:\n{log}"));
    let at = line
        .find(&format!("{key}="))
        .unwrap_or_else(|| panic!("no {key}= in {line}"));
    line[at + key.len() + 1..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad {key}= in {line}"))
}

/// SIGTERM to a server started with `--shutdown-timeout 4s` whose broker is
/// gone: it must exit 0 with lost=0, within the timeout (and 1.5 s of
/// slack). The load's outcomes, the log, when SIGTERM went and the exit took.
fn sigterm_without_broker(s: &mut Server, load: Load) -> (Vec<Outcome>, String, Instant, Duration) {
    let term = Instant::now();
    let status = s.terminate(Duration::from_secs(20));
    let took = term.elapsed();
    let outcomes = load.stop();
    let log = s.log_text();
    assert!(status.success(), "{status:?}\n{log}");
    assert_eq!(shutdown_figure(&log, "lost"), 0, "{log}");
    assert!(
        took < Duration::from_millis(5500),
        "stopped {took:?} after SIGTERM with --shutdown-timeout 4s\n{log}"
    );
    (outcomes, log, term, took)
}

#[test]
fn broker_gone_at_shutdown_accepted() {
    // 1. The broker dies under load; metricstream is stopped while it is
    //    away: whatever is not delivered is spilled, exit 0, lost=0.
    let (mut broker, mut s, load, dir, args) = rig(
        &["--ack", "accepted", "--shutdown-timeout", "4s"],
        Duration::from_millis(5),
    );
    std::thread::sleep(Duration::from_secs(1));
    let killed = Instant::now();
    broker.kill();
    std::thread::sleep(Duration::from_secs(1));
    let (outcomes, log, _, stopped_in) = sigterm_without_broker(&mut s, load);
    let delivered = shutdown_figure(&log, "delivered");
    let spilled = shutdown_figure(&log, "spilled");
    assert!(spilled > 0, "nothing spilled: {log}");
    // After SIGTERM: refused connections (0) or 503 "shutting down".
    let odd: Vec<_> = outcomes
        .iter()
        .filter(|o| ![0, 200, 503].contains(&o.status))
        .collect();
    assert!(odd.is_empty(), "{:?}", &odd[..odd.len().min(5)]);
    let acked = count(&outcomes, 200) as u64;
    assert!(acked > 100, "too little load: {acked}");
    assert!(
        delivered + spilled >= acked,
        "{acked} answered 200, only {delivered} delivered + {spilled} spilled"
    );
    drop(s);

    // 2. Both back: the spill is re-sent first, every 200 is in Kafka.
    broker.restart();
    let restarted = Instant::now();
    let mut s = serve(&dir, &args);
    assert!(s.log_text().contains("re-sent first"), "{}", s.log_text());
    let (records, _, _) = read_back(&broker, &outcomes);
    wait_for("the spill log to drain", Duration::from_secs(30), || {
        s.log_text().contains("producing directly again")
    });
    let drained = restarted.elapsed();
    let resent = s.get("/stats").json()["resent"].as_u64().unwrap();
    let status = s.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status:?}\n{}", s.log_text());
    drop(s);

    // 3. A third start re-sends nothing: the progress was recorded.
    let mut s = serve(&dir, &args);
    std::thread::sleep(Duration::from_secs(2));
    assert!(!s.log_text().contains("re-sent first"), "{}", s.log_text());
    let status = s.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status:?}");
    let again = broker.read_topic("metrics");
    assert_eq!(
        again.len(),
        records.len(),
        "spilled batches were sent again"
    );

    let lost = missing_acked(&outcomes, &again);
    let dups = duplicated(&again);
    record(Figures {
        scenario: "Kafka broker gone at shutdown, accepted",
        checks: "accepted: broker SIGKILLed under load, then SIGTERM: exit 0 with lost=0, \
                 the rest spilled; next start re-sends it first and every 200 is in \
                 Kafka; a third start re-sends nothing",
        acknowledged: acked,
        lost: lost.len() as u64,
        duplicated: dups,
        recovery_ms: millis(drained),
        detail: format!(
            "stopped {} ms after SIGTERM (--shutdown-timeout 4s); of {acked} 200s: \
             delivered {delivered}, spilled {spilled}; re-sent {resent} on the next start; \
             recovery = restart to spill log drained; duplicates are batches the broker \
             stored but never acknowledged before it died, re-sent from the spill by a \
             new producer (at-least-once, docs/kafka.md)",
            millis(stopped_in)
        ),
    });
    assert!(lost.is_empty(), "acknowledged but not in Kafka: {lost:?}");
    assert_eq!(resent, spilled, "every spilled batch re-sent once");
    // A batch the broker stored before dying, whose ack never came back,
    // is purged and spilled at shutdown and re-sent by a new producer
    // (at-least-once): only batches accepted before the kill can be twice.
    let sent: std::collections::HashMap<String, Instant> = outcomes
        .iter()
        .map(|o| (o.seq.to_string(), o.sent()))
        .collect();
    let late_dups: Vec<_> = common::broker::seq_counts(&again)
        .into_iter()
        .filter(|(seq, n)| *n > 1 && sent.get(seq).is_none_or(|t| *t >= killed))
        .collect();
    assert!(
        late_dups.is_empty(),
        "duplicated after the kill: {late_dups:?}"
    );
}

#[test]
fn broker_gone_at_shutdown_durable() {
    // Shorter than the 10 s delivery timeout: without an early answer the
    // requests waiting for the dead broker would outlast it.
    let (mut broker, mut s, load, _dir, _) =
        rig(&["--shutdown-timeout", "4s"], Duration::from_millis(5));
    std::thread::sleep(Duration::from_secs(1));
    // Frozen first, so every client has a batch inside the producer when
    // the broker dies: killed outright, it is seen gone within a
    // millisecond, later requests get their 503 at once, and whether any
    // was left waiting at SIGTERM was luck (CI once found none).
    broker.freeze();
    std::thread::sleep(Duration::from_millis(300));
    broker.kill();
    // Durable mode answers 200 only after Kafka's ack, so nothing it
    // acknowledged can be lost: exit 0 (`lost` counts accepted batches).
    let (outcomes, log, term, stopped_in) = sigterm_without_broker(&mut s, load);
    // The requests waiting for the dead broker at SIGTERM: a 503 each.
    let waiting: Vec<_> = outcomes
        .iter()
        .filter(|o| o.sent() < term && o.at > term + Duration::from_millis(500))
        .collect();
    assert!(!waiting.is_empty(), "no request was waiting at SIGTERM");
    let unanswered: Vec<_> = waiting.iter().filter(|o| o.status != 503).collect();
    assert!(unanswered.is_empty(), "{unanswered:#?}\n{log}");
    assert!(waiting.iter().all(|o| o.retry_after.is_some()));
    let odd: Vec<_> = outcomes
        .iter()
        .filter(|o| ![0, 200, 503].contains(&o.status))
        .collect();
    assert!(odd.is_empty(), "{:?}", &odd[..odd.len().min(5)]);

    broker.restart();
    let (_, lost, dups) = read_back(&broker, &outcomes);
    let acked = count(&outcomes, 200) as u64;
    record(Figures {
        scenario: "Kafka broker gone at shutdown, durable",
        checks: "durable: broker SIGKILLed under load, then SIGTERM: the requests waiting \
                 for it get 503 + Retry-After, exit 0 within --shutdown-timeout, every 200 \
                 in Kafka",
        acknowledged: acked,
        lost: lost.len() as u64,
        duplicated: dups,
        recovery_ms: 0,
        detail: format!(
            "{} requests waiting at SIGTERM, all 503; stopped {} ms after SIGTERM \
             (--shutdown-timeout 4s)",
            waiting.len(),
            millis(stopped_in)
        ),
    });
    assert!(lost.is_empty(), "acknowledged but not in Kafka: {lost:?}");
    assert_eq!(dups, 0);
}

#[test]
fn durable_requests_get_503_within_the_delivery_timeout() {
    let (mut broker, mut s, load, _dir, _) =
        rig(&["--delivery-timeout", "2s"], Duration::from_millis(5));
    std::thread::sleep(Duration::from_secs(1));
    let killed = Instant::now();
    // It stays away: librdkafka's epoch bump after the timeouts would
    // make tansu 0.6.0 panic if it came back under this producer.
    broker.kill();
    std::thread::sleep(Duration::from_secs(4));
    let outcomes = load.stop();
    let after: Vec<_> = outcomes.iter().filter(|o| o.at > killed).collect();
    assert!(after.len() > 10, "{after:?}");
    let slowest = after.iter().map(|o| o.took).max().unwrap();
    // Requests that were inside the producer when it died get a 503 at
    // the latest when their delivery times out; later ones at once.
    let late: Vec<_> = after
        .iter()
        .filter(|o| o.at > killed + Duration::from_millis(2500))
        .collect();
    assert_eq!(s.get("/ready").status, 503);
    // Nothing was accepted without being acknowledged: exit 0.
    let status = s.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status:?}\n{}", s.log_text());
    broker.restart();
    let records = broker.read_topic("metrics");
    let lost = missing_acked(&outcomes, &records);
    record(Figures {
        scenario: "Kafka broker stays away, durable",
        checks: "durable, --delivery-timeout 2s: broker SIGKILLed under load and not \
                 restarted: every request answered within the delivery timeout, 503 \
                 after it; every 200 in Kafka",
        acknowledged: count(&outcomes, 200) as u64,
        lost: lost.len() as u64,
        duplicated: duplicated(&records),
        recovery_ms: 0,
        detail: format!(
            "slowest answer after the kill {} ms; {} requests answered 503",
            millis(slowest),
            count(&outcomes, 503)
        ),
    });
    assert!(
        slowest < Duration::from_millis(3500),
        "a request waited {slowest:?}, past the 2 s delivery timeout"
    );
    assert!(
        !late.is_empty() && late.iter().all(|o| o.status == 503),
        "{late:?}"
    );
    assert!(lost.is_empty(), "acknowledged but not in Kafka: {lost:?}");
}
