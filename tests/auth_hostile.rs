//! With API keys on, no request without a valid key stores anything, and no
//! key, right or wrong, reaches the server's output or its data directory:
//! only the key's NAME is stored, as the client id.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::report::{record, Figures};
use common::{consume_all, cpp_body, request, wait_for, BIN};

const WEB_SECRET: &str = "web-secret-7f3a9c21e8b4d6";
const DB_SECRET: &str = "db-secret-0c5e1b94aa27f3";

/// A server whose stdout and stderr go to files, so every byte it printed
/// can be searched afterwards, at the log level given.
struct Logged {
    child: Child,
    addr: std::net::SocketAddr,
    out: PathBuf,
    err: PathBuf,
}

impl Logged {
    fn start(dir: &Path, level: &str, extra: &[&str]) -> Logged {
        let out = dir.join(format!("stdout-{level}"));
        let err = dir.join(format!("stderr-{level}"));
        let child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--rate-limit", "0"])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(extra)
            .env("METRICSTREAM_LOG", level)
            .env("NO_COLOR", "1")
            .stdout(Stdio::from(File::create(&out).unwrap()))
            .stderr(Stdio::from(File::create(&err).unwrap()))
            .spawn()
            .expect("spawn metricstream");
        let mut addr = None;
        wait_for("the server to listen", Duration::from_secs(30), || {
            let text = std::fs::read_to_string(&err).unwrap_or_default();
            addr = text
                .split_once("listen=")
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .and_then(|a| a.trim_matches('"').parse().ok());
            addr.is_some()
        });
        Logged {
            child,
            addr: addr.unwrap(),
            out,
            err,
        }
    }

    /// SIGTERM, wait for the exit, return everything it printed.
    fn stop(&mut self) -> Vec<u8> {
        common::sigterm(&self.child);
        let start = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        [
            std::fs::read(&self.out).unwrap(),
            std::fs::read(&self.err).unwrap(),
        ]
        .concat()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every request that must not get in: its name and Authorization headers.
fn unauthorized() -> Vec<(&'static str, Vec<String>)> {
    let b = |s: &str| vec![format!("Bearer {s}")];
    vec![
        ("no Authorization header", vec![]),
        ("wrong secret", b("wrong-secret-91be0d77c3a5")),
        (
            "the other key's name with a wrong secret",
            b("db:wrong-secret-5d2f8e"),
        ),
        (
            "NAME:SECRET instead of the secret",
            b(&format!("web:{WEB_SECRET}")),
        ),
        ("the name alone", b("web")),
        (
            "a prefix of the secret",
            b(&WEB_SECRET[..WEB_SECRET.len() - 1]),
        ),
        ("the secret with a byte more", b(&format!("{WEB_SECRET}x"))),
        ("the secret twice", b(&format!("{WEB_SECRET}{WEB_SECRET}"))),
        (
            "the secret and another value",
            b(&format!("{WEB_SECRET},{DB_SECRET}")),
        ),
        (
            "the secret with a different case",
            b(&WEB_SECRET.to_uppercase()),
        ),
        ("empty header", vec![String::new()]),
        ("Bearer and nothing", b("")),
        ("non-ASCII secret", b(&format!("{WEB_SECRET}é"))),
        ("Basic scheme", vec![format!("Basic {WEB_SECRET}")]),
        ("no scheme", vec![WEB_SECRET.to_string()]),
        (
            "a valid and a wrong header",
            vec![
                format!("Bearer {WEB_SECRET}"),
                "Bearer wrong-secret-2".into(),
            ],
        ),
        (
            "a wrong and a valid header",
            vec![
                "Bearer wrong-secret-3".into(),
                format!("Bearer {WEB_SECRET}"),
            ],
        ),
        (
            "the valid header twice",
            vec![format!("Bearer {WEB_SECRET}"); 2],
        ),
        ("an 8 KB key", b(&"k".repeat(8 * 1024))),
        ("a 64 KB key", b(&"k".repeat(64 * 1024))),
    ]
}

/// Any of `needles` in `haystack`, by name.
fn found(haystack: &[u8], needles: &[String]) -> Vec<String> {
    needles
        .iter()
        .filter(|n| haystack.windows(n.len()).any(|w| w == n.as_bytes()))
        .cloned()
        .collect()
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn batches_stored(addr: std::net::SocketAddr) -> u64 {
    request(addr, "GET", "/stats", &[], b"").json()["batches_processed"]
        .as_u64()
        .expect("batches_processed in /stats")
}

#[test]
fn without_a_valid_key_nothing_is_stored_and_no_key_is_ever_printed() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, format!("# second key\ndb:{DB_SECRET}\n")).unwrap();
    let web_key = format!("web:{WEB_SECRET}");
    let extra = [
        "--api-key",
        &web_key,
        "--api-keys-file",
        keys.to_str().unwrap(),
    ];
    let rows = unauthorized();

    let mut acknowledged = 0;
    let mut refused = 0;
    let mut printed = Vec::new();
    // debug and trace: the levels where a careless `?headers` would show up.
    for level in ["debug", "trace"] {
        let mut s = Logged::start(dir.path(), level, &extra);
        for (name, auth) in &rows {
            let before = batches_stored(s.addr);
            let headers: Vec<(&str, &str)> =
                auth.iter().map(|v| ("Authorization", v.as_str())).collect();
            let r = request(
                s.addr,
                "POST",
                "/metrics",
                &headers,
                cpp_body(name, 0).as_bytes(),
            );
            // 401, or 431 where the key alone is over the header limit.
            assert!(
                r.status == 401 || name.contains("64 KB") && r.status == 431,
                "{name}: {r:?}"
            );
            assert_eq!(batches_stored(s.addr), before, "{name}: stored a batch");
            refused += 1;
        }
        // The scheme is case-insensitive (RFC 9110).
        for auth in [
            format!("Bearer {WEB_SECRET}"),
            format!("bearer {DB_SECRET}"),
        ] {
            let r = request(
                s.addr,
                "POST",
                "/metrics",
                &[("Authorization", &auth)],
                cpp_body(level, 1).as_bytes(),
            );
            assert_eq!(r.status, 200, "{r:?}");
            acknowledged += 1;
        }
        // Counters start at zero in each process: only these two got in.
        assert_eq!(batches_stored(s.addr), 2);
        printed.extend(s.stop());
    }

    // Stored: exactly the valid batches, under the keys' names.
    let data = dir.path().join("data");
    let lines = consume_all(&data, "auth-check");
    // What the log holds, decoded (its records are compressed: a search of
    // the raw files alone would not see a key stored in them).
    let decoded: Vec<u8> = lines
        .iter()
        .flat_map(|l| format!("{l}\n").into_bytes())
        .collect();
    let lines: common::Lines = std::sync::Arc::new(std::sync::Mutex::new(lines));
    let batches = common::batches(&lines);
    assert_eq!(batches.len() as u64, acknowledged);
    for l in lines.lock().unwrap().iter() {
        let client = l["client_id"].as_str().unwrap();
        assert!(client == "web" || client == "db", "client id {client:?}");
    }

    // No key, right or wrong, in anything printed or stored.
    let mut needles: Vec<String> = vec![WEB_SECRET.into(), DB_SECRET.into()];
    needles.extend(
        rows.iter()
            .flat_map(|(_, auth)| auth.iter())
            .map(|v| v.trim_start_matches("Bearer ").trim().to_string())
            .filter(|v| v.len() >= 8 && v.contains("secret")),
    );
    assert!(printed.len() > 100, "the server printed almost nothing");
    assert_eq!(
        found(&printed, &needles),
        Vec::<String>::new(),
        "keys in the server's output"
    );
    let mut files = Vec::new();
    files_under(&data, &mut files);
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        assert_eq!(
            found(&bytes, &needles),
            Vec::<String>::new(),
            "keys in {}",
            f.display()
        );
    }
    assert_eq!(
        found(&decoded, &needles),
        Vec::<String>::new(),
        "keys in the records read back"
    );
    // The search does find what is there: the names are stored.
    assert_eq!(
        found(&decoded, &["\"web\"".into(), "\"db\"".into()]).len(),
        2
    );

    record(Figures {
        scenario: "auth: no key, no storage",
        checks: "with API keys on, requests without a valid key (missing, wrong, prefix, trailing bytes, non-ASCII, duplicate header, wrong scheme, huge) get 401 and store nothing; no key appears in debug/trace output or the data dir",
        acknowledged,
        lost: 0,
        duplicated: 0,
        recovery_ms: 0,
        detail: format!(
            "{refused} unauthorized requests: 0 stored; {} needles searched in {} bytes of output and {} files: 0 found",
            needles.len(),
            printed.len(),
            files.len()
        ),
    });
}
