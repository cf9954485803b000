//! TLS on metricstream's outgoing connections: the `consume` sinks and
//! `bench`. One set of options, [`TlsClientOptions`], mirroring
//! Prometheus' `tls_config` (`ca_file`, `cert_file`, `key_file`,
//! `server_name`, `insecure_skip_verify`), turned into a rustls
//! `ClientConfig` and the name to verify ([`TlsConnector`]).
//!
//! Choices:
//! - Without `--tls-ca` the system's CA store is trusted (as Prometheus and
//!   curl do); with it, only that file's CAs (not both: a private CA is
//!   usually meant to be the only one trusted).
//! - The name sent as SNI and verified is `--tls-server-name` or else the
//!   URL's host; an IP address (from either) is verified against the
//!   certificate's IP SANs, and no SNI is sent for it (RFC 6066).
//! - ALPN offers `http/1.1` only: the sinks and `bench` speak HTTP/1.1.
//! - TLS 1.2 and 1.3, rustls' safe defaults.
//! - `--tls-insecure-skip-verify` accepts any server certificate (handshake
//!   signatures are still checked, so the connection is encrypted to
//!   whoever holds the key, just not known to be the right one), logs a
//!   warning at start, and is refused together with `--tls-ca`, which it
//!   would silently make pointless.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use hyper::Uri;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;

use super::{pem, provider};

/// The TLS flags of a client (`consume`'s sinks, `bench`). All unset is
/// the default: an `https://` URL then trusts the system's CAs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsClientOptions {
    /// `--tls-ca`: PEM CA certificates to trust instead of the system's.
    pub ca: Option<PathBuf>,
    /// `--tls-cert`: the client certificate chain (PEM), with `key`.
    pub cert: Option<PathBuf>,
    /// `--tls-key`: the client certificate's private key (PEM).
    pub key: Option<PathBuf>,
    /// `--tls-server-name`: the name sent as SNI and verified, instead of
    /// the URL's host.
    pub server_name: Option<String>,
    /// `--tls-insecure-skip-verify`: accept any server certificate.
    pub insecure_skip_verify: bool,
}

/// What a client needs to open TLS connections to one endpoint.
#[derive(Debug, Clone)]
pub struct TlsConnector {
    pub config: Arc<ClientConfig>,
    /// SNI and the name the server's certificate must carry.
    pub server_name: ServerName<'static>,
}

impl TlsConnector {
    /// The TLS handshake on a connected socket.
    pub async fn connect(
        &self,
        tcp: TcpStream,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        tokio_rustls::TlsConnector::from(Arc::clone(&self.config))
            .connect(self.server_name.clone(), tcp)
            .await
    }
}

impl TlsClientOptions {
    /// The flags given, by name, for error messages.
    fn given(&self) -> Vec<&'static str> {
        [
            (self.ca.is_some(), "--tls-ca"),
            (self.cert.is_some(), "--tls-cert"),
            (self.key.is_some(), "--tls-key"),
            (self.server_name.is_some(), "--tls-server-name"),
            (self.insecure_skip_verify, "--tls-insecure-skip-verify"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect()
    }

    /// The checks that need no file: flags that only go together, flags
    /// that contradict each other, TLS flags with a plain `http://` URL.
    /// Returns whether `url` is https. Cheap, so the command line is
    /// checked before anything starts; [`for_url`](Self::for_url) repeats it.
    pub fn check(&self, url: &str) -> anyhow::Result<bool> {
        let https = match url_scheme(url)?.as_str() {
            "https" => true,
            "http" => false,
            other => bail!("--url `{url}`: scheme `{other}` not supported, use http or https"),
        };
        if !https && !self.given().is_empty() {
            bail!(
                "{} given, but --url `{url}` is plain http: use an https:// URL, or drop the TLS flags",
                self.given().join(", ")
            );
        }
        match (&self.cert, &self.key) {
            (Some(_), None) => bail!("--tls-cert needs --tls-key (the certificate's private key)"),
            (None, Some(_)) => bail!("--tls-key needs --tls-cert (the client certificate)"),
            _ => {}
        }
        if self.insecure_skip_verify && self.ca.is_some() {
            bail!("--tls-insecure-skip-verify verifies nothing, so --tls-ca would be ignored: give one of them");
        }
        if let Some(name) = &self.server_name {
            server_name(name).context("--tls-server-name")?;
        }
        Ok(https)
    }

    /// For `--url`: a connector for an `https://` URL (the files read, the
    /// name to verify decided), `None` for `http://`; an error for a TLS
    /// flag with an http URL, a file that cannot be used, or a name that is
    /// neither a DNS name nor an IP address.
    pub fn for_url(&self, url: &str) -> anyhow::Result<Option<TlsConnector>> {
        if !self.check(url)? {
            return Ok(None);
        }
        let name = match &self.server_name {
            Some(n) => server_name(n).context("--tls-server-name")?,
            None => server_name(&url_host(url)?).with_context(|| format!("--url `{url}`"))?,
        };
        Ok(Some(TlsConnector {
            config: self.client_config()?,
            server_name: name,
        }))
    }

    /// The rustls client config these options make (the files read now).
    pub fn client_config(&self) -> anyhow::Result<Arc<ClientConfig>> {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .context("TLS 1.2 and 1.3 with the ring provider")?;
        let builder = if self.insecure_skip_verify {
            tracing::warn!(
                "--tls-insecure-skip-verify: the server's certificate is NOT verified; \
                 anyone on the path can read and change what is sent. For tests only."
            );
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCertificate(provider)))
        } else {
            let roots = match &self.ca {
                Some(path) => pem::root_store(path).context("--tls-ca")?,
                None => system_roots()?,
            };
            builder.with_root_certificates(roots)
        };
        let mut config = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(
                    pem::certificates(cert).context("--tls-cert")?,
                    pem::private_key(key).context("--tls-key")?,
                )
                .with_context(|| {
                    format!(
                        "--tls-cert {} and --tls-key {} do not make a usable pair",
                        cert.display(),
                        key.display()
                    )
                })?,
            (None, None) => builder.with_no_client_auth(),
            (Some(_), None) => bail!("--tls-cert needs --tls-key"),
            (None, Some(_)) => bail!("--tls-key needs --tls-cert"),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// A name for SNI and verification: an IP address (IPv6 with or without
/// brackets) or a DNS name.
pub fn server_name(name: &str) -> anyhow::Result<ServerName<'static>> {
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_string())
        .map_err(|e| anyhow::anyhow!("`{name}` is neither a DNS name nor an IP address ({e})"))
}

fn parse(url: &str) -> anyhow::Result<Uri> {
    url.parse()
        .with_context(|| format!("invalid --url `{url}`"))
}

fn url_scheme(url: &str) -> anyhow::Result<String> {
    match parse(url)?.scheme_str() {
        Some(s) => Ok(s.to_ascii_lowercase()),
        None => bail!("--url `{url}`: missing scheme, e.g. https://prometheus:9090/api/v1/write"),
    }
}

fn url_host(url: &str) -> anyhow::Result<String> {
    let uri = parse(url)?;
    let host = uri
        .host()
        .with_context(|| format!("--url `{url}`: missing host"))?;
    Ok(host.to_string())
}

/// The system's CA store (the OS's bundle, or `SSL_CERT_FILE` /
/// `SSL_CERT_DIR`). A store with nothing usable in it is an error naming
/// the way out, not a client that refuses every server.
fn system_roots() -> anyhow::Result<rustls::RootCertStore> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let errors: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
        bail!(
            "no usable CA certificate in the system's store ({}): give --tls-ca FILE",
            if errors.is_empty() {
                "it is empty".to_string()
            } else {
                errors.join("; ")
            }
        );
    }
    if ignored > 0 || !found.errors.is_empty() {
        tracing::warn!(
            added,
            ignored,
            errors = ?found.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            "parts of the system's CA store could not be used"
        );
    }
    Ok(roots)
}

/// `--tls-insecure-skip-verify`: any certificate is taken as the server's.
/// The handshake's signatures are still verified with the provider's
/// algorithms, so the peer must hold the key of the certificate it sent.
#[derive(Debug)]
struct AcceptAnyServerCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Whether a TLS error (rustls') is somewhere in `error`'s chain: the
/// connection was refused at the TLS layer (a handshake failure or the
/// server's alert about our certificate), so no HTTP request was served
/// on it. `std::io::Error` hides its inner error from `source()`, hence
/// the look inside it.
pub fn is_tls_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<rustls::Error>() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
            {
                return true;
            }
        }
        current = e.source();
    }
    false
}

/// `error` and its causes, `: `-joined (an io::Error's inner error
/// included), so a log line says "received fatal alert: CertificateRequired"
/// rather than only "connection error".
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut current = error.source();
    while let Some(e) = current {
        let text = e.to_string();
        if parts.last().is_none_or(|last| !last.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> TlsClientOptions {
        TlsClientOptions::default()
    }

    fn err(o: &TlsClientOptions, url: &str) -> String {
        format!("{:#}", o.for_url(url).unwrap_err())
    }

    /// A CA and a client pair written by rcgen, as an operator's files.
    fn files(dir: &std::path::Path) -> (PathBuf, PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["client".into()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        let (c, k) = (dir.join("c.pem"), dir.join("k.pem"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c.clone(), c, k)
    }

    #[test]
    fn http_without_flags_is_plaintext() {
        assert!(options()
            .for_url("http://127.0.0.1:9090/api/v1/write")
            .unwrap()
            .is_none());
    }

    #[test]
    fn tls_flags_with_http_are_an_error() {
        let o = TlsClientOptions {
            ca: Some("/ca.pem".into()),
            insecure_skip_verify: false,
            ..options()
        };
        let e = err(&o, "http://p:9090/api/v1/write");
        assert!(
            e.contains("--tls-ca given") && e.contains("plain http"),
            "{e}"
        );
        let o = TlsClientOptions {
            server_name: Some("p".into()),
            ..options()
        };
        assert!(err(&o, "http://p/w").contains("--tls-server-name"));
        let e = err(&options(), "ftp://p/w");
        assert!(e.contains("scheme `ftp` not supported"), "{e}");
        assert!(err(&options(), "/api/v1/write").contains("missing scheme"));
    }

    #[test]
    fn flags_that_go_together_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = files(dir.path());
        let half = TlsClientOptions {
            cert: Some(cert.clone()),
            ..options()
        };
        assert!(err(&half, "https://p/w").contains("--tls-cert needs --tls-key"));
        let half = TlsClientOptions {
            key: Some(key.clone()),
            ..options()
        };
        assert!(err(&half, "https://p/w").contains("--tls-key needs --tls-cert"));
        let both = TlsClientOptions {
            ca: Some(ca.clone()),
            insecure_skip_verify: true,
            ..options()
        };
        assert!(err(&both, "https://p/w").contains("give one of them"));
        let bad_name = TlsClientOptions {
            server_name: Some("not a name".into()),
            ..options()
        };
        assert!(err(&bad_name, "https://p/w").contains("neither a DNS name"));
        let good = TlsClientOptions {
            ca: Some(ca),
            cert: Some(cert),
            key: Some(key),
            ..options()
        };
        let c = good.for_url("https://p:8443/w").unwrap().unwrap();
        assert_eq!(c.config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert!(c.config.client_auth_cert_resolver.has_certs());
    }

    #[test]
    fn files_that_cannot_be_used_name_the_flag_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, _) = files(dir.path());
        let missing = TlsClientOptions {
            ca: Some(dir.path().join("nope.pem")),
            ..options()
        };
        let e = err(&missing, "https://p/w");
        assert!(e.contains("--tls-ca") && e.contains("nope.pem"), "{e}");
        // A certificate where the key should be.
        let swapped = TlsClientOptions {
            ca: Some(ca),
            cert: Some(cert.clone()),
            key: Some(cert),
            ..options()
        };
        let e = err(&swapped, "https://p/w");
        assert!(e.contains("--tls-key") && e.contains("c.pem"), "{e}");
    }

    #[test]
    fn the_name_verified_is_the_flag_or_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, _, _) = files(dir.path());
        let o = TlsClientOptions {
            ca: Some(ca),
            ..options()
        };
        let name = |o: &TlsClientOptions, url: &str| o.for_url(url).unwrap().unwrap().server_name;
        assert_eq!(
            name(&o, "https://127.0.0.1:9090/w"),
            ServerName::IpAddress("127.0.0.1".parse::<std::net::IpAddr>().unwrap().into())
        );
        assert_eq!(
            name(&o, "https://[::1]/w"),
            ServerName::IpAddress("::1".parse::<std::net::IpAddr>().unwrap().into())
        );
        assert_eq!(
            name(&o, "https://mimir.example:443/api/v1/push"),
            ServerName::try_from("mimir.example").unwrap()
        );
        let o = TlsClientOptions {
            server_name: Some("store.internal".into()),
            ..o
        };
        assert_eq!(
            name(&o, "https://127.0.0.1:9090/w"),
            ServerName::try_from("store.internal").unwrap()
        );
    }

    #[test]
    fn insecure_skip_verify_builds() {
        let o = TlsClientOptions {
            insecure_skip_verify: true,
            ..options()
        };
        assert!(o.for_url("https://127.0.0.1/w").unwrap().is_some());
    }

    #[test]
    fn tls_errors_are_found_inside_io_errors() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired),
        );
        assert!(is_tls_error(&io));
        assert!(error_chain(&io).contains("CertificateRequired"));
        assert!(!is_tls_error(&std::io::Error::from(
            std::io::ErrorKind::ConnectionReset
        )));
    }
}
