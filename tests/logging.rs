//! `--log-format json`: one JSON object per stderr line, and no colour
//! codes when stderr is not a terminal.

mod common;

use std::process::Command;

#[test]
fn json_lines_without_colour() {
    let dir = tempfile::tempdir().unwrap();
    let lines = common::stderr_until(
        Command::new(env!("CARGO_BIN_EXE_metricstream"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .args(["--log-format", "json"])
            .env("METRICSTREAM_LOG", "info")
            .env_remove("NO_COLOR"),
        "metricstream serving",
    );
    let serving = lines.last().expect("a serving line").clone();
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
