//! TLS on `serve`'s listener: the rustls server config made from the
//! operator's PEM files (TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`, client
//! certificates checked against `--tls-client-ca`), swapped for a new one
//! when the files change, the client's name from its verified certificate,
//! and the class of a failed handshake for the telemetry.
//!
//! Reload: [`TlsServer::watch`] rebuilds the config on SIGHUP and when a
//! file's modification time, size or inode changes (checked every
//! [`WATCH_EVERY`]). A new config serves new handshakes only; connections
//! already open keep the session they have. A rebuild that fails keeps the
//! old config (an operator halfway through copying files must not take the
//! listener down) and logs the error with the file's name.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use prometheus::IntCounterVec;
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, ServerConfig};
use tokio_rustls::TlsAcceptor;

use super::{pem, provider};
use crate::auth::PeerIdentity;

/// How often the watcher looks at the files' modification times.
pub const WATCH_EVERY: Duration = Duration::from_secs(5);

/// Whether a client must present a certificate when a client CA is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// A client may connect without one (and is then identified as without
    /// TLS); one it presents must verify.
    Optional,
    /// The handshake fails without a certificate that verifies.
    Required,
}

/// The listener's TLS files.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The certificate chain, leaf first (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates client certificates are verified against; None: no
    /// client certificates are asked for.
    pub client_ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
}

impl TlsFiles {
    fn paths(&self) -> Vec<&Path> {
        let mut paths = vec![self.cert.as_path(), self.key.as_path()];
        paths.extend(self.client_ca.as_deref());
        paths
    }
}

/// The listener's TLS: the config new handshakes use, and its reloads.
pub struct TlsServer {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
    /// Reloads by result (`ok`, `error`), in `/metrics`.
    reloads: IntCounterVec,
}

impl TlsServer {
    /// Reads and checks every file now: a bad one is a start-up error that
    /// names it.
    pub fn new(files: TlsFiles, reloads: IntCounterVec) -> anyhow::Result<TlsServer> {
        let config = build(&files)?;
        Ok(TlsServer {
            files,
            current: RwLock::new(Arc::new(config)),
            reloads,
        })
    }

    /// An acceptor with the config of this moment, for one connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config())
    }

    /// An acceptor for a connection refused at the cap, whose canned 503
    /// is HTTP/1.1 text: ALPN offers `http/1.1` only, so that a client
    /// preferring h2 does not read it as HTTP/2 frames.
    pub fn refusal_acceptor(&self) -> TlsAcceptor {
        let mut config = ServerConfig::clone(&self.config());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        TlsAcceptor::from(Arc::new(config))
    }

    pub fn config(&self) -> Arc<ServerConfig> {
        crate::sync::read(&self.current).clone()
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Builds a new config from the files and swaps it in; on failure the
    /// old one stays. Either way counted and logged (`why`: what asked).
    pub fn reload(&self, why: &str) -> anyhow::Result<()> {
        match build(&self.files) {
            Ok(config) => {
                *crate::sync::write(&self.current) = Arc::new(config);
                self.reloads.with_label_values(&["ok"]).inc();
                tracing::info!(
                    cert = %self.files.cert.display(),
                    "TLS certificate reloaded ({why}); new connections use it"
                );
                Ok(())
            }
            Err(e) => {
                self.reloads.with_label_values(&["error"]).inc();
                tracing::error!(
                    "TLS reload ({why}) failed, still serving the previous certificate: {e:#}"
                );
                Err(e)
            }
        }
    }

    /// Reloads on each SIGHUP and when the files change, until dropped.
    pub async fn watch(self: Arc<Self>, mut sighup: tokio::signal::unix::Signal) {
        let mut seen = self.stamps();
        let mut tick = tokio::time::interval(WATCH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = sighup.recv() => {
                    seen = self.stamps();
                    let _ = self.reload("SIGHUP");
                }
                _ = tick.tick() => {
                    let now = self.stamps();
                    if now != seen {
                        // Remembered even when the reload fails, so a broken
                        // file is reported once, and the next change (the
                        // rest of the files arriving) tries again.
                        seen = now;
                        let _ = self.reload("the files changed");
                    }
                }
            }
        }
    }

    /// What tells that a file changed: modification time, size, inode (a
    /// file renamed over the old one may keep its time).
    fn stamps(&self) -> Vec<Option<(SystemTime, u64, u64)>> {
        use std::os::unix::fs::MetadataExt as _;
        self.files
            .paths()
            .into_iter()
            .map(|p| {
                let m = std::fs::metadata(p).ok()?;
                Some((m.modified().ok()?, m.len(), m.ino()))
            })
            .collect()
    }
}

/// A server config from the files, every error naming its file.
fn build(files: &TlsFiles) -> anyhow::Result<ServerConfig> {
    let certs = pem::certificates(&files.cert)?;
    let key = pem::private_key(&files.key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS versions 1.2 and 1.3 with the ring provider")?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let roots = Arc::new(pem::root_store(ca)?);
            let mut verifier = WebPkiClientVerifier::builder_with_provider(roots, provider());
            if files.client_auth == ClientAuth::Optional {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier
                .build()
                .with_context(|| format!("{}: no usable client CA in it", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    // Checks that the key is the certificate's.
    let mut config = builder.with_single_cert(certs, key).with_context(|| {
        format!(
            "{} with {}: the key does not match the certificate, or is not one rustls can use",
            files.cert.display(),
            files.key.display()
        )
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The client's name from its verified certificate (the leaf): the subject
/// CN, else the first DNS SAN, else the first URI SAN. None if it presented
/// none, or none of those is in it.
pub fn peer_identity(conn: &rustls::ServerConnection) -> Option<PeerIdentity> {
    let leaf = conn.peer_certificates()?.first()?;
    identity_of(leaf.as_ref()).map(PeerIdentity)
}

fn identity_of(der: &[u8]) -> Option<String> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert
        .subject()
        .iter_common_name()
        .find_map(|cn| cn.as_str().ok().map(str::to_string));
    if cn.is_some() {
        return cn;
    }
    let san = cert.subject_alternative_name().ok().flatten()?;
    let names = &san.value.general_names;
    let dns = names.iter().find_map(|n| match n {
        GeneralName::DNSName(d) => Some(d.to_string()),
        _ => None,
    });
    dns.or_else(|| {
        names.iter().find_map(|n| match n {
            GeneralName::URI(u) => Some(u.to_string()),
            _ => None,
        })
    })
}

/// The class of a failed handshake, the `reason` label of
/// `metricstream_tls_handshake_failures_total`.
pub fn failure_reason(e: &io::Error) -> &'static str {
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return match e.kind() {
            io::ErrorKind::TimedOut => "timeout",
            _ => "io",
        };
    };
    match tls {
        rustls::Error::NoCertificatesPresented => "no_client_certificate",
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => "client_certificate_expired",
        rustls::Error::InvalidCertificate(_) => "client_certificate_invalid",
        // The client refused ours (most often: it does not trust our CA).
        rustls::Error::AlertReceived(_) => "client_alert",
        rustls::Error::PeerIncompatible(_) | rustls::Error::NoApplicationProtocol => "incompatible",
        _ => "protocol",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> (rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        (params.self_signed(&key).unwrap(), key)
    }

    fn leaf(
        params: rcgen::CertificateParams,
        ca: &(rcgen::Certificate, rcgen::KeyPair),
    ) -> (Vec<u8>, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca.0, &ca.1).unwrap();
        (cert.der().to_vec(), key)
    }

    #[test]
    fn identity_is_cn_then_dns_then_uri() {
        let ca = ca();
        let mut p = rcgen::CertificateParams::new(vec!["dns-name".to_string()]).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "the-cn");
        assert_eq!(identity_of(&leaf(p, &ca).0).as_deref(), Some("the-cn"));

        let mut p = rcgen::CertificateParams::new(vec!["dns-name".to_string()]).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        assert_eq!(identity_of(&leaf(p, &ca).0).as_deref(), Some("dns-name"));

        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.subject_alt_names = vec![rcgen::SanType::URI(
            "spiffe://example.org/agent".try_into().unwrap(),
        )];
        assert_eq!(
            identity_of(&leaf(p, &ca).0).as_deref(),
            Some("spiffe://example.org/agent")
        );

        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        assert_eq!(identity_of(&leaf(p, &ca).0), None);
    }

    fn write_pair(dir: &Path, name: &str, ca: &(rcgen::Certificate, rcgen::KeyPair)) -> TlsFiles {
        let p = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &ca.0, &ca.1).unwrap();
        let files = TlsFiles {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}-key.pem")),
            client_ca: None,
            client_auth: ClientAuth::Required,
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        files
    }

    fn reloads() -> IntCounterVec {
        IntCounterVec::new(prometheus::Opts::new("r", "r"), &["result"]).unwrap()
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_naming_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca();
        let a = write_pair(dir.path(), "a", &ca);
        let b = write_pair(dir.path(), "b", &ca);
        let mixed = TlsFiles {
            key: b.key.clone(),
            ..a.clone()
        };
        let e = format!("{:#}", TlsServer::new(mixed, reloads()).err().unwrap());
        assert!(e.contains("a.pem") && e.contains("b-key.pem"), "{e}");
        let missing = TlsFiles {
            client_ca: Some(dir.path().join("nope.pem")),
            ..a
        };
        let e = format!("{:#}", TlsServer::new(missing, reloads()).err().unwrap());
        assert!(e.contains("nope.pem"), "{e}");
    }

    #[test]
    fn a_failed_reload_keeps_the_old_config_and_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca();
        let files = write_pair(dir.path(), "a", &ca);
        let server = TlsServer::new(files.clone(), reloads()).unwrap();
        let before = server.config();
        std::fs::write(&files.key, "garbage").unwrap();
        let e = format!("{:#}", server.reload("test").unwrap_err());
        assert!(e.contains("a-key.pem"), "{e}");
        assert!(Arc::ptr_eq(&before, &server.config()));
        assert_eq!(server.reloads.with_label_values(&["error"]).get(), 1);
        // A good pair again: swapped in.
        write_pair(dir.path(), "a", &ca);
        server.reload("test").unwrap();
        assert!(!Arc::ptr_eq(&before, &server.config()));
        assert_eq!(server.reloads.with_label_values(&["ok"]).get(), 1);
        assert_eq!(server.config().alpn_protocols.len(), 2);
    }

    #[test]
    fn stamps_see_a_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca();
        let files = write_pair(dir.path(), "a", &ca);
        let server = TlsServer::new(files, reloads()).unwrap();
        let before = server.stamps();
        assert!(before.iter().all(Option::is_some));
        // A new pair of other sizes (new keys, new serial) renamed over the old.
        let other = write_pair(dir.path(), "b", &ca);
        std::fs::rename(&other.cert, &server.files.cert).unwrap();
        assert_ne!(before, server.stamps());
    }

    #[test]
    fn failures_are_classed() {
        let wrap = |e: rustls::Error| io::Error::new(io::ErrorKind::InvalidData, e);
        assert_eq!(
            failure_reason(&wrap(rustls::Error::NoCertificatesPresented)),
            "no_client_certificate"
        );
        assert_eq!(
            failure_reason(&wrap(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))),
            "client_certificate_invalid"
        );
        assert_eq!(
            failure_reason(&wrap(rustls::Error::InvalidCertificate(
                CertificateError::Expired
            ))),
            "client_certificate_expired"
        );
        assert_eq!(
            failure_reason(&io::Error::from(io::ErrorKind::ConnectionReset)),
            "io"
        );
    }
}
