//! Line protocol from InfluxDB's own Python client (`influxdb-client`, the
//! 2.x API with `Authorization: Token`): `tests/clients/influx_client.py`
//! writes every field type in every precision to the real `metricstream
//! serve` and prints what must have been stored; `metricstream consume`
//! must print exactly that, value for value (int64 and uint64 extremes
//! exact, sub-millisecond timestamps kept in `timestamp_ns`).
//!
//! Needs Python with influxdb-client at `METRICSTREAM_PYTHON`:
//! `./scripts/test.sh` (or `source scripts/deps.sh`) installs and sets it.
//! Without it the test fails, saying so: it never skips.

mod common;

use std::process::Command;

use common::{consume_all, Server};
use serde_json::Value;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/clients/influx_client.py"
);

fn python() -> String {
    let hint = "run ./scripts/test.sh, or `source scripts/deps.sh` (it installs influxdb-client \
                in a venv and exports METRICSTREAM_PYTHON), then run it again";
    let python = std::env::var("METRICSTREAM_PYTHON")
        .unwrap_or_else(|_| panic!("METRICSTREAM_PYTHON is not set: {hint}"));
    let out = Command::new(&python)
        .args(["-c", "import influxdb_client"])
        .output()
        .unwrap_or_else(|e| panic!("METRICSTREAM_PYTHON={python} cannot be run ({e}): {hint}"));
    assert!(
        out.status.success(),
        "METRICSTREAM_PYTHON={python} lacks influxdb-client: {hint}. {}",
        String::from_utf8_lossy(&out.stderr)
    );
    python
}

#[test]
fn influxdb_client_writes_are_stored_value_for_value() {
    let python = python();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--api-key", "telegraf:s3cret"]);
    let out = Command::new(&python)
        .arg(SCRIPT)
        .arg(format!("http://{}", server.addr))
        .arg("s3cret")
        .output()
        .expect("run the client");
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut expected = Vec::new();
    let mut refused = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if let Some(e) = v.get("expect") {
            expected.push(e.clone());
        } else {
            refused.push(v["refused"].clone());
        }
    }
    assert_eq!(expected.len(), 4 * 5 + 1);

    // The string field: 400 with InfluxDB 2.x's error, naming line and field.
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["status"], 400, "{refused:?}");
    let message = &refused[0]["message"];
    assert_eq!(message["code"], "invalid", "{message}");
    let text = message["message"].as_str().unwrap();
    assert!(
        text.starts_with("partial write:") && text.contains("line 1: string field \"version\""),
        "{text}"
    );

    let mut got: Vec<Value> = consume_all(dir.path(), "check")
        .into_iter()
        .map(|mut line| {
            assert_eq!(line["client_id"], "telegraf", "{line}");
            assert_eq!(line["type"], "unknown", "{line}");
            let m = line.as_object_mut().unwrap();
            for k in ["client_id", "partition", "offset", "received_at", "type"] {
                m.remove(k);
            }
            line
        })
        .collect();
    let key = |v: &Value| v.to_string();
    got.sort_by_key(key);
    expected.sort_by_key(key);
    assert_eq!(got.len(), expected.len(), "got {got:#?}");
    for (g, e) in got.iter().zip(&expected) {
        // Exact: serde_json keeps u64 and i64 as integers, floats as floats.
        assert_eq!(g, e);
    }
    // The extremes really are integers in what consume printed.
    assert!(got.iter().any(|g| g["value"].as_u64() == Some(u64::MAX)));
    assert!(got.iter().any(|g| g["value"].as_i64() == Some(i64::MAX)));
}
