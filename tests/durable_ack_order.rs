//! A durable 2xx is sent only after the data is synced (README, "Durable
//! ack"). `serve --ack durable` runs under `strace -f`, which records the
//! system calls of every thread in one order that respects causality: a
//! thread stopped at a system call's exit is resumed only after strace has
//! written that exit, so nothing another thread does because of it (a
//! reply through a channel, then the answer on the socket) can come
//! earlier in the trace.
//!
//! Requests are sent one at a time, each on a connection of its own
//! (`accept4` gives its socket). For each one the trace must show, between
//! the accept and the first write of the answer on that socket, the
//! request's data written into a segment (`<data>/metrics-<p>/*.log`), and
//! after every such write, before the answer, a sync that covers it
//! completed: `fdatasync`/`fsync` of that file, or `syncfs` on the data
//! directory's file system. JSON requests land in one partition
//! (fdatasync); remote_write requests split by series touch several
//! partitions at once (syncfs when one commit holds several).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::sink::rw_body;
use common::{request, Response, BIN};

fn strace() -> PathBuf {
    let found = std::env::var_os("METRICSTREAM_STRACE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join("strace"))
                    .find(|p| p.exists())
            })
        });
    found.unwrap_or_else(|| {
        panic!(
            "this test needs strace (Debian package strace): run ./scripts/test.sh (its \
             scripts/deps.sh installs it) or `apt-get install strace`, or set METRICSTREAM_STRACE"
        )
    })
}

/// `serve` under strace, its trace written to `trace`.
struct Traced {
    /// strace; `serve` is its child.
    child: Child,
    serve: rustix::process::Pid,
    addr: std::net::SocketAddr,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

/// The process whose parent is `parent`.
fn child_of(parent: u32) -> Option<rustix::process::Pid> {
    let ppid = format!("PPid:\t{parent}");
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .is_ok_and(|s| s.lines().any(|l| l == ppid))
        })
        .and_then(rustix::process::Pid::from_raw)
}

impl Traced {
    fn start(data: &Path, trace: &Path, extra: &[&str]) -> Traced {
        let mut child = Command::new(strace())
            .args(["-f", "-tt", "-o"])
            .arg(trace)
            .args([
                "-e",
                "trace=accept4,openat,close,write,writev,pwrite64,pwritev,sendto,sendmsg,\
                 fdatasync,fsync,syncfs",
                "--",
                BIN,
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--ack",
                "durable",
                "--data-dir",
            ])
            .arg(data)
            .args(extra)
            .env("METRICSTREAM_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn strace");
        let stderr = child.stderr.take().expect("stderr");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("metricstream serving") {
                    let addr = line
                        .split_whitespace()
                        .find_map(|w| w.strip_prefix("listen="))
                        .map(|a| a.trim_matches('"').to_string());
                    if let (Some(tx), Some(addr)) = (tx.take(), addr) {
                        let _ = tx.send(addr);
                    }
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let Ok(addr) = rx.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            panic!("serve did not start under strace:\n{}", log.lock().unwrap());
        };
        let serve = child_of(child.id()).expect("serve, the child of strace");
        Traced {
            child,
            serve,
            addr: addr.parse().expect("listen address"),
            log,
        }
    }

    /// SIGTERM to `serve` (not to strace, which would detach and leave it
    /// running), then waits for both to exit.
    fn stop(mut self) {
        let sent = rustix::process::kill_process(self.serve, rustix::process::Signal::TERM);
        assert!(sent.is_ok(), "SIGTERM to serve: {sent:?}");
        for _ in 0..300 {
            if self.child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "serve did not exit within 15 s of SIGTERM:\n{}",
            self.log.lock().unwrap()
        );
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = rustix::process::kill_process(self.serve, rustix::process::Signal::KILL);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One system call of the trace: where its entry and its exit are (line
/// numbers: the trace's order), its name, its first argument and what it
/// returned; the path its first argument was open on when it was made.
#[derive(Debug, Clone)]
struct Call {
    entry: usize,
    exit: usize,
    name: String,
    fd: Option<i64>,
    ret: Option<i64>,
    path: Option<String>,
}

/// The first argument of a call's text (`name(arg, ...`) as an fd.
fn first_fd(text: &str) -> Option<i64> {
    let (_, args) = text.split_once('(')?;
    args.split([',', ')']).next()?.trim().parse().ok()
}

/// The calls of an `strace -f` trace, in order of their exits, with the
/// path each call's fd named at its entry (from `openat` and `close`).
fn parse(trace: &str) -> Vec<Call> {
    let mut calls = Vec::new();
    // A call interrupted by another thread's: tid → (entry, its text so
    // far, its fd's path then).
    let mut open_calls: BTreeMap<String, (usize, String, Option<String>)> = BTreeMap::new();
    let mut paths: BTreeMap<i64, String> = BTreeMap::new();
    for (i, line) in trace.lines().enumerate() {
        // `<tid> <time> <call>`; strace pads the tid with spaces.
        let Some((tid, rest)) = line.trim_start().split_once(' ') else {
            continue;
        };
        let Some((_time, rest)) = rest.trim_start().split_once(' ') else {
            continue;
        };
        let (entry, text, path) = if let Some(head) = rest.strip_suffix(" <unfinished ...>") {
            let path = first_fd(head).and_then(|fd| paths.get(&fd).cloned());
            if head.starts_with("close(") {
                if let Some(fd) = first_fd(head) {
                    paths.remove(&fd);
                }
            }
            open_calls.insert(tid.to_string(), (i, head.to_string(), path));
            continue;
        } else if let Some(tail) = rest.strip_prefix("<... ") {
            let Some((_, tail)) = tail.split_once(" resumed>") else {
                continue;
            };
            let Some((entry, head, path)) = open_calls.remove(tid) else {
                continue;
            };
            (entry, format!("{head}{tail}"), path)
        } else if rest.starts_with("---") || rest.starts_with("+++") {
            continue;
        } else {
            let path = first_fd(rest).and_then(|fd| paths.get(&fd).cloned());
            (i, rest.to_string(), path)
        };
        let Some((name, args)) = text.split_once('(') else {
            continue;
        };
        // strace pads before ` = ret`; the return value is the last ` = `.
        let ret = text
            .rsplit_once(" = ")
            .and_then(|(_, r)| r.split_whitespace().next()?.parse::<i64>().ok());
        let fd = first_fd(&text);
        match name {
            "openat" => {
                let file = args.split('"').nth(1).map(str::to_string);
                if let (Some(fd), Some(file)) = (ret.filter(|r| *r >= 0), file) {
                    paths.insert(fd, file);
                }
            }
            "close" => {
                if let Some(fd) = fd {
                    paths.remove(&fd);
                }
            }
            _ => {}
        }
        calls.push(Call {
            entry,
            exit: i,
            name: name.to_string(),
            fd,
            ret,
            path,
        });
    }
    calls
}

const ANSWER_CALLS: &[&str] = &["write", "writev", "sendto", "sendmsg"];
const DATA_WRITES: &[&str] = &["write", "writev", "pwrite64", "pwritev"];

/// What the trace says of each request: how many data writes it had and
/// which kinds of sync covered them. Fails on an answer that came before
/// the sync of a write it had.
fn check(calls: &[Call], data: &str, requests: usize) -> BTreeMap<&'static str, usize> {
    let is_segment = |c: &Call| {
        c.path
            .as_deref()
            .is_some_and(|p| p.starts_with(data) && p.ends_with(".log"))
    };
    let on_data_fs = |c: &Call| c.path.as_deref().is_some_and(|p| p.starts_with(data));
    let accepts: Vec<&Call> = calls
        .iter()
        .filter(|c| c.name == "accept4" && c.ret.is_some_and(|r| r >= 0))
        .collect();
    assert_eq!(accepts.len(), requests, "one connection per request");
    let mut seen = BTreeMap::new();
    for (n, accept) in accepts.iter().enumerate() {
        let socket = accept.ret;
        let answer = calls
            .iter()
            .filter(|c| c.entry > accept.exit && c.fd == socket)
            .find(|c| ANSWER_CALLS.contains(&c.name.as_str()))
            .unwrap_or_else(|| panic!("request {n}: no answer on fd {socket:?} in the trace"));
        let writes: Vec<&Call> = calls
            .iter()
            .filter(|c| c.exit > accept.exit && c.exit < answer.entry)
            .filter(|c| DATA_WRITES.contains(&c.name.as_str()) && is_segment(c))
            .collect();
        assert!(
            !writes.is_empty(),
            "request {n}: answered (trace line {}) with no write into a segment since its \
             accept (line {})",
            answer.entry + 1,
            accept.exit + 1
        );
        for w in &writes {
            let covering = calls.iter().find(|c| {
                c.entry > w.exit
                    && c.exit < answer.entry
                    && c.ret == Some(0)
                    && match c.name.as_str() {
                        "fdatasync" | "fsync" => c.fd == w.fd && c.path == w.path,
                        "syncfs" => on_data_fs(c),
                        _ => false,
                    }
            });
            let Some(sync) = covering else {
                let after = calls
                    .iter()
                    .find(|c| {
                        c.entry > w.exit
                            && ["fdatasync", "fsync", "syncfs"].contains(&c.name.as_str())
                    })
                    .map_or("none".to_string(), |c| {
                        format!("{} at line {}", c.name, c.exit + 1)
                    });
                panic!(
                    "request {n}: answered at trace line {} before the write of {} at line {} \
                     was synced (next sync: {after})",
                    answer.entry + 1,
                    w.path.as_deref().unwrap_or("?"),
                    w.exit + 1
                );
            };
            *seen
                .entry(if sync.name == "syncfs" {
                    "syncfs"
                } else {
                    "fdatasync"
                })
                .or_default() += 1;
        }
    }
    seen
}

fn json_body(i: usize) -> String {
    format!(
        r#"{{"metrics":[{{"name":"ordered","value":{i},"type":"gauge","tags":{{"seq":"{i}"}}}}]}}"#
    )
}

fn assert_2xx(r: &Response, what: &str) {
    assert!((200..300).contains(&r.status), "{what}: {r:?}");
}

#[test]
fn a_durable_answer_comes_only_after_the_sync_of_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let trace = dir.path().join("trace.txt");
    let server = Traced::start(
        &data,
        &trace,
        &["--partitions", "4", "--partition-by", "series"],
    );
    let (json, remote_write) = (15, 15);
    for i in 0..json {
        let r = request(
            server.addr,
            "POST",
            "/metrics",
            &[("Content-Type", "application/json"), ("Authorization", "c")],
            json_body(i).as_bytes(),
        );
        assert_2xx(&r, "JSON");
    }
    for i in 0..remote_write {
        // Forty series: every partition gets some.
        let series: Vec<common::sink::Series> = (0..40)
            .map(|s| {
                (
                    "ordered_rw".to_string(),
                    vec![("s".to_string(), s.to_string())],
                    vec![(i as f64, 1_700_000_000_000 + i as i64)],
                )
            })
            .collect();
        let r = request(
            server.addr,
            "POST",
            "/api/v1/write",
            &[
                ("Content-Type", "application/x-protobuf"),
                ("Content-Encoding", "snappy"),
                ("Authorization", "prometheus"),
            ],
            &rw_body(&series),
        );
        assert_2xx(&r, "remote_write");
    }
    server.stop();
    let text = std::fs::read_to_string(&trace).expect("the trace");
    let calls = parse(&text);
    // As serve names its files: under the --data-dir it was given.
    let data = data.display().to_string();
    let seen = check(&calls, &data, json + remote_write);
    // Both ways of syncing were checked: each JSON request's write by an
    // fdatasync; the parts of a remote_write request, sent to the writer
    // together, by a syncfs whenever one commit took several of them.
    assert!(
        seen.get("fdatasync").copied().unwrap_or(0) >= json,
        "{seen:?}"
    );
    assert!(seen.get("syncfs").copied().unwrap_or(0) >= 1, "{seen:?}");
}
