//! Slow or stuck clients against the real binary: slowloris headers, a body
//! that never finishes, thousands of idle keep-alive connections, and the
//! connection cap. During each attack a normal client keeps posting; every
//! batch it got a 200 for must be in the log exactly once afterwards, and
//! nothing else may be stored.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::report::{record, scale, Figures};
use common::{consume_all, cpp_body, request, wait_for, Server};

const JSON: (&str, &str) = ("Content-Type", "application/json");
/// What a noisy shared machine may add to a timeout before we call it missed.
const SLACK: Duration = Duration::from_secs(4);
/// A request head that never ends, sent a byte at a time.
const SLOW_HEAD: &[u8] =
    b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Slow: ";
/// A POST whose body (1000 bytes promised) stops after 10.
const STUCK_BODY: &[u8] =
    b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"metrics\"";
const KEEP_ALIVE_GET: &[u8] = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
/// --idle-timeout and --request-timeout of most tests here.
const SHORT: Duration = Duration::from_secs(2);

/// A client posting one batch after another, each on a fresh connection.
struct Normal {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<(u64, u16, Duration)>>,
}

impl Normal {
    fn start(addr: SocketAddr) -> Normal {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut out = Vec::new();
            let mut seq = 0;
            while !stopped.load(Ordering::Relaxed) {
                let started = Instant::now();
                let body = cpp_body("normal", seq);
                let r = request(addr, "POST", "/metrics", &[JSON], body.as_bytes());
                out.push((seq, r.status, started.elapsed()));
                seq += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            out
        });
        Normal { stop, thread }
    }

    /// Stops the client; fails unless it made enough requests, all 200.
    fn finish(self, during: &str) -> Served {
        self.stop.store(true, Ordering::Relaxed);
        let outcomes = self.thread.join().expect("normal client");
        let failed: Vec<_> = outcomes.iter().filter(|o| o.1 != 200).collect();
        assert!(
            failed.is_empty(),
            "{during}: normal requests failed (seq, status, latency): {failed:?}"
        );
        assert!(
            outcomes.len() >= 10,
            "{during}: only {} normal requests made",
            outcomes.len()
        );
        Served { outcomes }
    }
}

struct Served {
    outcomes: Vec<(u64, u16, Duration)>,
}

impl Served {
    fn acked(&self) -> Vec<u64> {
        self.outcomes
            .iter()
            .filter(|o| o.1 == 200)
            .map(|o| o.0)
            .collect()
    }

    fn p99_ms(&self) -> u128 {
        let mut l: Vec<_> = self.outcomes.iter().map(|o| o.2).collect();
        l.sort();
        l.get((l.len() * 99 / 100).min(l.len().saturating_sub(1)))
            .map_or(0, |d| d.as_millis())
    }
}

/// SIGTERM; the server must exit 0. How long it took.
fn shut_down(s: &mut Server) -> Duration {
    let started = Instant::now();
    let status = s.terminate(Duration::from_secs(20));
    assert!(status.success(), "exit {status:?}\n{}", s.log_text());
    started.elapsed()
}

/// (lost, duplicated) of the acknowledged batches in the log. Fails unless
/// the log holds exactly the acknowledged batches, each once: nothing of an
/// attacker's, no normal batch that got no 200.
fn check_log(s: &Server, acked: &[u64]) -> (u64, u64) {
    let mut seen: BTreeMap<u64, u64> = BTreeMap::new();
    for l in consume_all(&s.data_dir, "verify") {
        assert_eq!(l["tags"]["host"], "normal", "stored by an attacker: {l}");
        if let Some(seq) = l["tags"]["seq"].as_str() {
            *seen.entry(seq.parse().unwrap()).or_default() += 1;
        }
    }
    let acked: BTreeSet<u64> = acked.iter().copied().collect();
    let lost: Vec<_> = acked.iter().filter(|a| !seen.contains_key(a)).collect();
    let dup: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    let unacked: Vec<_> = seen.keys().filter(|k| !acked.contains(k)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged batches lost: {lost:?}",
        lost.len(),
        acked.len()
    );
    assert!(dup.is_empty(), "duplicated batches: {dup:?}");
    assert!(unacked.is_empty(), "stored without a 200: {unacked:?}");
    (lost.len() as u64, dup.len() as u64)
}

/// After an attack: its connections gone from the gauge, the log checked,
/// the figures recorded (`cleared`: how long the attack held connections).
fn conclude(
    s: &mut Server,
    served: &Served,
    scenario: &str,
    checks: &str,
    cleared: Duration,
    detail: String,
) {
    wait_for("the open-connection gauge to drop", SLACK, || {
        stat(s, "connections_open") <= 1
    });
    let acked = served.acked();
    shut_down(s);
    let (lost, duplicated) = check_log(s, &acked);
    record(Figures {
        scenario,
        checks,
        acknowledged: acked.len() as u64,
        lost,
        duplicated,
        recovery_ms: cleared.as_millis() as u64,
        detail: format!("{detail}; normal p99 {} ms", served.p99_ms()),
    });
}

fn stats(s: &Server) -> serde_json::Value {
    let r = s.get("/stats");
    assert_eq!(r.status, 200, "{r:?}");
    r.json()
}

fn stat(s: &Server, name: &str) -> i64 {
    stats(s)[name]
        .as_i64()
        .unwrap_or_else(|| panic!("no {name} in /stats"))
}

/// A server with --idle-timeout and --request-timeout SHORT, and room for
/// `n` attacking sockets in this process.
fn short_timeout_server(n: u64) -> (tempfile::TempDir, Server) {
    fd_room(n);
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        dir.path(),
        &["--idle-timeout", "2s", "--request-timeout", "2s"],
    );
    (dir, s)
}

/// Makes room for `n` sockets in this process (soft limit up to the hard one).
fn fd_room(n: u64) {
    let need = n + 256;
    let (mut soft, hard) = rlimit::Resource::NOFILE.get().expect("getrlimit");
    if soft < need {
        soft = need.min(hard);
        rlimit::Resource::NOFILE.set(soft, hard).expect("setrlimit");
    }
    assert!(
        soft >= need,
        "this test holds {n} sockets: raise the hard open-file limit to {need} (ulimit -Hn)"
    );
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// `n` connections, each with a POST whose body never finishes.
fn stuck_bodies(addr: SocketAddr, n: u64) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut c = connect(addr);
            c.write_all(STUCK_BODY).unwrap();
            c
        })
        .collect()
}

/// Reads one response with a Content-Length body, leaving the connection open.
fn read_response(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = s.read(&mut chunk).expect("read response");
        assert!(
            n > 0,
            "closed mid-response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = common::content_length(head);
            if body.len() >= len {
                return text;
            }
        }
    }
}

/// What the server sent until it closed the connection (a reset counts as
/// closed); None if it was still open after `within`.
fn read_until_closed(s: &mut TcpStream, within: Duration) -> Option<String> {
    s.set_read_timeout(Some(within.max(Duration::from_millis(1))))
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => return Some(String::from_utf8_lossy(&buf).into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None
            }
            Err(_) => return Some(String::from_utf8_lossy(&buf).into()),
        }
    }
}

/// Whether the server has closed `s` (EOF or reset), without waiting.
fn is_closed(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let r = s.peek(&mut [0u8; 1]);
    s.set_nonblocking(false).unwrap();
    match r {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != ErrorKind::WouldBlock,
    }
}

#[test]
fn slowloris_headers_are_cut_off_at_the_idle_timeout() {
    let idle = SHORT;
    let n = scale(200);
    let (_dir, mut s) = short_timeout_server(n);
    let opened = Instant::now();
    let mut conns: Vec<(TcpStream, Option<Duration>)> =
        (0..n).map(|_| (connect(s.addr), None)).collect();
    let normal = Normal::start(s.addr);
    let mut sent = 0;
    while conns.iter().any(|c| c.1.is_none()) && opened.elapsed() < idle + SLACK {
        let byte = SLOW_HEAD.get(sent).copied().unwrap_or(b'a');
        for (sock, closed_at) in conns.iter_mut().filter(|c| c.1.is_none()) {
            // One more byte of the head; the server cutting it off shows as
            // EOF or a failed write.
            if is_closed(sock) || sock.write_all(&[byte]).is_err() {
                *closed_at = Some(opened.elapsed());
            }
        }
        sent += 1;
        std::thread::sleep(Duration::from_millis(300));
    }
    let served = normal.finish("slowloris");
    let open = conns.iter().filter(|c| c.1.is_none()).count();
    assert_eq!(
        open,
        0,
        "{open} of {n} slowloris connections still open after {:?}",
        idle + SLACK
    );
    let timed_out = stat(&s, "connections_timed_out");
    assert!(
        timed_out as u64 >= n,
        "connections_timed_out {timed_out} of {n}"
    );
    let first = conns.iter().filter_map(|c| c.1).min().unwrap();
    let last = conns.iter().filter_map(|c| c.1).max().unwrap();
    // Trickling bytes must not keep a head alive, nor be cut off early.
    assert!(
        first + Duration::from_millis(100) >= idle,
        "closed after {first:?}, before --idle-timeout {idle:?}"
    );
    conclude(
        &mut s,
        &served,
        "slowloris headers",
        "connections sending a request head a byte every 300 ms are closed at \
         --idle-timeout (2 s); a normal client keeps getting 200",
        last,
        format!(
            "{n} slowloris connections closed {:.1}-{:.1} s after opening",
            first.as_secs_f64(),
            last.as_secs_f64(),
        ),
    );
}

#[test]
fn a_body_that_never_finishes_gets_408_and_is_closed() {
    let timeout = SHORT;
    let n = scale(20);
    let (_dir, mut s) = short_timeout_server(n);
    let sent = Instant::now();
    let mut conns = stuck_bodies(s.addr, n);
    let normal = Normal::start(s.addr);
    let mut slowest = Duration::ZERO;
    for c in &mut conns {
        let left = (timeout + SLACK).saturating_sub(sent.elapsed());
        let answer = read_until_closed(c, left).unwrap_or_else(|| {
            panic!("a stuck body still open {:?} after sending", sent.elapsed())
        });
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
        slowest = slowest.max(sent.elapsed());
    }
    let served = normal.finish("stuck bodies");
    assert!(slowest >= timeout, "408 after {slowest:?}");
    conclude(
        &mut s,
        &served,
        "stuck body",
        "a POST that promises 1000 bytes and sends 10 gets 408 at --request-timeout \
         (2 s) and is closed; nothing of it stored; a normal client keeps getting 200",
        slowest,
        format!(
            "{n} stuck bodies answered 408 and closed within {:.1} s",
            slowest.as_secs_f64(),
        ),
    );
}

/// Pipelines requests on `c` without reading an answer until the server
/// closes it: (when the writes first stalled, when it was closed), or None
/// if it is still open at `deadline`.
fn write_without_reading(c: &mut TcpStream, deadline: Instant) -> Option<(Instant, Instant)> {
    c.set_write_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let burst = KEEP_ALIVE_GET.repeat(100);
    let mut stalled = None;
    while Instant::now() < deadline {
        match c.write(&burst) {
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                stalled.get_or_insert_with(Instant::now);
            }
            Err(_) => return Some((stalled.unwrap_or_else(Instant::now), Instant::now())),
        }
    }
    None
}

#[test]
fn a_client_that_never_reads_its_answers_is_cut_off() {
    let n = scale(5);
    let (_dir, mut s) = short_timeout_server(n);
    let normal = Normal::start(s.addr);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut slowest = Duration::ZERO;
    let readers: Vec<_> = (0..n)
        .map(|_| {
            let mut c = connect(s.addr);
            std::thread::spawn(move || write_without_reading(&mut c, deadline))
        })
        .collect();
    for r in readers {
        let (stalled, closed) = r
            .join()
            .unwrap()
            .expect("a client that reads nothing still connected after 30 s");
        slowest = slowest.max(closed - stalled);
    }
    let served = normal.finish("clients that never read");
    // No tighter bound: after the client's writes stall the server still
    // answers the requests it had buffered, until its own writes stall and
    // --idle-timeout runs. Without the write timeout it never closes.
    let timed_out = stat(&s, "connections_timed_out");
    assert!(
        timed_out as u64 >= n,
        "connections_timed_out {timed_out} of {n}"
    );
    conclude(
        &mut s,
        &served,
        "answers never read",
        "clients pipeline requests and never read the answers: once the server's \
         writes make no progress for --idle-timeout (2 s) the connection is closed; \
         a normal client keeps getting 200",
        slowest,
        format!(
            "{n} such clients, each closed at most {:.1} s after its own writes stalled \
             (the server first answers what it had buffered)",
            slowest.as_secs_f64(),
        ),
    );
}

#[test]
fn thousands_of_idle_keep_alive_connections_are_closed_at_the_idle_timeout() {
    let idle = SHORT;
    let n = scale(3000);
    let (_dir, mut s) = short_timeout_server(n);
    let normal = Normal::start(s.addr);
    // Half answer a request first (keep-alive idle), half never send one.
    let mut conns: Vec<(TcpStream, Instant)> = (0..n)
        .map(|i| {
            let mut c = connect(s.addr);
            if i % 2 == 0 {
                c.write_all(KEEP_ALIVE_GET).unwrap();
            }
            (c, Instant::now())
        })
        .collect();
    for (c, last) in conns.iter_mut().step_by(2) {
        assert!(read_response(c).starts_with("HTTP/1.1 200"));
        *last = Instant::now();
    }
    let peak = stat(&s, "connections_open");
    assert!(peak as u64 >= n / 2, "only {peak} of {n} held open at once");
    let all_open = Instant::now();
    for (c, last) in &mut conns {
        let left = (idle + SLACK).saturating_sub(last.elapsed());
        let rest = read_until_closed(c, left)
            .unwrap_or_else(|| panic!("an idle connection still open {:?} after", last.elapsed()));
        assert_eq!(rest, "", "an idle connection got an answer");
    }
    let cleared = all_open.elapsed();
    let timed_out = stat(&s, "connections_timed_out");
    assert!(
        timed_out as u64 >= n,
        "connections_timed_out {timed_out} of {n}"
    );
    let served = normal.finish("idle flood");
    conclude(
        &mut s,
        &served,
        "idle keep-alive flood",
        "thousands of idle connections (half after one keep-alive answer) are closed \
         at --idle-timeout (2 s) and the open-connection gauge returns to 0; a normal \
         client keeps getting 200",
        cleared,
        format!(
            "{n} idle connections (peak {peak} open) closed in {:.1} s",
            cleared.as_secs_f64(),
        ),
    );
}

#[test]
fn at_the_connection_cap_idle_connections_make_room_and_busy_ones_get_503() {
    let cap = 50;
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(
        dir.path(),
        &[
            "--max-connections",
            "50",
            "--idle-timeout",
            "10s",
            "--request-timeout",
            "3s",
        ],
    );
    // 1. The cap full of idle connections; the odd ones idle longest.
    let mut idle: Vec<TcpStream> = (0..cap).map(|_| connect(s.addr)).collect();
    // Accepted and idle for a while before the even ones get an answer.
    std::thread::sleep(Duration::from_millis(300));
    for c in idle.iter_mut().step_by(2) {
        c.write_all(KEEP_ALIVE_GET).unwrap();
        assert!(read_response(c).starts_with("HTTP/1.1 200"));
    }
    // Newcomers that just sit take the place of idle ones too.
    let newcomers: Vec<TcpStream> = (0..10).map(|_| connect(s.addr)).collect();
    let normal = Normal::start(s.addr);
    std::thread::sleep(Duration::from_secs(1));
    let served = normal.finish("cap full of idle connections");
    let evicted = stat(&s, "connections_evicted") as usize;
    assert!(evicted >= newcomers.len(), "evicted {evicted}");
    let closed = || -> Vec<usize> { (0..cap).filter(|i| is_closed(&idle[*i])).collect() };
    wait_for("evicted connections to close", SLACK, || {
        closed().len() >= evicted
    });
    std::thread::sleep(Duration::from_millis(300));
    let evicted_ones = closed();
    assert_eq!(evicted_ones.len(), evicted, "closed: {evicted_ones:?}");
    assert!(
        evicted_ones.iter().all(|i| i % 2 == 1),
        "not the connections idle longest: {evicted_ones:?}"
    );
    assert!(newcomers.iter().all(|c| !is_closed(c)));
    drop((idle, newcomers));
    wait_for("connections to be closed", SLACK, || {
        stat(&s, "connections_open") <= 1
    });

    // 2. The cap full of requests in flight: a newcomer gets a 503.
    let stuck = stuck_bodies(s.addr, cap as u64);
    std::thread::sleep(Duration::from_millis(500));
    let mut late = connect(s.addr);
    late.write_all(KEEP_ALIVE_GET).unwrap();
    let answer = read_until_closed(&mut late, SLACK).expect("refusal closes the connection");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert!(answer.contains("Retry-After: 1"), "{answer:?}");
    assert!(answer.contains("Connection: close"), "{answer:?}");
    assert!(answer.contains("--max-connections"), "{answer:?}");
    let r = s.post(&cpp_body("refused", 0), &[JSON]);
    assert_eq!(r.status, 503, "{r:?}");
    // Once the stuck bodies time out (408), normal service resumes.
    let recovered = Instant::now();
    wait_for("service after the stuck bodies' 408", SLACK * 2, || {
        s.post(&cpp_body("normal", 1_000_000), &[JSON]).status == 200
    });
    let recovery = recovered.elapsed();
    drop(stuck);
    let refused = stat(&s, "connections_refused");
    assert!(refused >= 2, "refused {refused}");

    // 3. Shutdown does not wait for idle connections' timeout (10 s), not
    // even those with half a head, and still finishes a request in flight.
    let mut lingering: Vec<TcpStream> = (0..20).map(|_| connect(s.addr)).collect();
    for c in lingering.iter_mut().step_by(2) {
        c.write_all(KEEP_ALIVE_GET).unwrap();
        assert!(read_response(c).starts_with("HTTP/1.1 200"));
    }
    // Some odd ones with half a head, as slowloris would leave them.
    for c in lingering.iter_mut().skip(1).step_by(4) {
        c.write_all(&SLOW_HEAD[..20]).unwrap();
    }
    let mut inflight = connect(s.addr);
    let body = cpp_body("normal", 2_000_000);
    let head = format!(
        "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    inflight.write_all(head.as_bytes()).unwrap();
    inflight.write_all(&body.as_bytes()[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let finisher = std::thread::spawn(move || {
        // The rest of the body arrives after SIGTERM.
        std::thread::sleep(Duration::from_millis(300));
        inflight.write_all(&body.as_bytes()[10..]).unwrap();
        read_until_closed(&mut inflight, SLACK)
    });
    let shutdown = shut_down(&mut s);
    let answer = finisher.join().unwrap().expect("closed after its answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(
        shutdown < Duration::from_secs(5),
        "shutdown took {shutdown:?} with idle connections"
    );
    assert!(lingering.iter().all(is_closed));
    let mut acked = served.acked();
    acked.extend([1_000_000, 2_000_000]);
    let (lost, duplicated) = check_log(&s, &acked);
    record(Figures {
        scenario: "connection cap",
        checks: "at --max-connections 50, newcomers close the connections idle longest and \
         are served; with all 50 busy a newcomer gets 503 + Retry-After; SIGTERM \
         closes idle connections at once and finishes a request in flight",
        acknowledged: acked.len() as u64,
        lost,
        duplicated,
        recovery_ms: recovery.as_millis() as u64,
        detail: format!(
            "{evicted} idle connections evicted, {refused} refused while all busy; normal p99 \
             {} ms; shutdown with 20 idle connections and one request in flight {} ms",
            served.p99_ms(),
            shutdown.as_millis()
        ),
    });
}
