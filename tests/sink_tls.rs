//! `consume --sink remote-write --url https://…` into a real Prometheus 2.42
//! whose web listener speaks only TLS (`--web.config.file`,
//! `tls_server_config`): every sample queued is read back from it, the
//! committed offsets at the end. With `client_auth_type:
//! RequireAndVerifyClientCert` the sink gets in with `--tls-cert/--tls-key`
//! only; without them it delivers nothing, acknowledges nothing, says why,
//! and a restart with the right flags delivers everything. A server
//! certificate from a CA the sink does not trust is refused the same way.
//! `--tls-server-name` verifies a certificate whose only SAN is a DNS name
//! while the URL names 127.0.0.1. And `bench --url https://…` against the
//! same kind of listener, counting its handshakes.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::certs::{Ca, Pair};
use common::prometheus::{
    assert_holds_exactly, consumed_samples, now_ms, Prometheus, PrometheusConfig, Samples, WebTls,
};
use common::sink::{
    committed, dead_letters, ends, post_rw, remote_write_args, wait_committed, Consumer, Series,
};
use common::{consume_all, Server};

/// Request `i` of client `c`: 4 series, one sample each at `base + i s`.
fn request_of(c: usize, i: i64, base: i64) -> Vec<Series> {
    (0..4)
        .map(|s| {
            (
                "sink_tls_test".to_string(),
                vec![
                    ("client".to_string(), format!("c{c}")),
                    ("series".to_string(), s.to_string()),
                ],
                vec![(i as f64 * 1.5 + s as f64, base + i * 1000)],
            )
        })
        .collect()
}

/// `serve` with 2 clients × 40 requests of remote_write queued.
fn queue_samples(dir: &Path) -> Server {
    let server = Server::start(dir, &["--partitions", "2"]);
    let base = now_ms() - 30 * 60 * 1000;
    for i in 0..40 {
        for c in 0..2 {
            post_rw(&server, &format!("client-{c}"), &request_of(c, i, base));
        }
    }
    server
}

/// What the queue holds, as the store should print it, and each partition's end.
fn queued(data: &Path) -> (Samples, BTreeMap<u32, u64>) {
    let lines = consume_all(data, "reference");
    (consumed_samples(&lines), ends(&lines))
}

fn stored(p: &Prometheus) -> Samples {
    p.raw_samples(
        r#"{__name__="sink_tls_test"}"#,
        now_ms() + 60_000,
        3 * 3600 * 1000,
    )
}

/// The store holds exactly `expected`: nothing missing, nothing else.
fn assert_store_has(p: &Prometheus, expected: &Samples, log: &str) {
    let total = assert_holds_exactly(p, r#"{__name__="sink_tls_test"}"#, expected, log);
    eprintln!(
        "{total} samples in {} series read back over https",
        expected.len()
    );
}

/// A Prometheus store (remote_write receiver) whose web listener is TLS.
fn tls_store(web_tls: WebTls) -> Prometheus {
    Prometheus::launch(PrometheusConfig {
        receiver: true,
        web_tls: Some(web_tls),
        ..PrometheusConfig::default()
    })
}

fn web_tls(ca: &Ca, server: Pair) -> WebTls {
    WebTls {
        server,
        ca: ca.pem.clone(),
        client_ca: None,
        harness_client: None,
        harness_server_name: None,
    }
}

fn https_url(p: &Prometheus) -> String {
    assert_eq!(p.scheme(), "https");
    format!("https://{}/api/v1/write", p.addr)
}

fn args<'a>(base: &'a [String], more: &[&'a str]) -> Vec<&'a str> {
    let mut out: Vec<&str> = base.iter().map(String::as_str).collect();
    out.extend(more);
    out
}

/// Runs `consume` with `args` until `--exit-at-end` ends it, then checks
/// that every queued sample is in `store` and every offset committed.
fn delivers_everything(data: &Path, group: &str, store: &Prometheus, args: &[&str]) {
    let mut all = args.to_vec();
    all.push("--exit-at-end");
    let mut consumer = Consumer::start(data, group, &all);
    let status = consumer.wait(Duration::from_secs(90));
    assert!(status.success(), "{status:?}: {}", consumer.log_text());
    let (expected, ends) = queued(data);
    wait_committed(data, group, &ends, Duration::from_secs(5), &|| {
        consumer.log_text()
    });
    assert_store_has(store, &expected, &consumer.log_text());
    assert!(dead_letters(data, group).is_empty());
}

/// Runs `consume` with `args` for a few seconds against a store that
/// refuses its TLS: the log names the handshake failure (`expect`), nothing
/// is committed, dead-lettered or stored. Ends it with SIGTERM.
fn delivers_nothing(data: &Path, group: &str, store: &Prometheus, args: &[&str], expect: &str) {
    let mut all = args.to_vec();
    all.extend(["--shutdown-timeout", "1s"]);
    let mut consumer = Consumer::start(data, group, &all);
    let start = Instant::now();
    // Several attempts, so a retry that got through would have shown.
    while consumer.log_text().matches("TLS handshake").count() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no TLS handshake failure logged; consume log:\n{}",
            consumer.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    let status = consumer.terminate(Duration::from_secs(15));
    let log = consumer.log_text();
    assert!(status.success(), "{status:?}: {log}");
    assert!(
        log.contains(expect),
        "expected {expect:?} in the log:\n{log}"
    );
    let c = committed(data, group);
    assert!(
        c.values().all(|&o| o == 0),
        "offsets moved although nothing was delivered: {c:?}\n{log}"
    );
    assert!(
        dead_letters(data, group).is_empty(),
        "dead-lettered:\n{log}"
    );
    assert!(
        stored(store).is_empty(),
        "the store has samples although every handshake failed"
    );
}

#[test]
fn every_sample_reaches_a_prometheus_whose_listener_is_tls() {
    let dir = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new(certs.path(), "store");
    let store = tls_store(web_tls(&ca, ca.server(certs.path(), "prometheus", &[])));
    let _server = queue_samples(dir.path());
    let ca_pem = ca.pem.to_str().unwrap();
    let base = remote_write_args(&https_url(&store));
    delivers_everything(
        dir.path(),
        "tls",
        &store,
        &args(&base, &["--tls-ca", ca_pem]),
    );
}

#[test]
fn mutual_tls_without_a_client_certificate_delivers_nothing_until_given_one() {
    let dir = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new(certs.path(), "store");
    let clients = Ca::new(certs.path(), "clients");
    let store = tls_store(WebTls {
        client_ca: Some(clients.pem.clone()),
        harness_client: Some(clients.client(certs.path(), "harness", "harness")),
        ..web_tls(&ca, ca.server(certs.path(), "prometheus", &[]))
    });
    let _server = queue_samples(dir.path());
    let sink = clients.client(certs.path(), "sink", "metricstream-sink");
    let base = remote_write_args(&https_url(&store));
    let ca_pem = ca.pem.to_str().unwrap();
    // Prometheus (Go's TLS) asks for the certificate and, given none,
    // answers with the alert "bad certificate".
    delivers_nothing(
        dir.path(),
        "mtls",
        &store,
        &args(&base, &["--tls-ca", ca_pem]),
        "BadCertificate",
    );
    // The same group, restarted with the certificate: all of it.
    delivers_everything(
        dir.path(),
        "mtls",
        &store,
        &args(
            &base,
            &[
                "--tls-ca",
                ca_pem,
                "--tls-cert",
                sink.cert.to_str().unwrap(),
                "--tls-key",
                sink.key.to_str().unwrap(),
            ],
        ),
    );
}

#[test]
fn a_server_certificate_from_another_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let ours = Ca::new(certs.path(), "ours");
    let theirs = Ca::new(certs.path(), "theirs");
    let store = tls_store(web_tls(
        &theirs,
        theirs.server(certs.path(), "impostor", &[]),
    ));
    let _server = queue_samples(dir.path());
    let base = remote_write_args(&https_url(&store));
    delivers_nothing(
        dir.path(),
        "other-ca",
        &store,
        &args(&base, &["--tls-ca", ours.pem.to_str().unwrap()]),
        "UnknownIssuer",
    );
}

/// A certificate whose only SAN is the DNS name `name`, signed by `ca`.
fn dns_only_server(ca: &Ca, dir: &Path, name: &str) -> Pair {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    let pair = Pair {
        cert: dir.join("dns-only.pem"),
        key: dir.join("dns-only-key.pem"),
    };
    std::fs::write(&pair.cert, cert.pem()).unwrap();
    std::fs::write(&pair.key, key.serialize_pem()).unwrap();
    pair
}

#[test]
fn tls_server_name_verifies_a_dns_name_while_the_url_names_an_ip() {
    let dir = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new(certs.path(), "store");
    let store = tls_store(WebTls {
        harness_server_name: Some("store.internal".into()),
        ..web_tls(&ca, dns_only_server(&ca, certs.path(), "store.internal"))
    });
    let _server = queue_samples(dir.path());
    let url = https_url(&store);
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let base = remote_write_args(&url);
    let ca_pem = ca.pem.to_str().unwrap();
    // The URL's IP is not in the certificate.
    delivers_nothing(
        dir.path(),
        "by-name",
        &store,
        &args(&base, &["--tls-ca", ca_pem]),
        "certificate not valid for name \"127.0.0.1\"",
    );
    delivers_everything(
        dir.path(),
        "by-name",
        &store,
        &args(
            &base,
            &["--tls-ca", ca_pem, "--tls-server-name", "store.internal"],
        ),
    );
}

/// `metricstream bench` with `args`; its JSON report.
fn bench(args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let out = std::process::Command::new(common::BIN)
        .arg("bench")
        .args(args)
        .arg("--json")
        .arg(&json)
        .arg("--quiet")
        .output()
        .expect("run bench");
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| {
        panic!(
            "no report ({e}): {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    serde_json::from_str(&text).unwrap()
}

#[test]
fn bench_over_https_counts_its_handshakes() {
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new(certs.path(), "store");
    let store = tls_store(web_tls(&ca, ca.server(certs.path(), "prometheus", &[])));
    let url = https_url(&store);
    let ca_pem = ca.pem.to_str().unwrap();
    let common = [
        "--url",
        url.as_str(),
        "--format",
        "remote-write",
        "--samples-per-request",
        "100",
        "--clients",
        "4",
        "--requests",
        "25",
        "--tls-ca",
        ca_pem,
    ];
    // A new connection per request: one handshake each.
    let r = bench(&[&common[..], &["--new-connection"]].concat());
    assert_eq!(
        (r["total"].as_u64(), r["failed"].as_u64()),
        (Some(100), Some(0)),
        "{r}"
    );
    assert_eq!(r["connections_opened"], 100, "{r}");
    assert!(r["tls_resumed"].as_u64().is_some(), "{r}");
    assert!(r["connections_per_sec"].as_f64().unwrap() > 0.0, "{r}");
    // Keep-alive: one handshake per client.
    let r = bench(&[&common[..], &["--keep-alive"]].concat());
    assert_eq!(
        (r["total"].as_u64(), r["failed"].as_u64()),
        (Some(100), Some(0)),
        "{r}"
    );
    assert_eq!(r["connections_opened"], 4, "{r}");
    // Bench's samples are in the store: it really went through.
    let names = store.series_names();
    assert!(names.iter().any(|n| n.starts_with("node_")), "{names:?}");
    // Another CA: every request a TLS failure, nothing else.
    let other = Ca::new(certs.path(), "other");
    let mut refused = common.to_vec();
    let at = refused.iter().position(|a| *a == ca_pem).unwrap();
    refused[at] = other.pem.to_str().unwrap();
    let r = bench(&refused);
    assert_eq!(r["successful"], 0, "{r}");
    assert_eq!(r["failures"]["tls_error"], 100, "{r}");
}
