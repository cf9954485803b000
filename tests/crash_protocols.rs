//! SIGKILL of `serve` under load from the real clients of two more
//! protocols (JSON is tests/crash.rs, remote_write from Prometheus
//! tests/remote_write_prometheus.rs): line protocol from InfluxDB's own
//! Python client (`tests/clients/influx_load.py`) and OTLP/HTTP from the
//! OpenTelemetry Python SDK's exporter (`tests/clients/otlp_load.py`).
//!
//! The client writes numbered batches from several threads and prints, per
//! batch, what the client library itself reported: a 2xx, or a failure.
//! `serve` (durable ack, the default) is SIGKILLed in the middle of that,
//! kept down long enough for the client to see failures, restarted on the
//! same data dir (crash recovery must run on every partition), and so on
//! `scale(3)` times. Then the client stops, the server stops cleanly, and
//! `metricstream consume` reads the log back: every batch the client saw a
//! 2xx for must be there whole (every point, with its value), no batch may
//! be there in part (acknowledged or not), nothing the client never sent
//! may appear, and a batch stored twice is allowed only if the client sent
//! it more than once (the OTLP exporter retries by itself; the InfluxDB
//! client does not, so there it must be 0). "Lost" is counted by reading
//! back, never from a server counter.
//!
//! Needs Python with influxdb-client, opentelemetry-sdk and
//! opentelemetry-exporter-otlp-proto-http at `METRICSTREAM_PYTHON`:
//! `./scripts/test.sh` (or `source scripts/deps.sh`) installs and sets it.
//! Without it the tests fail, saying so: they never skip.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::broker::free_port;
use common::report::{record, scale, Figures};
use common::{consume_all, Server};
use serde_json::Value;

/// Client threads: several, so a kill finds requests in flight and the
/// server's group commit has more than one request to gather.
const WORKERS: u64 = 4;
/// Points per batch: enough that "whole" means something, few enough that
/// reading everything back stays quick in a debug build.
const POINTS: u64 = 10;
/// 2xx the client must have seen since the last (re)start before each kill.
const MIN_OK: usize = 30;
/// The least time the client writes for between restart and kill: the
/// batches acknowledged are what the check is worth.
const LOAD: Duration = Duration::from_secs(3);
/// How long `serve` stays down after the client's first failure. Longer
/// than the OTLP exporter's whole retry budget (its 1 s timeout), so an
/// export caught by the kill ends as the FAILURE it is rather than being
/// rescued by a retry to the restarted server, and every outage is seen.
const OUTAGE: Duration = Duration::from_millis(1500);
const SECRET: &str = "s3cret";

struct Protocol {
    /// What the scenario is called in the report, before the client's version.
    what: &'static str,
    script: &'static str,
    /// Python that fails without the client library.
    import: &'static str,
    packages: &'static str,
    /// The API key's name: the `client_id` every stored line must carry.
    client_id: &'static str,
    /// The URL the client is given, from the listen address.
    url: fn(&str) -> String,
    /// Whether the client may send one batch more than once by itself.
    retries: bool,
}

const INFLUX: Protocol = Protocol {
    what: "line protocol from",
    script: concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/influx_load.py"),
    import: "import influxdb_client",
    packages: "influxdb-client",
    client_id: "influx-load",
    url: influx_url,
    retries: false,
};

const OTLP: Protocol = Protocol {
    what: "OTLP/HTTP from",
    script: concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/otlp_load.py"),
    import: "import opentelemetry.sdk.metrics, \
             opentelemetry.exporter.otlp.proto.http.metric_exporter",
    packages: "opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http",
    client_id: "otel-load",
    url: otlp_url,
    retries: true,
};

fn influx_url(listen: &str) -> String {
    format!("http://{listen}")
}

fn otlp_url(listen: &str) -> String {
    format!("http://{listen}/v1/metrics")
}

/// The venv's Python, checked to have the protocol's client library.
fn python(p: &Protocol) -> String {
    let hint = format!(
        "run ./scripts/test.sh, or `source scripts/deps.sh` (it installs {} in a venv and \
         exports METRICSTREAM_PYTHON), then run it again",
        p.packages
    );
    let python = std::env::var("METRICSTREAM_PYTHON")
        .unwrap_or_else(|_| panic!("METRICSTREAM_PYTHON is not set: {hint}"));
    let out = Command::new(&python)
        .args(["-c", p.import])
        .output()
        .unwrap_or_else(|e| panic!("METRICSTREAM_PYTHON={python} cannot be run ({e}): {hint}"));
    assert!(
        out.status.success(),
        "METRICSTREAM_PYTHON={python} lacks {}: {hint}. {}",
        p.packages,
        String::from_utf8_lossy(&out.stderr)
    );
    python
}

/// One batch as the client reported it.
struct Outcome {
    batch: u64,
    /// A 2xx (the InfluxDB client did not raise; the exporter said SUCCESS).
    ok: bool,
    /// HTTP requests the client made for it that reached the server (were
    /// not refused at connect): only those can have stored anything.
    sends: u64,
    /// "refused", "cut", "status" or none.
    error: Option<String>,
    /// When the test read the line.
    at: Instant,
}

fn oks(o: &[Outcome]) -> usize {
    o.iter().filter(|o| o.ok).count()
}

fn failures(o: &[Outcome]) -> usize {
    o.iter().filter(|o| !o.ok).count()
}

#[derive(Default)]
struct Printed {
    client: String,
    outcomes: Vec<Outcome>,
    /// Lines that were not what the script prints: a test bug if any.
    junk: Vec<String>,
}

/// The load script, running: its stdout parsed as it comes.
struct Load {
    child: Child,
    stdin: Option<ChildStdin>,
    printed: Arc<Mutex<Printed>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(python: &str, script: &str, url: &str) -> Load {
        let mut child = Command::new(python)
            .arg(script)
            .arg(url)
            .arg(SECRET)
            .arg(WORKERS.to_string())
            .arg(POINTS.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("running {python} {script}: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let mut stderr = child.stderr.take().expect("stderr");
        let printed: Arc<Mutex<Printed>> = Arc::default();
        let sink = printed.clone();
        let out = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let at = Instant::now();
                let mut p = sink.lock().unwrap();
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    p.junk.push(line);
                    continue;
                };
                if let Some(c) = v["client"].as_str() {
                    p.client = c.to_string();
                } else if let (Some(batch), Some(ok)) = (v["batch"].as_u64(), v["ok"].as_bool()) {
                    p.outcomes.push(Outcome {
                        batch,
                        ok,
                        sends: v["attempts"]
                            .as_u64()
                            .unwrap_or(0)
                            .saturating_sub(v["refused"].as_u64().unwrap_or(0)),
                        error: v["error"].as_str().map(String::from),
                        at,
                    });
                } else {
                    p.junk.push(line);
                }
            }
        });
        let errors: Arc<Mutex<String>> = Arc::default();
        let sink = errors.clone();
        let err = std::thread::spawn(move || {
            // Read in chunks: the SDK's retry warnings may be many.
            let mut buf = [0u8; 8192];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Load {
            child,
            stdin,
            printed,
            stderr: errors,
            readers: vec![out, err],
        }
    }

    fn len(&self) -> usize {
        self.printed.lock().unwrap().outcomes.len()
    }

    /// The last few KiB of what the client wrote to stderr.
    fn stderr_tail(&self) -> String {
        let s = self.stderr.lock().unwrap();
        let mut from = s.len().saturating_sub(4096);
        while !s.is_char_boundary(from) {
            from += 1;
        }
        s[from..].to_string()
    }

    /// Polls until `done` holds for the outcomes so far; fails the test if
    /// the client exits meanwhile or `within` passes.
    fn wait(&mut self, what: &str, within: Duration, done: impl Fn(&[Outcome]) -> bool) {
        let start = Instant::now();
        loop {
            if done(self.printed.lock().unwrap().outcomes.as_slice()) {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("wait for the client") {
                panic!(
                    "the client exited ({status}) while the test waited for {what}; its stderr:\n{}",
                    self.stderr_tail()
                );
            }
            assert!(
                start.elapsed() < within,
                "timed out after {within:?} waiting for {what} ({} batches reported); client \
                 stderr:\n{}",
                self.len(),
                self.stderr_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Closes the client's stdin (its signal to stop), waits for it to
    /// finish the writes in progress and exit, and returns what it printed.
    fn stop(mut self, within: Duration) -> Printed {
        drop(self.stdin.take());
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for the client") {
                break status;
            }
            assert!(
                start.elapsed() < within,
                "the client did not stop within {within:?}; its stderr:\n{}",
                self.stderr_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        for r in self.readers.drain(..) {
            r.join().unwrap();
        }
        assert!(
            status.success(),
            "the client failed ({status}); its stderr:\n{}",
            self.stderr_tail()
        );
        std::mem::take(&mut *self.printed.lock().unwrap())
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `serve` again on the killed data dir; checks that every partition
/// was opened by crash recovery. Returns it, the ms to listening and the
/// number of torn tails recovery cut.
fn restart(dir: &Path, args: &[&str], round: u64) -> (Server, u64, usize) {
    let started = Instant::now();
    let s = Server::start(dir, args);
    let ms = started.elapsed().as_millis() as u64;
    let log = s.log_text();
    let opened: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("partition log opened"))
        .collect();
    assert!(
        !opened.is_empty() && opened.iter().all(|l| l.contains("clean=false")),
        "restart after kill {round}: not every partition was reopened by crash recovery:\n{log}"
    );
    // A cut is legal (a write torn by the kill was never acknowledged); the
    // read-back proves it took nothing acknowledged.
    (s, ms, log.matches("recovery cut the log").count())
}

fn sigkill_under_load(p: &Protocol) {
    let python = python(p);
    let dir = tempfile::tempdir().unwrap();
    // A fixed port: the client keeps one URL across the restarts.
    let listen = format!("127.0.0.1:{}", free_port());
    let key = format!("{}:{SECRET}", p.client_id);
    let args = ["--listen", listen.as_str(), "--api-key", key.as_str()];
    let started = Instant::now();
    let mut server = Server::start(dir.path(), &args);
    let mut load = Load::start(&python, p.script, &(p.url)(&listen));

    let kills = scale(3);
    // Per kill: 2xx since the (re)start before it, failures seen before
    // the restart, the quiet time between the last 2xx and the kill.
    let mut rounds: Vec<(usize, usize, Duration)> = Vec::new();
    let (mut worst_ms, mut cuts) = (0u64, 0usize);
    let mut since = 0;
    // Round 0's load starts with the client's first 2xx (its start is slow).
    let mut phase: Option<Instant> = None;
    for round in 0..kills {
        // The Python client's start (imports) is slow on a busy machine.
        let within = Duration::from_secs(if round == 0 { 90 } else { 60 });
        load.wait(&format!("{MIN_OK} 2xx before kill {round}"), within, |o| {
            oks(&o[since..]) >= MIN_OK
        });
        let from = phase.unwrap_or_else(|| load.printed.lock().unwrap().outcomes[0].at);
        std::thread::sleep(LOAD.saturating_sub(from.elapsed()));
        let (ok_before, quiet) = {
            let printed = load.printed.lock().unwrap();
            let o = &printed.outcomes[since..];
            let last = o.iter().rev().find(|o| o.ok).expect("a 2xx").at;
            (oks(o), last.elapsed())
        };
        server.kill(); // SIGKILL, with the client writing
        let killed = load.len();
        load.wait(
            &format!("a failed write after kill {round}"),
            Duration::from_secs(30),
            |o| failures(&o[killed..]) >= 1,
        );
        std::thread::sleep(OUTAGE);
        let restarted = load.len();
        let failed = failures(&load.printed.lock().unwrap().outcomes[killed..restarted]);
        let (s, ms, cut) = restart(dir.path(), &args, round);
        server = s;
        worst_ms = worst_ms.max(ms);
        cuts += cut;
        rounds.push((ok_before, failed, quiet));
        since = load.len();
        phase = Some(Instant::now());
        load.wait(
            &format!("a 2xx after the restart after kill {round}"),
            Duration::from_secs(30),
            |o| oks(&o[since..]) >= 1,
        );
    }
    // Load after the last restart too, then stop the client, then the
    // server, cleanly.
    load.wait(
        &format!("{MIN_OK} 2xx after the last restart"),
        Duration::from_secs(60),
        |o| oks(&o[since..]) >= MIN_OK,
    );
    std::thread::sleep(LOAD.saturating_sub(phase.map_or(LOAD, |p| p.elapsed())));
    let ok_after_last = oks(&load.printed.lock().unwrap().outcomes[since..]);
    let printed = load.stop(Duration::from_secs(30));
    let status = server.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status:?}\n{}", server.log_text());
    let elapsed = started.elapsed();
    assert!(
        printed.junk.is_empty(),
        "unexpected output: {:?}",
        printed.junk
    );
    assert!(!printed.client.is_empty(), "the client printed no version");

    // Every kill happened under load: 2xx right before it, failures while
    // the server was down, 2xx again after the restart (waited for above).
    for (round, (ok_before, failed, quiet)) in rounds.iter().enumerate() {
        assert!(
            *ok_before >= MIN_OK && *failed >= 1 && *quiet < Duration::from_secs(2),
            "kill {round} was not mid-load: {ok_before} 2xx before it, the last {quiet:?} \
             before the kill, {failed} failures while down"
        );
    }

    // What the client sent, by batch.
    let mut sent: BTreeMap<u64, &Outcome> = BTreeMap::new();
    for o in &printed.outcomes {
        assert!(
            sent.insert(o.batch, o).is_none(),
            "batch {} reported twice",
            o.batch
        );
    }
    let acked: BTreeSet<u64> = sent.values().filter(|o| o.ok).map(|o| o.batch).collect();
    let failed: Vec<&Outcome> = sent.values().filter(|o| !o.ok).copied().collect();
    let kind = |k: &str| {
        failed
            .iter()
            .filter(|o| o.error.as_deref() == Some(k))
            .count()
    };
    let resent = sent.values().filter(|o| o.sends > 1).count();

    // What the log holds, by batch: point → copies.
    let lines = consume_all(dir.path(), "verify");
    let mut found: BTreeMap<u64, BTreeMap<u64, usize>> = BTreeMap::new();
    for l in &lines {
        assert_eq!(l["client_id"], p.client_id, "{l}");
        let tag = |k: &str| -> u64 {
            l["tags"][k]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no numeric {k} tag: {l}"))
        };
        let (batch, point) = (tag("batch"), tag("point"));
        assert!(point < POINTS, "{l}");
        assert_eq!(l["value"].as_u64(), Some(batch * 1000 + point), "{l}");
        *found.entry(batch).or_default().entry(point).or_default() += 1;
    }
    let whole = |b: &u64| found.get(b).is_some_and(|pts| pts.len() as u64 == POINTS);
    let lost: Vec<u64> = acked.iter().filter(|b| !whole(b)).copied().collect();
    let partial: Vec<u64> = found
        .iter()
        .filter(|(_, pts)| (pts.len() as u64) < POINTS)
        .map(|(b, _)| *b)
        .collect();
    let unsent: Vec<u64> = found
        .keys()
        .filter(|b| !sent.contains_key(b))
        .copied()
        .collect();
    let duplicated: Vec<u64> = found
        .iter()
        .filter(|(_, pts)| pts.values().any(|n| *n > 1))
        .map(|(b, _)| *b)
        .collect();
    // Stored more often than the client sent it: never legitimate.
    let unexplained: Vec<u64> = duplicated
        .iter()
        .filter(|b| {
            let copies = found[*b].values().max().copied().unwrap_or(0) as u64;
            sent.get(*b).is_none_or(|o| copies > o.sends)
        })
        .copied()
        .collect();
    // Failed by the client's account yet stored: the kill came after the
    // batch was written and before its answer was. Legal: it was never
    // acknowledged.
    let stored_unacked = failed.iter().filter(|o| whole(&o.batch)).count();

    let scenario = format!("SIGKILL under load ×{kills}, {} {}", p.what, printed.client);
    let per_kill: Vec<String> = rounds
        .iter()
        .map(|(ok, failed, _)| format!("{ok}/{failed}"))
        .collect();
    let detail = format!(
        "{kills} kills; {WORKERS} client threads, {POINTS} points per batch; {} batches sent, \
         {} failed ({} refused at connect, {} cut, {} non-2xx), {resent} sent more than \
         once by the client (its own retries); per kill, 2xx before it / failures while down: {}; {} after \
         the last restart; {stored_unacked} failed batches stored anyway (whole); worst \
         restart (spawn to listening) {worst_ms} ms; {cuts} torn tails cut; {:.1} s in all",
        sent.len(),
        failed.len(),
        kind("refused"),
        kind("cut"),
        kind("status"),
        per_kill.join(", "),
        ok_after_last,
        elapsed.as_secs_f64()
    );
    eprintln!(
        "{scenario}: {} acknowledged, {} lost, {} duplicated; {detail}",
        acked.len(),
        lost.len(),
        duplicated.len()
    );
    record(Figures {
        scenario: &scenario,
        checks: &format!(
            "{WORKERS} client threads writing numbered batches of {POINTS} points, server \
             (durable ack) SIGKILLed mid-load and restarted; every restart recovers every \
             partition as after a crash; every batch the client saw a 2xx for read back \
             whole, no batch stored in part, none stored more often than the client sent it"
        ),
        acknowledged: acked.len() as u64,
        lost: lost.len() as u64,
        duplicated: duplicated.len() as u64,
        recovery_ms: worst_ms,
        detail,
    });

    assert!(
        lost.is_empty(),
        "{} of {} acknowledged batches are not wholly in the log: {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(10)]
    );
    assert!(partial.is_empty(), "batches stored in part: {partial:?}");
    assert!(
        unsent.is_empty(),
        "batches the client never sent: {unsent:?}"
    );
    assert!(
        unexplained.is_empty(),
        "batches stored more often than the client sent them: {unexplained:?}"
    );
    if !p.retries {
        assert!(resent == 0 && duplicated.is_empty(), "{duplicated:?}");
    }
}

#[test]
fn line_protocol_from_the_influxdb_client_loses_no_2xx_across_sigkills() {
    sigkill_under_load(&INFLUX);
}

#[test]
fn otlp_from_the_opentelemetry_sdk_loses_no_2xx_across_sigkills() {
    sigkill_under_load(&OTLP);
}
