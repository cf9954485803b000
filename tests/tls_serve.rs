//! `serve` over TLS and mutual TLS, against the real binary with
//! certificates made by the test (tests/common/certs.rs) and rustls /
//! hyper clients: TLS 1.2 and 1.3, ALPN h2 and http/1.1, the refusals
//! (each with nothing stored), how a certificate names the client, reload
//! under load, and the slow-client defences on the TLS port.

mod common;

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::certs::{Ca, Pair};
use common::report::{record, Figures};
use common::tls::{self as https, Offer};
use common::{consume_all, cpp_body, Server};

const JSON: (&str, &str) = ("Content-Type", "application/json");
/// What a noisy shared machine may add to a timeout before we call it missed.
const SLACK: Duration = Duration::from_secs(4);

/// A CA, the server's pair from it, and the flags that serve them.
struct Setup {
    dir: tempfile::TempDir,
    ca: Ca,
    server: Pair,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new(dir.path(), "main");
        let server = ca.server(dir.path(), "server", &[]);
        Setup { dir, ca, server }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn data(&self) -> std::path::PathBuf {
        self.path().join("data")
    }

    /// `serve` with TLS, the client CA if `mtls` (`auth`: required or
    /// optional), and `extra` flags.
    fn start(&self, mtls: Option<&str>, extra: &[&str]) -> Server {
        let mut args: Vec<String> = vec![
            "--tls-cert".into(),
            self.server.cert.display().to_string(),
            "--tls-key".into(),
            self.server.key.display().to_string(),
        ];
        if let Some(auth) = mtls {
            args.push("--tls-client-ca".into());
            args.push(self.ca.pem.display().to_string());
            args.push("--tls-client-auth".into());
            args.push(auth.into());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Server::start(&self.data(), &args)
    }
}

/// The `client_id` and `seq` tag of every stored batch (its first metric,
/// the only one with a `seq`).
fn stored(data: &Path) -> Vec<(String, String)> {
    consume_all(data, "verify")
        .into_iter()
        .filter(|l| l["tags"]["seq"].is_string())
        .map(|l| {
            (
                l["client_id"].as_str().unwrap_or("").to_string(),
                l["tags"]["seq"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn post(
    addr: SocketAddr,
    offer: &Offer,
    seq: u64,
    headers: &[(&str, &str)],
) -> std::io::Result<common::Response> {
    let mut h = vec![JSON];
    h.extend_from_slice(headers);
    https::request(
        addr,
        &offer.config(),
        "POST",
        "/metrics",
        &h,
        cpp_body("tls", seq).as_bytes(),
    )
}

#[test]
fn tls_1_2_and_1_3_each_store_a_batch() {
    let setup = Setup::new();
    let mut s = setup.start(None, &[]);
    for (seq, version) in [
        (1u64, &rustls::version::TLS12),
        (2, &rustls::version::TLS13),
    ] {
        let offer = Offer {
            versions: &[version],
            ..Offer::new(&setup.ca.pem)
        };
        let mut stream = https::connect(s.addr, &offer.config()).unwrap();
        assert_eq!(
            stream.conn.protocol_version(),
            Some(version.version),
            "negotiated"
        );
        let r = https::exchange(
            &mut stream,
            "POST",
            "/metrics",
            &[JSON, ("Authorization", "v-client")],
            cpp_body("tls", seq).as_bytes(),
        )
        .unwrap();
        assert_eq!(r.status, 200, "{r:?}");
    }
    s.terminate(Duration::from_secs(20));
    let seqs: BTreeSet<String> = stored(&s.data_dir).into_iter().map(|(_, q)| q).collect();
    assert_eq!(seqs, ["1", "2"].map(String::from).into());
}

/// One POST over HTTP/2 (hyper's client over tokio-rustls): the ALPN the
/// server chose and the status.
fn post_h2(addr: SocketAddr, offer: &Offer, seq: u64) -> (Option<Vec<u8>>, u16) {
    use http_body_util::{BodyExt, Full};
    let config = offer.config();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .unwrap();
        let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        let (mut sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tls),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        let req = hyper::Request::post("https://localhost/metrics")
            .header("content-type", "application/json")
            .header("authorization", "h2-client")
            .body(Full::new(bytes::Bytes::from(cpp_body("tls", seq))))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(
            status == 200,
            "{status}: {}",
            String::from_utf8_lossy(&body)
        );
        (alpn, status)
    })
}

#[test]
fn alpn_h2_and_http_1_1_each_store_a_batch() {
    let setup = Setup::new();
    let mut s = setup.start(None, &[]);
    let h2 = Offer {
        alpn: &[b"h2", b"http/1.1"],
        ..Offer::new(&setup.ca.pem)
    };
    assert_eq!(post_h2(s.addr, &h2, 1), (Some(b"h2".to_vec()), 200));
    let h1 = Offer::new(&setup.ca.pem);
    let mut stream = https::connect(s.addr, &h1.config()).unwrap();
    assert_eq!(stream.conn.alpn_protocol(), Some(b"http/1.1".as_slice()));
    let r = https::exchange(
        &mut stream,
        "POST",
        "/metrics",
        &[JSON],
        cpp_body("tls", 2).as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    s.terminate(Duration::from_secs(20));
    let got = stored(&s.data_dir);
    let seqs: BTreeSet<&str> = got.iter().map(|(_, q)| q.as_str()).collect();
    assert_eq!(seqs, ["1", "2"].into());
    assert!(got.contains(&("h2-client".into(), "1".into())), "{got:?}");
}

/// The error a client sees for a refused handshake: the TLS failure, on
/// connect or on the first exchange (TLS 1.3 checks the client's
/// certificate after the client considers the handshake done).
fn refused(addr: SocketAddr, offer: &Offer) -> String {
    match post(addr, offer, 99, &[]) {
        Ok(r) => panic!("answered {r:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn refusals_store_nothing() {
    let setup = Setup::new();
    let dir = setup.path();
    let other_ca = Ca::new(dir, "other");
    let stranger = other_ca.client(dir, "stranger", "stranger");
    let expired = setup.ca.expired_client(dir, "expired", "old-agent");
    let mut s = setup.start(Some("required"), &[]);
    let mut seen = Vec::new();
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let base = Offer {
            versions: &[version],
            ..Offer::new(&setup.ca.pem)
        };
        let none = refused(s.addr, &base);
        let other = refused(
            s.addr,
            &Offer {
                client_cert: Some(&stranger),
                ..base
            },
        );
        let old = refused(
            s.addr,
            &Offer {
                client_cert: Some(&expired),
                versions: &[version],
                ..Offer::new(&setup.ca.pem)
            },
        );
        // What the client is told: rustls' alert for each.
        assert!(none.contains("CertificateRequired"), "{none}");
        assert!(other.contains("UnknownCA"), "{other}");
        assert!(old.contains("CertificateExpired"), "{old}");
        seen.push(format!(
            "{version:?}: no certificate: {none}; another CA: {other}; expired: {old}"
        ));
    }
    // Plain HTTP to the TLS port: a plain 400 that says what to do.
    let plain = common::request(
        s.addr,
        "POST",
        "/metrics",
        &[JSON],
        cpp_body("tls", 98).as_bytes(),
    );
    assert_eq!(plain.status, 400, "{plain:?}");
    assert!(
        plain.body.contains("speaks TLS") && plain.body.contains("https://"),
        "{plain:?}"
    );
    for line in &seen {
        eprintln!("refusal messages {line}");
    }
    // The server's side, by class: two of each refusal (TLS 1.3 and 1.2).
    let good = setup.ca.client(dir, "good", "metrics-reader");
    let text = https::metrics_text(s.addr, &Offer::new(&setup.ca.pem).with_cert(&good).config());
    let failures = |reason: &str| {
        https::sample(
            &text,
            &format!("metricstream_tls_handshake_failures_total{{reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(failures("no_client_certificate"), 2.0, "{text}");
    assert_eq!(failures("client_certificate_invalid"), 2.0, "{text}");
    assert_eq!(failures("client_certificate_expired"), 2.0, "{text}");
    assert_eq!(failures("plaintext_http"), 1.0, "{text}");
    s.terminate(Duration::from_secs(20));
    assert_eq!(stored(&s.data_dir), vec![], "stored by a refused client");
}

#[test]
fn optional_client_auth_admits_a_client_without_a_certificate_as_before() {
    let setup = Setup::new();
    let dir = setup.path();
    let agent = setup.ca.client(dir, "agent", "agent-7");
    let mut s = setup.start(Some("optional"), &[]);
    let r = post(
        s.addr,
        &Offer::new(&setup.ca.pem),
        1,
        &[("Authorization", "header-id")],
    )
    .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    // With a certificate its name wins over the header's free-form id.
    let r = post(
        s.addr,
        &Offer::new(&setup.ca.pem).with_cert(&agent),
        2,
        &[("Authorization", "header-id")],
    )
    .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    // A certificate of another CA is refused even when optional.
    let other = Ca::new(dir, "other").client(dir, "stranger", "stranger");
    refused(s.addr, &Offer::new(&setup.ca.pem).with_cert(&other));
    s.terminate(Duration::from_secs(20));
    let mut got = stored(&s.data_dir);
    got.sort();
    got.dedup();
    assert_eq!(
        got,
        vec![
            ("agent-7".into(), "2".into()),
            ("header-id".into(), "1".into())
        ]
    );
}

#[test]
fn with_api_keys_a_certificate_without_a_key_is_stored_under_its_cn() {
    let setup = Setup::new();
    let dir = setup.path();
    let agent = setup.ca.client(dir, "agent", "agent-7");
    let mut s = setup.start(Some("optional"), &["--api-key", "web:s3cret"]);
    let with_cert = Offer::new(&setup.ca.pem).with_cert(&agent);
    let r = post(s.addr, &with_cert, 1, &[]).unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    // A header is judged by its key alone, certificate or not.
    let r = post(s.addr, &with_cert, 2, &[("Authorization", "Bearer s3cret")]).unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let r = post(s.addr, &with_cert, 3, &[("Authorization", "Bearer wrong")]).unwrap();
    assert_eq!(r.status, 401, "{r:?}");
    // Neither key nor certificate: 401 as without TLS.
    let r = post(s.addr, &Offer::new(&setup.ca.pem), 4, &[]).unwrap();
    assert_eq!(r.status, 401, "{r:?}");
    s.terminate(Duration::from_secs(20));
    let mut got = stored(&s.data_dir);
    got.sort();
    got.dedup();
    assert_eq!(
        got,
        vec![("agent-7".into(), "1".into()), ("web".into(), "2".into())]
    );
}

fn sighup(s: &Server) {
    let pid = rustix::process::Pid::from_child(&s.child);
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
}

/// Writes `from`'s files over `to`'s, each by a rename (as an operator's
/// deploy tool would): the key first, then the certificate.
fn replace(to: &Pair, from: &Pair) {
    for (src, dst) in [(&from.key, &to.key), (&from.cert, &to.cert)] {
        let tmp = dst.with_extension("tmp");
        std::fs::copy(src, &tmp).unwrap();
        std::fs::rename(&tmp, dst).unwrap();
    }
}

/// What the load threads saw: (status or error, the certificate of a new
/// connection's handshake).
#[derive(Default)]
struct Seen {
    failures: Vec<String>,
    acked: Vec<u64>,
    certs: Vec<(Instant, Vec<u8>)>,
}

#[test]
fn certificates_rotate_under_load_without_a_failed_request() {
    let setup = Setup::new();
    let dir = setup.path();
    let live = setup.server.clone();
    let next = setup.ca.server(dir, "next", &[]);
    let next_der = metricstream::tls::pem::certificates(&next.cert).unwrap()[0].to_vec();
    let first_der = metricstream::tls::pem::certificates(&live.cert).unwrap()[0].to_vec();
    let mut s = setup.start(None, &[]);
    let config = Offer::new(&setup.ca.pem).config();
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut threads = Vec::new();
    for client in 0..4u64 {
        let (stop, seen, config, addr) = (stop.clone(), seen.clone(), config.clone(), s.addr);
        threads.push(std::thread::spawn(move || {
            let keep_alive = client % 2 == 0;
            let mut stream = None;
            let mut seq = client * 1_000_000;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                if stream.is_none() || !keep_alive {
                    match https::connect(addr, &config) {
                        Ok(c) => {
                            let der = https::server_cert(&c);
                            seen.lock().unwrap().certs.push((Instant::now(), der));
                            stream = Some(c);
                        }
                        Err(e) => {
                            seen.lock().unwrap().failures.push(format!("connect: {e}"));
                            continue;
                        }
                    }
                }
                let c = stream.as_mut().unwrap();
                let body = cpp_body("tls", seq);
                match https::exchange(c, "POST", "/metrics", &[JSON], body.as_bytes()) {
                    Ok(r) if r.status == 200 => seen.lock().unwrap().acked.push(seq),
                    Ok(r) => seen.lock().unwrap().failures.push(format!("{r:?}")),
                    Err(e) => seen.lock().unwrap().failures.push(format!("{e}")),
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }));
    }
    std::thread::sleep(Duration::from_secs(1));
    replace(&live, &next);
    let swapped = Instant::now();
    sighup(&s);
    common::wait_for("a handshake with the new certificate", SLACK, || {
        seen.lock()
            .unwrap()
            .certs
            .iter()
            .any(|(at, der)| *at > swapped && *der == next_der)
    });
    std::thread::sleep(Duration::from_secs(1));
    // A broken replacement: the old (new) certificate keeps serving.
    std::fs::write(&live.key, "not a key\n").unwrap();
    let broken = Instant::now();
    sighup(&s);
    common::wait_for("the failed reload in the log", SLACK, || {
        s.log_text().contains("TLS reload (SIGHUP) failed")
    });
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(
        seen.failures.is_empty(),
        "failed requests: {:?}",
        seen.failures
    );
    let after_break: Vec<_> = seen.certs.iter().filter(|(at, _)| *at > broken).collect();
    assert!(
        after_break.len() > 5,
        "few handshakes after the broken reload"
    );
    assert!(
        after_break.iter().all(|(_, der)| *der == next_der),
        "a handshake after the broken reload did not present the new certificate"
    );
    assert!(seen.certs.iter().any(|(_, der)| *der == first_der));
    let log = s.log_text();
    assert!(
        log.contains("server-key.pem"),
        "the failure names the file:\n{log}"
    );
    let text = https::metrics_text(s.addr, &config);
    assert!(https::sample(&text, "metricstream_tls_reloads_total{result=\"ok\"}") >= 1.0);
    assert!(https::sample(&text, "metricstream_tls_reloads_total{result=\"error\"}") >= 1.0);
    s.terminate(Duration::from_secs(20));
    let acked: BTreeSet<u64> = seen.acked.iter().copied().collect();
    assert!(acked.len() > 50, "only {} requests", acked.len());
    assert_stored_exactly(
        &s.data_dir,
        &acked,
        "Certificate rotation under load (SIGHUP, then a broken key)",
        "keep-alive and new-connection TLS clients post while the certificate files are \
         replaced and SIGHUP sent, then replaced by a broken key: no request fails, new \
         handshakes present the new certificate, the broken one is refused and the previous \
         one keeps serving; the log holds exactly the acknowledged batches",
        format!("{} certificates seen by new handshakes", seen.certs.len()),
    );
}

#[test]
fn changed_files_are_picked_up_without_a_signal() {
    let setup = Setup::new();
    let next = setup.ca.server(setup.path(), "next", &[]);
    let next_der = metricstream::tls::pem::certificates(&next.cert).unwrap()[0].to_vec();
    let s = setup.start(None, &[]);
    let config = Offer::new(&setup.ca.pem).config();
    assert_ne!(
        https::server_cert(&https::connect(s.addr, &config).unwrap()),
        next_der
    );
    replace(&setup.server, &next);
    // The watcher looks every 5 s.
    common::wait_for(
        "the new certificate without SIGHUP",
        Duration::from_secs(5) + SLACK,
        || https::server_cert(&https::connect(s.addr, &config).unwrap()) == next_der,
    );
    assert!(s
        .log_text()
        .contains("TLS certificate reloaded (the files changed)"));
}

#[test]
fn api_keys_on_a_plaintext_public_address_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let warning = "API keys are configured but the listener is plaintext";
    let public = Server::start(
        dir.path(),
        &["--listen", "0.0.0.0:0", "--api-key", "web:s3cret"],
    );
    assert!(public.log_text().contains(warning), "{}", public.log_text());
    drop(public);
    let loopback = Server::start(dir.path(), &["--api-key", "web:s3cret"]);
    assert!(!loopback.log_text().contains(warning));
}

#[test]
fn a_bad_file_is_a_start_up_error_naming_it() {
    let setup = Setup::new();
    let missing = setup.path().join("missing-key.pem");
    let out = std::process::Command::new(common::BIN)
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(setup.data())
        .arg("--tls-cert")
        .arg(&setup.server.cert)
        .arg("--tls-key")
        .arg(&missing)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing-key.pem"), "{err}");
}

/// A client posting one batch after another over TLS, each on a new
/// connection, while an attack runs (as tests/slow_clients.rs's `Normal`).
struct NormalTls {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(Vec<u64>, Vec<String>)>,
}

impl NormalTls {
    fn start(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> NormalTls {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut acked, mut failed) = (Vec::new(), Vec::new());
            let mut seq = 0;
            while !stopped.load(Ordering::Relaxed) {
                seq += 1;
                let body = cpp_body("tls", seq);
                match https::request(addr, &config, "POST", "/metrics", &[JSON], body.as_bytes()) {
                    Ok(r) if r.status == 200 => acked.push(seq),
                    Ok(r) => failed.push(format!("{seq}: {r:?}")),
                    Err(e) => failed.push(format!("{seq}: {e}")),
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (acked, failed)
        });
        NormalTls { stop, thread }
    }

    /// Stops it; fails unless every request got a 200. The acknowledged seqs.
    fn finish(self, during: &str) -> BTreeSet<u64> {
        self.stop.store(true, Ordering::Relaxed);
        let (acked, failed) = self.thread.join().unwrap();
        assert!(
            failed.is_empty(),
            "{during}: normal requests failed: {failed:?}"
        );
        assert!(
            acked.len() >= 10,
            "{during}: only {} normal requests",
            acked.len()
        );
        acked.into_iter().collect()
    }
}

/// The log holds exactly the acknowledged batches. The figures go to the
/// reliability report (RELIABILITY.md) first, so a failure is counted too.
fn assert_stored_exactly(
    data: &Path,
    acked: &BTreeSet<u64>,
    scenario: &str,
    checks: &str,
    detail: String,
) {
    let got = stored(data);
    let seqs: Vec<u64> = got.iter().map(|(_, q)| q.parse().unwrap()).collect();
    let unique: BTreeSet<u64> = seqs.iter().copied().collect();
    record(Figures {
        scenario,
        checks,
        acknowledged: acked.len() as u64,
        lost: acked.difference(&unique).count() as u64,
        duplicated: (seqs.len() - unique.len()) as u64,
        recovery_ms: 0,
        detail,
    });
    assert_eq!(unique.len(), seqs.len(), "a batch stored twice");
    assert_eq!(&unique, acked, "stored and acknowledged differ");
}

/// Whether the server has closed `s` (EOF or reset), waiting up to `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn slow_clients_on_the_tls_port() {
    let idle = Duration::from_secs(2);
    let setup = Setup::new();
    let mut s = setup.start(None, &["--idle-timeout", "2s", "--request-timeout", "2s"]);
    let config = Offer::new(&setup.ca.pem).config();
    let normal = NormalTls::start(s.addr, config.clone());

    // TCP that never sends a ClientHello: closed at the idle timeout.
    let opened = Instant::now();
    let mut silent: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(s.addr).unwrap())
        .collect();
    for c in &mut silent {
        let left = (idle + SLACK).saturating_sub(opened.elapsed());
        assert!(closed_within(c, left), "a silent connection still open");
    }
    let took = opened.elapsed();
    assert!(
        took + Duration::from_millis(100) >= idle,
        "closed after {took:?}"
    );

    // A slowloris head over TLS: closed at the idle timeout.
    let mut slow = https::connect(s.addr, &config).unwrap();
    slow.sock
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let started = Instant::now();
    let head = b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Slow: ";
    let mut sent = 0;
    let cut = loop {
        assert!(
            started.elapsed() < idle + SLACK,
            "a slowloris head over TLS still open"
        );
        let byte = head.get(sent).copied().unwrap_or(b'a');
        sent += 1;
        if slow.write_all(&[byte]).and_then(|()| slow.flush()).is_err() {
            break started.elapsed();
        }
        let mut buf = [0u8; 256];
        match slow.read(&mut buf) {
            Ok(0) => break started.elapsed(),
            Ok(_) => panic!("an answer to half a head"),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break started.elapsed(),
        }
    };
    assert!(
        cut + Duration::from_millis(100) >= idle,
        "cut after {cut:?}"
    );

    // HTTP/2 without a request: closed at the idle timeout (GOAWAY).
    let h2 = Offer {
        alpn: &[b"h2"],
        ..Offer::new(&setup.ca.pem)
    }
    .config();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let idle_h2 = rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(h2)
            .connect(name, tcp)
            .await
            .unwrap();
        let (_sender, conn) =
            hyper::client::conn::http2::handshake::<_, _, http_body_util::Full<bytes::Bytes>>(
                hyper_util::rt::TokioExecutor::new(),
                hyper_util::rt::TokioIo::new(tls),
            )
            .await
            .unwrap();
        let started = Instant::now();
        tokio::time::timeout(idle + SLACK, conn)
            .await
            .expect("an idle HTTP/2 connection still open")
            .ok();
        started.elapsed()
    });
    assert!(
        idle_h2 + Duration::from_millis(100) >= idle,
        "h2 closed after {idle_h2:?}"
    );

    let text = https::metrics_text(s.addr, &config);
    assert!(
        https::sample(
            &text,
            "metricstream_tls_handshake_failures_total{reason=\"timeout\"}"
        ) >= 20.0,
        "{text}"
    );
    assert!(https::sample(&text, "metricstream_connections_timed_out_total") >= 22.0);
    let acked = normal.finish("slow clients on the TLS port");
    s.terminate(Duration::from_secs(20));
    assert_stored_exactly(
        &s.data_dir,
        &acked,
        "Slow clients on the TLS port (--tls-cert)",
        "20 TCP connections that never send a ClientHello, a slowloris head over TLS and an idle \
         HTTP/2 connection are each closed at --idle-timeout (2 s) while a TLS client keeps \
         posting; the log holds exactly its acknowledged batches",
        format!("handshakes that never came closed after {took:?}; slowloris cut after {cut:?}; idle h2 closed after {idle_h2:?}"),
    );
}

/// Pipelines requests over TLS without reading an answer until the
/// server closes the connection: true if it did before `deadline`.
fn write_without_reading(c: &mut https::TlsStream, deadline: Instant) -> bool {
    c.sock
        .set_write_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let burst = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n".repeat(100);
    while Instant::now() < deadline {
        match c.write(&burst).and_then(|_| c.flush()) {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn a_tls_client_that_never_reads_its_answers_is_cut_off() {
    let setup = Setup::new();
    let s = setup.start(None, &["--idle-timeout", "2s", "--request-timeout", "2s"]);
    let config = Offer::new(&setup.ca.pem).config();
    let normal = NormalTls::start(s.addr, config.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let mut c = https::connect(s.addr, &config).unwrap();
            std::thread::spawn(move || write_without_reading(&mut c, deadline))
        })
        .collect();
    for r in readers {
        assert!(
            r.join().unwrap(),
            "a TLS client that reads nothing still connected after 30 s"
        );
    }
    let acked = normal.finish("TLS clients that never read");
    let text = https::metrics_text(s.addr, &config);
    assert!(
        https::sample(&text, "metricstream_connections_timed_out_total") >= 3.0,
        "{text}"
    );
    let mut s = s;
    s.terminate(Duration::from_secs(20));
    assert_stored_exactly(
        &s.data_dir,
        &acked,
        "TLS clients that never read their answers",
        "clients pipelining requests over TLS without reading are cut off by the write \
         timeout (below TLS) while a TLS client keeps posting; the log holds exactly its \
         acknowledged batches",
        "write timeout on the TCP stream under rustls".to_string(),
    );
}

#[test]
fn the_connection_cap_holds_with_tls_connections() {
    let setup = Setup::new();
    let mut s = setup.start(None, &["--max-connections", "3"]);
    let config = Offer::new(&setup.ca.pem).config();
    // Three idle TLS connections fill the cap; a newcomer is served, the
    // one idle longest closed to make room.
    let mut idle: Vec<_> = (0..3)
        .map(|_| https::connect(s.addr, &config).unwrap())
        .collect();
    let r = https::request(
        s.addr,
        &config,
        "POST",
        "/metrics",
        &[JSON],
        cpp_body("tls", 1).as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let oldest = &mut idle[0];
    oldest
        .sock
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert!(
        matches!(oldest.read(&mut buf), Ok(0) | Err(_)),
        "the connection idle longest was not closed"
    );
    drop(idle);
    // Three connections each with a request in flight (a body that never
    // finishes): a newcomer gets the 503, inside TLS.
    let mut busy = Vec::new();
    for _ in 0..3 {
        let mut c = https::connect(s.addr, &config).unwrap();
        c.write_all(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"metrics\"").unwrap();
        c.flush().unwrap();
        busy.push(c);
    }
    std::thread::sleep(Duration::from_millis(300));
    let r = https::request(
        s.addr,
        &config,
        "POST",
        "/metrics",
        &[JSON],
        cpp_body("tls", 2).as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.body.contains("--max-connections"), "{r:?}");
    // A client that prefers h2 is refused in HTTP/1.1, which it can read.
    let both = Offer {
        alpn: &[b"h2", b"http/1.1"],
        ..Offer::new(&setup.ca.pem)
    };
    let mut c = https::connect(s.addr, &both.config()).unwrap();
    assert_eq!(c.conn.alpn_protocol(), Some(b"http/1.1".as_slice()));
    let r = https::exchange(&mut c, "GET", "/health", &[], b"").unwrap();
    assert_eq!(r.status, 503, "{r:?}");
    drop(busy);
    s.terminate(Duration::from_secs(20));
    let got: Vec<String> = stored(&s.data_dir).into_iter().map(|(_, q)| q).collect();
    assert!(got.iter().all(|q| q == "1") && !got.is_empty(), "{got:?}");
}

#[test]
fn shutdown_closes_idle_tls_h2_and_handshaking_connections() {
    let setup = Setup::new();
    let mut s = setup.start(None, &[]);
    // Idle over HTTP/1.1 after an answer, idle over HTTP/2 after an
    // answer, and a TCP connection that has sent no ClientHello.
    let mut h1 = https::connect(s.addr, &Offer::new(&setup.ca.pem).config()).unwrap();
    let r = https::exchange(&mut h1, "GET", "/health", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    let _handshaking = TcpStream::connect(s.addr).unwrap();
    let h2 = Offer {
        alpn: &[b"h2"],
        ..Offer::new(&setup.ca.pem)
    }
    .config();
    let addr = s.addr;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let h2_conn = rt.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(h2)
            .connect(name, tcp)
            .await
            .unwrap();
        let (mut sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tls),
        )
        .await
        .unwrap();
        let conn = tokio::spawn(conn);
        let req = hyper::Request::get("https://localhost/health")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        assert_eq!(sender.send_request(req).await.unwrap().status(), 200);
        (sender, conn)
    });
    let started = Instant::now();
    let status = s.terminate(Duration::from_secs(20));
    assert!(status.success(), "{status:?}\n{}", s.log_text());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown took {:?} with idle TLS connections open",
        started.elapsed()
    );
    // The HTTP/2 connection was closed by the server (GOAWAY, then EOF).
    let (_sender, conn) = h2_conn;
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), conn)
            .await
            .expect("the HTTP/2 connection still open after shutdown")
            .unwrap()
            .ok();
    });
}
