//! `--config FILE` / `METRICSTREAM_CONFIG` with the real binary, where the
//! environment can take part: command line > environment > file > default.

mod common;

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_metricstream");

#[test]
fn flag_beats_env_beats_file_beats_default() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("metricstream.toml");
    std::fs::write(
        &config,
        "partitions = 5\nworkers = 7\n[serve]\nack = \"accepted\"\n",
    )
    .unwrap();
    let lines = common::stderr_until(
        Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--workers", "1"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .env("METRICSTREAM_CONFIG", &config)
            .env("METRICSTREAM_PARTITIONS", "3")
            .env("METRICSTREAM_WORKERS", "2")
            .env("METRICSTREAM_LOG", "info"),
        "starting",
    );
    let line = lines.last().expect("a starting line");
    assert!(line.contains("workers=1"), "the flag wins: {line}");
    assert!(
        line.contains("partitions=3"),
        "the environment wins: {line}"
    );
    assert!(line.contains("ack=Accepted"), "the file wins: {line}");
    assert!(line.contains("queue=File"), "the default stays: {line}");
}

#[test]
fn an_unknown_key_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("x.toml");
    std::fs::write(&config, "[serve]\ndata-dri = \"/d\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env_remove("METRICSTREAM_CONFIG")
        .output()
        .expect("run metricstream");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "config file {}: [serve] unknown key \"data-dri\"",
        config.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
}
