//! Test harness: starts the real `metricstream` binary on a loopback port
//! with a temporary data directory, and a minimal blocking HTTP client.
#![allow(dead_code)]

pub mod broker;
pub mod certs;
pub mod fake_store;
pub mod in_process;
pub mod influxdb;
pub mod prometheus;
pub mod report;
pub mod sink;
pub mod tls;
pub mod tmpfs;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_metricstream");

/// The C++ load test's request body, byte for byte in shape.
pub fn cpp_body(host: &str, seq: u64) -> String {
    format!(
        r#"{{
            "metrics": [
                {{
                    "name": "cpu_usage",
                    "value": 42.123456,
                    "type": "gauge",
                    "tags": {{"host": "{host}", "region": "us-west", "seq": "{seq}"}}
                }},
                {{
                    "name": "memory_usage",
                    "value": 4000000000,
                    "type": "gauge",
                    "tags": {{"host": "{host}"}}
                }},
                {{
                    "name": "requests_total",
                    "value": 17,
                    "type": "counter",
                    "tags": {{"service": "api", "host": "{host}"}}
                }}
            ]
        }}"#
    )
}

pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    /// Everything the server wrote to stderr so far.
    pub log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `metricstream serve` on 127.0.0.1:0 (unless `extra` has a
    /// `--listen`) and waits until it listens.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        let listen: &[&str] = if extra.contains(&"--listen") {
            &[]
        } else {
            &["--listen", "127.0.0.1:0"]
        };
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(listen)
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("METRICSTREAM_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn metricstream");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("metricstream serving") {
                    if let Some(addr) = field(&line, "listen") {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(addr);
                        }
                    }
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a.parse().expect("listen address"),
            Err(_) => {
                let _ = child.kill();
                panic!("server did not start; log:\n{}", log.lock().unwrap());
            }
        };
        Server {
            child,
            addr,
            data_dir: data_dir.to_path_buf(),
            log,
        }
    }

    pub fn post(&self, body: &str, headers: &[(&str, &str)]) -> Response {
        request(self.addr, "POST", "/metrics", headers, body.as_bytes())
    }

    pub fn get(&self, path: &str) -> Response {
        request(self.addr, "GET", path, &[], b"")
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status (panics after `within`).
    pub fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        sigterm(&self.child);
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            if start.elapsed() > within {
                let _ = self.child.kill();
                panic!("server did not exit within {within:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `key=value` from a tracing log line (ANSI codes stripped).
fn field(line: &str, key: &str) -> Option<String> {
    let clean: String = strip_ansi(line);
    let start = clean.find(&format!("{key}="))? + key.len() + 1;
    let rest = &clean[start..];
    Some(
        rest.split_whitespace()
            .next()?
            .trim_matches('"')
            .to_string(),
    )
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The Content-Length of a response head (0 when it has none).
pub fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0)
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// One HTTP/1.1 request on a fresh connection; status 0 on a transport error.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    try_request(addr, method, path, headers, body).unwrap_or(Response {
        status: 0,
        headers: vec![],
        body: String::new(),
    })
}

pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad response"))
}

pub fn parse_response(raw: &[u8]) -> Option<Response> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Some(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Runs `metricstream consume` to the end and returns its JSON lines.
pub fn consume_all(data_dir: &Path, group: &str) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&consume_stdout(data_dir, group))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

/// What `metricstream consume` prints reading the whole log from the
/// beginning as `group` (one JSON line per metric); a failed run fails the
/// test.
pub fn consume_stdout(data_dir: &Path, group: &str) -> Vec<u8> {
    let out = Command::new(BIN)
        .args([
            "consume",
            "--group",
            group,
            "--from-beginning",
            "--exit-at-end",
            "--data-dir",
        ])
        .arg(data_dir)
        .output()
        .expect("run consume");
    assert!(
        out.status.success(),
        "consume failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The JSON lines a `consume` process printed so far.
pub type Lines = Arc<Mutex<Vec<serde_json::Value>>>;

/// (partition, offset) of every batch in `lines`.
pub fn batches(lines: &Lines) -> std::collections::BTreeSet<(u64, u64)> {
    records(lines).into_iter().collect()
}

/// (partition, offset) of every line in `lines`, in order, repeats kept.
pub fn records(lines: &Lines) -> Vec<(u64, u64)> {
    lines
        .lock()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["partition"].as_u64().unwrap(),
                l["offset"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Runs `metricstream bench --keep-alive --quiet` with `args` and returns
/// its JSON report (bench exits 1 when a request failed; the report says
/// which, so the exit status is not the verdict).
pub fn bench_report(args: &[&str]) -> serde_json::Value {
    let out_dir = tempfile::tempdir().unwrap();
    let json = out_dir.path().join("report.json");
    let out = Command::new(BIN)
        .args(["bench", "--keep-alive", "--quiet", "--json"])
        .arg(&json)
        .args(args)
        .output()
        .expect("run bench");
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| {
        panic!(
            "bench wrote no report ({e}); {:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    serde_json::from_str(&text).expect("bench JSON")
}

/// Asks `child` to shut down as an operator would (SIGTERM). Not waited
/// for: callers wait with their own deadline. A child that has already
/// exited cannot be signalled, and that is what the caller asked for.
pub fn sigterm(child: &Child) {
    let pid = rustix::process::Pid::from_child(child);
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
}

/// Polls `done` until it holds; fails the test after `within`.
pub fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Spawns `cmd` with stderr piped, collects its stderr lines until one
/// contains `until` (that line last), then kills it. Panics with what was
/// read if no such line comes within 30 s.
pub fn stderr_until(cmd: &mut Command, until: &str) -> Vec<String> {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let found = loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => {
                let done = line.contains(until);
                lines.push(line);
                if done {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(found, "no {until:?} line; stderr:\n{}", lines.join("\n"));
    lines
}
