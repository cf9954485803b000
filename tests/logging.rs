//! `--log-format json`: one JSON object per stderr line, and no colour
//! codes when stderr is not a terminal.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn json_lines_without_colour() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_metricstream"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(["--log-format", "json"])
        .env("METRICSTREAM_LOG", "info")
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn metricstream");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let serving = line.contains("metricstream serving");
            if tx.send(line).is_err() || serving {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let serving = loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line.contains("metricstream serving") => break line,
            Ok(line) => lines.push(line),
            Err(e) => {
                let _ = child.kill();
                panic!(
                    "no serving line ({e}); stderr so far:\n{}",
                    lines.join("\n")
                );
            }
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    lines.push(serving.clone());
    for line in &lines {
        assert!(!line.contains('\x1b'), "colour code in {line:?}");
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(line);
        assert!(parsed.is_ok(), "not JSON: {line:?}");
    }
    let event: serde_json::Value = serde_json::from_str(&serving).unwrap();
    let listen = event["fields"]["listen"].as_str().unwrap_or_default();
    assert!(listen.starts_with("127.0.0.1:"), "{serving}");
    assert_ne!(listen, "127.0.0.1:0", "{serving}");
}
