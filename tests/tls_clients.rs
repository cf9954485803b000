//! Real clients of others sending to `serve` over TLS, with certificates
//! made by the test (tests/common/certs.rs):
//!
//! - Prometheus 2.42 remote-writing over mutual TLS (`tls_config: {ca_file,
//!   cert_file, key_file}`) to a `serve` with API keys configured, and no
//!   key on Prometheus: its client certificate is its credential. Every
//!   sample Prometheus holds for the window is read back by `consume`,
//!   stored under the certificate's CN.
//! - InfluxDB's Python client and the OpenTelemetry Python SDK over https
//!   with the test CA and a client certificate: every point read back.
//!
//! Needs Prometheus and the venv of `scripts/deps.sh`; fails saying so.

mod common;

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::broker::free_port;
use common::certs::Ca;
use common::prometheus::{
    consumed_samples, missing_from, NodeExporter, Prometheus, PrometheusConfig, RemoteWriteConfig,
};
use common::{consume_all, Server};
use serde_json::Value;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn prometheus_remote_writes_over_mutual_tls_with_its_certificate_as_credential() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path();
    let ca = Ca::new(certs, "main");
    let server_pair = ca.server(certs, "server", &[]);
    let prom_pair = ca.client(certs, "prometheus", "prom-mtls");
    let data = dir.path().join("data");
    let listen = format!("127.0.0.1:{}", free_port());
    let mut server = Server::start(
        &data,
        &[
            "--listen",
            &listen,
            "--api-key",
            "other:s3cret",
            "--tls-cert",
            server_pair.cert.to_str().unwrap(),
            "--tls-key",
            server_pair.key.to_str().unwrap(),
            "--tls-client-ca",
            ca.pem.to_str().unwrap(),
        ],
    );
    let node = NodeExporter::start();
    let started = now_ms();
    let prom = Prometheus::launch(PrometheusConfig {
        scrape: vec![node.addr],
        scrape_self: true,
        remote_write: Some(RemoteWriteConfig {
            tls_ca_file: Some(ca.pem.clone()),
            tls_cert_file: Some(prom_pair.cert.clone()),
            tls_key_file: Some(prom_pair.key.clone()),
            ..RemoteWriteConfig::new(format!("https://{listen}/api/v1/write"))
        }),
        ..PrometheusConfig::default()
    });
    std::thread::sleep(Duration::from_secs(15));
    let window_end = now_ms() - 1_000;
    prom.wait_sent_past(window_end);
    let expected = prom.raw_samples(r#"{__name__=~".+"}"#, window_end, window_end - started);
    let failed = prom.own_metric("prometheus_remote_storage_samples_failed_total");
    let dropped = prom.own_metric("prometheus_remote_storage_samples_dropped_total");
    let retried = prom.own_metric("prometheus_remote_storage_samples_retried_total");
    drop(prom);
    let status = server.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status:?}");

    let samples: usize = expected.values().map(|p| p.len()).sum();
    assert!(
        samples > 3_000,
        "only {samples} samples in Prometheus' window"
    );
    assert_eq!(failed, 0.0, "Prometheus counted failed samples");
    assert_eq!(dropped, 0.0, "Prometheus counted dropped samples");
    assert_eq!(retried, 0.0, "Prometheus retried samples");
    let lines = consume_all(&data, "check");
    assert!(
        lines.iter().all(|l| l["client_id"] == "prom-mtls"),
        "stored under another client id than the certificate's CN"
    );
    let consumed = consumed_samples(&lines);
    let missing = missing_from(&expected, &consumed, usize::MAX);
    assert!(
        missing.is_empty(),
        "{} of {samples} samples in Prometheus' TSDB are not in what consume read; the first:\n{}",
        missing.len(),
        missing[..missing.len().min(20)].join("\n")
    );
    eprintln!(
        "Prometheus over mutual TLS: {samples} samples in {} series read back",
        expected.len()
    );
}

fn python(module: &str) -> String {
    let hint = "run ./scripts/test.sh, or `source scripts/deps.sh` (it installs the Python \
                clients in a venv and exports METRICSTREAM_PYTHON), then run it again";
    let python = std::env::var("METRICSTREAM_PYTHON")
        .unwrap_or_else(|_| panic!("METRICSTREAM_PYTHON is not set: {hint}"));
    let out = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .unwrap_or_else(|e| panic!("METRICSTREAM_PYTHON={python} cannot be run ({e}): {hint}"));
    assert!(
        out.status.success(),
        "METRICSTREAM_PYTHON={python} lacks {module}: {hint}. {}",
        String::from_utf8_lossy(&out.stderr)
    );
    python
}

/// A `serve` over mutual TLS (client certificates optional), with an API
/// key if `keyed`, and a client pair with CN `cn`.
fn mtls_server(dir: &std::path::Path, cn: &str, keyed: bool) -> (Server, Ca, common::certs::Pair) {
    let ca = Ca::new(dir, "main");
    let server_pair = ca.server(dir, "server", &[]);
    let client = ca.client(dir, "client", cn);
    let key: &[&str] = if keyed {
        &["--api-key", "telegraf:s3cret"]
    } else {
        &[]
    };
    let server = Server::start(
        &dir.join("data"),
        &[
            key,
            &[
                "--tls-cert",
                server_pair.cert.to_str().unwrap(),
                "--tls-key",
                server_pair.key.to_str().unwrap(),
                "--tls-client-ca",
                ca.pem.to_str().unwrap(),
                "--tls-client-auth",
                "optional",
            ],
        ]
        .concat(),
    );
    (server, ca, client)
}

/// Sorted JSON texts of `lines` without the fields the clients do not set.
fn comparable(lines: Vec<Value>, drop: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = lines
        .into_iter()
        .map(|mut l| {
            let m = l.as_object_mut().unwrap();
            for k in drop {
                m.remove(*k);
            }
            l.to_string()
        })
        .collect();
    out.sort();
    out
}

#[test]
fn influxdb_python_client_over_https_every_point_stored() {
    let python = python("influxdb_client");
    let dir = tempfile::tempdir().unwrap();
    let (mut server, ca, client) = mtls_server(dir.path(), "influx-agent", true);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/influx_client.py"
    );
    // Its API key and its certificate: the key names it (the key wins).
    let out = Command::new(&python)
        .arg(script)
        .arg(format!("https://localhost:{}", server.addr.port()))
        .arg("s3cret")
        .arg(&ca.pem)
        .arg(&client.cert)
        .arg(&client.key)
        .output()
        .expect("run the client");
    assert!(
        out.status.success(),
        "client failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );
    let mut expected = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if let Some(e) = v.get("expect") {
            expected.push(e.clone());
        } else {
            assert_eq!(v["refused"]["status"], 400, "{v}");
        }
    }
    assert_eq!(expected.len(), 4 * 5 + 1);
    server.terminate(Duration::from_secs(15));
    let lines = consume_all(&dir.path().join("data"), "check");
    assert!(
        lines.iter().all(|l| l["client_id"] == "telegraf"),
        "{lines:?}"
    );
    let got = comparable(
        lines,
        &["client_id", "partition", "offset", "received_at", "type"],
    );
    let want = comparable(expected, &[]);
    assert_eq!(got, want);
}

#[test]
fn opentelemetry_sdk_over_https_every_point_stored() {
    let python = python("opentelemetry.exporter.otlp.proto.http.metric_exporter");
    let dir = tempfile::tempdir().unwrap();
    let (mut server, ca, client) = mtls_server(dir.path(), "otel-agent", false);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/otlp_sdk.py");
    let url = format!("https://localhost:{}/v1/metrics", server.addr.port());
    // requests (the SDK's transport) lets these variables override the CA
    // file the exporter sets on its session; a machine's own would then
    // hide the test CA.
    let out = Command::new(&python)
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE")
        .arg(script)
        .args([url.as_str(), "gzip", "tls-svc", "cumulative"])
        .arg(&ca.pem)
        .arg(&client.cert)
        .arg(&client.key)
        .output()
        .expect("run the SDK");
    assert!(
        out.status.success(),
        "the SDK failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        printed["export"],
        "SUCCESS",
        "the SDK's export failed: {}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );
    let expected = printed["expected"].as_array().unwrap().clone();
    assert!(expected.len() > 10, "{expected:?}");
    server.terminate(Duration::from_secs(15));
    let lines = consume_all(&dir.path().join("data"), "check");
    // No keys: the certificate names the client, not the SDK's
    // `Authorization: otel-sdk` header.
    assert!(
        lines.iter().all(|l| l["client_id"] == "otel-agent"),
        "{lines:?}"
    );
    // Every point, by name and value (the plain-HTTP test compares tags
    // and times too; the transport cannot change those).
    let key = |v: &Value| format!("{} {}", v["name"], v["value"]);
    let mut got: Vec<String> = lines.iter().map(key).collect();
    let mut want: Vec<String> = expected.iter().map(key).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
}
