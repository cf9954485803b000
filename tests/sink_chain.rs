//! The whole chain: Prometheus A (scraping the node exporter and itself
//! every second) → remote_write → `metricstream serve` → embedded log →
//! `metricstream consume --sink remote-write` → Prometheus B. Over a window
//! of more than 20 s, each of the three processes in the middle of it is
//! SIGKILLed once, at its own moment, with load flowing, and restarted:
//!
//! - `serve`, on the same data dir and address (down 2 s: A retries);
//! - the consumer, after B answered a request of it and before it committed
//!   that, restarted with the same group and arguments: it resumes from its
//!   last commit, so it delivers those samples again (Prometheus takes an
//!   identical sample again silently, and its `out of order sample` for one
//!   it holds counts as delivered);
//! - Prometheus B, with a request of the consumer out, on the same TSDB and
//!   port (its WAL replayed), down 2 s: the consumer retries.
//!
//! Then the raw samples of every series in A equal those in B (read with
//! the same range selector at the same instant), nothing is dead-lettered,
//! A failed nothing, and the consumer's replay is counted and bounded as
//! the README says ("a SIGKILL re-sends what came after the last commit (at
//! most 200 ms of acknowledgements, plus what faster lanes delivered beyond
//! the slowest one)"): the records re-sent are those from the offset the
//! restarted consumer says it resumes from (its log) to the sent mark it
//! left (the highest offset it had put in a request); their samples are
//! read back from the log and looked for in B before the restart (those B
//! holds are delivered twice), and every one of the records reached
//! `serve` within [`REPLAY_AGE_MAX`] of the kill.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::broker::free_port;
use common::prometheus::{
    assert_same_samples, consumed_samples, missing_from, now_ms, NodeExporter, Prometheus,
    PrometheusConfig, RemoteWrite, Window,
};
use common::report::{record, Figures};
use common::sink::{committed, dead_letters, remote_write_args, sent_marks, Consumer};
use common::Server;

const GROUP: &str = "to-b";

/// How old, at the kill, the oldest record the consumer re-sends may be
/// (from `serve` storing it): the README's 200 ms of acknowledgements,
/// doubled as in `sink_replay.rs` for a loop turn and a commit on two
/// shared cores; the consumer's 50 ms idle nap before it reads a record
/// and again before it takes an acknowledgement, and its 50 ms linger
/// (`remote_write_args`); the [`ANSWER_WAIT`] before the kill; and 430 ms
/// for `serve`'s sync and the request to B. A consumer that committed
/// seconds late, or not at all before the kill, re-sends records far older
/// than this.
const REPLAY_AGE_MAX: Duration = Duration::from_millis(1000);

/// After the consumer's request goes out, the kill waits this long: B
/// answers such a request in a few milliseconds, and the consumer commits
/// at its next loop turn, up to 50 ms (its idle nap) later. So the kill
/// lands between B's answer and the commit: the samples are in B, and the
/// restarted consumer sends them again.
const ANSWER_WAIT: Duration = Duration::from_millis(20);

/// SIGKILLs of the consumer allowed before one lands between B's answer and
/// the commit (one may come after the commit, with nothing to re-send, or
/// before B answered, re-sending samples B never had); it is killed again
/// at its next request.
const MAX_CONSUMER_KILLS: u32 = 5;

/// Per partition, what the consumer put in a request (its sent mark) and
/// has not committed: (the committed next offset, the mark).
fn uncommitted(data: &Path) -> BTreeMap<u32, (u64, u64)> {
    let committed = committed(data, GROUP);
    sent_marks(data, GROUP)
        .into_iter()
        .filter_map(|(p, mark)| {
            let next = *committed.get(&p)?;
            (mark >= next).then_some((p, (next, mark)))
        })
        .collect()
}

/// Waits, looking every millisecond, for a moment the consumer has a
/// request out past its last commit (or its answer not yet committed).
fn wait_request_out(data: &Path, consumer: &Consumer) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while uncommitted(data).is_empty() {
        assert!(
            Instant::now() < deadline,
            "consume had no request out past its commit for 20 s; its log:\n{}",
            consumer.log_text()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until the consumer has committed past `marks` (partition → the
/// highest offset it had put in a request).
fn wait_committed_past(
    data: &Path,
    marks: &BTreeMap<u32, u64>,
    within: Duration,
    log: &dyn Fn() -> String,
) {
    let deadline = Instant::now() + within;
    loop {
        let c = committed(data, GROUP);
        if marks
            .iter()
            .all(|(p, mark)| c.get(p).is_some_and(|n| n > mark))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the consumer did not commit past {marks:?} in {within:?} (committed {c:?}); \
             its log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `key=N` of a log line.
fn number(line: &str, key: &str) -> Option<u64> {
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    let digits: String = line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Where a consumer says it started reading each partition
/// ("reading partition partition=P next=N").
fn resume_offsets(log: &str) -> BTreeMap<u32, u64> {
    log.lines()
        .filter(|l| l.contains("reading partition"))
        .filter_map(|l| Some((number(l, "partition")? as u32, number(l, "next")?)))
        .collect()
}

/// The consumer's SIGKILL that left samples B holds to send again.
struct ConsumerKill {
    /// Since A started.
    at: Duration,
    /// SIGKILLs it took (see [`MAX_CONSUMER_KILLS`]).
    kills: u32,
    /// Per partition: where the restarted consumer resumed (its last
    /// commit) and the sent mark at the kill; the records from one to the
    /// other, both included, were sent before the kill and again after.
    replayed: BTreeMap<u32, (u64, u64)>,
    /// The samples in them.
    resent: usize,
    /// Of those, the ones B held before the restart: delivered twice.
    held: usize,
    /// How long before the kill `serve` stored the oldest of them.
    oldest: Duration,
    /// From the kill to the restart (the re-sent records are read, and
    /// looked for in B, meanwhile).
    down: Duration,
    /// From the restart until it committed past them all.
    recovery: Duration,
    /// What the killed consumers logged.
    log_before: String,
}

/// What the records a killed consumer will re-send hold, read back from
/// the log, and how much of it B has.
struct Resent {
    samples: usize,
    /// The samples B holds (delivered before the kill: twice after it).
    held: usize,
    /// When `serve` stored the oldest of the records (ms since the epoch).
    oldest_ms: i64,
}

/// Reads `replayed` (partition → the first and last offset to re-send)
/// back from the log (a `consume` of its own group `group`) and looks for
/// their samples in B. The last committed record before them, which B
/// acknowledged, must be there in full: so the lookup is shown to find
/// what B holds.
fn look_in_b(
    data: &Path,
    group: &str,
    b: &Prometheus,
    replayed: &BTreeMap<u32, (u64, u64)>,
) -> Resent {
    let lines = common::consume_all(data, group);
    let at = |l: &serde_json::Value| {
        (
            l["partition"].as_u64().expect("partition") as u32,
            l["offset"].as_u64().expect("offset"),
        )
    };
    let (mut resent, mut before) = (Vec::new(), Vec::new());
    for (p, (next, mark)) in replayed {
        let previous = lines
            .iter()
            .map(at)
            .filter(|(lp, o)| lp == p && o < next)
            .map(|(_, o)| o)
            .max();
        for l in &lines {
            let (lp, o) = at(l);
            if lp != *p {
                continue;
            }
            if (*next..=*mark).contains(&o) {
                resent.push(l.clone());
            } else if Some(o) == previous {
                before.push(l.clone());
            }
        }
    }
    let oldest_ms = resent
        .iter()
        .map(|l| l["received_at"].as_i64().expect("received_at"))
        .min()
        .unwrap_or_else(|| panic!("no samples in the records to re-send, {replayed:?}"));
    let (resent_points, before_points) = (consumed_samples(&resent), consumed_samples(&before));
    let times: Vec<i64> = resent_points
        .values()
        .chain(before_points.values())
        .flat_map(|p| p.keys().copied())
        .collect();
    let first = *times.iter().min().expect("a sample");
    let last = *times.iter().max().expect("a sample");
    let in_b = b.raw_samples(r#"{__name__=~".+"}"#, last, last - first + 1_000);
    let unseen = missing_from(&before_points, &in_b, 5);
    assert!(
        unseen.is_empty(),
        "samples of the last committed record before {replayed:?} are not in B: {unseen:#?}"
    );
    let held = resent_points.values().map(|p| p.len()).sum::<usize>()
        - missing_from(&resent_points, &in_b, usize::MAX).len();
    Resent {
        samples: resent.len(),
        held,
        oldest_ms,
    }
}

/// Waits for a moment the consumer has a request out past its last
/// commit, lets B answer it ([`ANSWER_WAIT`]), SIGKILLs the consumer,
/// reads the records it will re-send from the log and looks for their
/// samples in B, restarts it with the same group and arguments, and checks
/// that it resumes from its last commit and gets past what it had sent.
/// Again until a kill lands between B's answer and the commit.
fn sigkill_consumer_mid_request(
    data: &Path,
    consumer: &mut Consumer,
    args: &[&str],
    b: &Prometheus,
    clock: Instant,
) -> ConsumerKill {
    let mut log_before = String::new();
    for kills in 1..=MAX_CONSUMER_KILLS {
        wait_request_out(data, consumer);
        std::thread::sleep(ANSWER_WAIT);
        consumer.sigkill();
        let killed = Instant::now();
        let killed_ms = now_ms();
        let at = clock.elapsed();
        // Dead: its marks and commits stay as they are.
        let replayed = uncommitted(data);
        log_before += &consumer.log_text();
        log_before += "--- SIGKILL\n";
        if replayed.is_empty() {
            eprintln!("consume SIGKILL {kills}: its commit came first, nothing to re-send");
            *consumer = Consumer::start(data, GROUP, args);
            continue;
        }

        // A request the kill cut off lands in B or not within this.
        std::thread::sleep(Duration::from_millis(300));
        let resent = look_in_b(data, &format!("replay-{kills}"), b, &replayed);
        let down = killed.elapsed();
        *consumer = Consumer::start(data, GROUP, args);
        let restarted = Instant::now();
        let deadline = restarted + Duration::from_secs(30);
        let resumed = loop {
            let resumed = resume_offsets(&consumer.log_text());
            if replayed.keys().all(|p| resumed.contains_key(p)) {
                break resumed;
            }
            assert!(
                Instant::now() < deadline,
                "the restarted consumer did not say where it reads {:?} from; its log:\n{}",
                replayed.keys(),
                consumer.log_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        for (p, (next, mark)) in &replayed {
            assert_eq!(
                resumed[p],
                *next,
                "partition {p}: the restarted consumer does not resume from its last commit \
                 (sent mark {mark}); its log:\n{}",
                consumer.log_text()
            );
        }
        let marks = replayed.iter().map(|(p, (_, mark))| (*p, *mark)).collect();
        wait_committed_past(data, &marks, Duration::from_secs(30), &|| {
            consumer.log_text()
        });
        if resent.held == 0 {
            eprintln!(
                "consume SIGKILL {kills}: before B answered; {} samples sent again, none of \
                 them in B before",
                resent.samples
            );
            continue;
        }
        return ConsumerKill {
            at,
            kills,
            replayed,
            resent: resent.samples,
            held: resent.held,
            oldest: Duration::from_millis((killed_ms - resent.oldest_ms).max(0) as u64),
            down,
            recovery: restarted.elapsed(),
            log_before,
        };
    }
    panic!(
        "none of {MAX_CONSUMER_KILLS} SIGKILLs of consume landed between B's answer and the \
         commit: no replay; the logs:\n{log_before}"
    );
}

/// `key=N` of the last "consumer stopped" line.
fn stopped(log: &str, key: &str) -> u64 {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("consumer stopped"))
        .unwrap_or_else(|| panic!("no \"consumer stopped\" line; the log:\n{log}"));
    number(line, key).unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

#[test]
fn prometheus_to_metricstream_to_prometheus_with_serve_consume_and_store_b_sigkilled() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let listen = format!("127.0.0.1:{}", free_port());
    let serve_args = ["--listen", listen.as_str(), "--api-key", "prom-a:s3cret"];
    let mut server = Server::start(data, &serve_args);
    let node = NodeExporter::start();
    let mut b = Prometheus::launch(PrometheusConfig {
        receiver: true,
        ..PrometheusConfig::default()
    });
    let args = remote_write_args(&format!("http://{}/api/v1/write", b.addr));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut consumer = Consumer::start(data, GROUP, &args);

    let started = now_ms();
    let clock = Instant::now();
    let a = Prometheus::start(
        &[node.addr],
        Some(RemoteWrite {
            url: format!("http://{listen}/api/v1/write"),
            bearer_token: Some("s3cret".into()),
        }),
        false,
    );

    // serve: SIGKILLed, down 2 s (A's requests fail and are retried),
    // restarted on the same data dir and address.
    std::thread::sleep(Duration::from_secs(8));
    let serve_at = clock.elapsed();
    server.kill();
    std::thread::sleep(Duration::from_secs(2));
    let restarting = Instant::now();
    server = Server::start(data, &serve_args);
    let serve_restart = restarting.elapsed();
    eprintln!(
        "serve SIGKILLed at {serve_at:?}, listening again {serve_restart:?} after its restart"
    );

    // The consumer, between B's answer to a request and its commit.
    std::thread::sleep(Duration::from_secs(6));
    let kill = sigkill_consumer_mid_request(data, &mut consumer, &args, &b, clock);
    eprintln!(
        "consume SIGKILLed at {:?} ({} kills) with {:?} (resumed from, sent mark) to re-send: \
         {} samples, {} of them in B, the oldest stored {:?} before the kill; restarted {:?} \
         after the kill, past them {:?} after the restart",
        kill.at,
        kill.kills,
        kill.replayed,
        kill.resent,
        kill.held,
        kill.oldest,
        kill.down,
        kill.recovery
    );

    // Prometheus B: SIGKILLed with a request of the consumer out, down 2 s
    // (the consumer retries), restarted on its TSDB and port; recovered
    // once the consumer committed past the requests it was retrying.
    std::thread::sleep(Duration::from_secs(4));
    wait_request_out(data, &consumer);
    b.sigkill();
    let b_at = clock.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let retrying = sent_marks(data, GROUP);
    let restarting = Instant::now();
    b.restart();
    let b_ready = restarting.elapsed();
    wait_committed_past(data, &retrying, Duration::from_secs(30), &|| {
        consumer.log_text()
    });
    let b_delivered = restarting.elapsed();
    eprintln!(
        "Prometheus B SIGKILLed at {b_at:?}, ready {b_ready:?} after its restart; the consumer \
         committed past what it was retrying {b_delivered:?} after the restart"
    );
    std::thread::sleep(Duration::from_secs(5));

    let window_end = now_ms() - 1_000;
    a.wait_sent_past(window_end);
    let window = Window::between(started, window_end);
    assert!(window.len_ms >= 20_000, "{window:?}");
    // Panics, naming them, if any sample of A in the window is not in B
    // with the same value (or B has one A has not).
    let (series, samples) = assert_same_samples(
        &a,
        &b,
        r#"{__name__=~".+"}"#,
        window,
        Duration::from_secs(60),
    );
    let retried = a.own_metric("prometheus_remote_storage_samples_retried_total");
    let failed = a.own_metric("prometheus_remote_storage_samples_failed_total");

    let status = consumer.terminate(Duration::from_secs(15));
    let log = consumer.log_text();
    assert!(status.success(), "{status:?}\n{log}");
    let dead = dead_letters(data, GROUP);
    let _ = server.terminate(Duration::from_secs(15));

    let resent_records: u64 = kill
        .replayed
        .values()
        .map(|(next, mark)| mark + 1 - next)
        .sum();
    let (consumer_retried, refused_as_stored) =
        (stopped(&log, "retried"), stopped(&log, "replayed"));

    let recovery = serve_restart.max(kill.recovery).max(b_delivered);
    let detail = format!(
        "{series} series, {samples} samples over {:.1} s; serve SIGKILLed at {:.1} s, down 2 s, \
         listening {} ms after its restart; consume SIGKILLed at {:.1} s between B's answer and \
         its commit ({} kill(s)): re-sent {resent_records} record(s) = {} samples, {} of them \
         already in B (delivered twice), the oldest stored by serve {} ms before the kill; \
         restarted {} ms after the kill, committed past them {} ms after its restart; \
         Prometheus B SIGKILLed at {:.1} s with a request out, down 2 s, ready {} ms after its \
         restart, the consumer committed past what it was retrying {} ms after it; A retried \
         {retried} samples, failed {failed}; the last consumer retried {consumer_retried} \
         samples and took {refused_as_stored} refusals as already stored",
        window.len_ms as f64 / 1000.0,
        serve_at.as_secs_f64(),
        serve_restart.as_millis(),
        kill.at.as_secs_f64(),
        kill.kills,
        kill.resent,
        kill.held,
        kill.oldest.as_millis(),
        kill.down.as_millis(),
        kill.recovery.as_millis(),
        b_at.as_secs_f64(),
        b_ready.as_millis(),
        b_delivered.as_millis(),
    );
    eprintln!("{detail}");
    record(Figures {
        scenario: "chain: Prometheus → serve → consume → Prometheus, each SIGKILLed",
        checks: "Prometheus A remote-writes the node exporter and itself through serve and \
                 consume --sink remote-write into Prometheus B; serve, the consumer (between \
                 B's answer and its commit) and B (with a request out, down 2 s) each \
                 SIGKILLed once under load and restarted on their data; every raw sample A \
                 holds in the window is in B with its value, nothing dead-lettered, A failed \
                 nothing; the consumer's replay counted (resume offset to sent mark, looked for \
                 in B before the restart), all from the last second before the kill",
        acknowledged: samples as u64,
        // assert_same_samples above panics on any sample of A missing in B.
        lost: 0,
        duplicated: kill.held as u64,
        recovery_ms: recovery.as_millis() as u64,
        detail: detail.clone(),
    });

    assert!(
        dead.is_empty(),
        "dead-lettered: {:?}\n{}{log}",
        &dead[..dead.len().min(5)],
        kill.log_before
    );
    assert_eq!(failed, 0.0, "A failed samples: {detail}");
    assert!(
        retried > 0.0,
        "the SIGKILL of serve did not make A retry anything: {detail}"
    );
    assert!(
        consumer_retried > 0,
        "the SIGKILL of Prometheus B did not make the consumer retry anything: {detail}"
    );
    assert!(
        series > 100 && samples > 5_000,
        "{series} series, {samples} samples"
    );
    assert!(
        kill.oldest <= REPLAY_AGE_MAX,
        "the consumer re-sent records stored {:?} before its SIGKILL, more than the README's \
         200 ms of acknowledgements allow ({REPLAY_AGE_MAX:?} with the tolerances): {detail}",
        kill.oldest
    );
}
