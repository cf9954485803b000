//! The `--tls-*` flags of metricstream's HTTP clients (`consume`'s sinks,
//! `bench`), named after Prometheus' remote_write `tls_config`; what they
//! mean is `metricstream::tls::client`'s.

use std::path::PathBuf;

use clap::Args;
use metricstream::tls::client::TlsClientOptions;

/// TLS to an `https://` URL. Without any of these flags an https URL
/// trusts the system's CA store.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsClientArgs {
    /// https: trust the CA certificates of this PEM file instead of the
    /// system's store (tls_config.ca_file).
    #[arg(long, value_name = "FILE", env = "METRICSTREAM_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// https: present this client certificate (PEM chain, with --tls-key)
    /// to a server that asks for one (tls_config.cert_file).
    #[arg(long, value_name = "FILE", env = "METRICSTREAM_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// https: the client certificate's private key, PEM (tls_config.key_file).
    #[arg(long, value_name = "FILE", env = "METRICSTREAM_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// https: the name sent as SNI and required in the server's
    /// certificate, instead of the URL's host (tls_config.server_name).
    #[arg(long, value_name = "NAME", env = "METRICSTREAM_TLS_SERVER_NAME")]
    pub tls_server_name: Option<String>,
    /// https: accept ANY server certificate, so nothing stops a machine in
    /// the middle (tls_config.insecure_skip_verify). For tests only; a
    /// warning is logged at start.
    #[arg(
        long,
        env = "METRICSTREAM_TLS_INSECURE_SKIP_VERIFY",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub tls_insecure_skip_verify: bool,
}

impl TlsClientArgs {
    pub fn options(&self) -> TlsClientOptions {
        TlsClientOptions {
            ca: self.tls_ca.clone(),
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
            server_name: self.tls_server_name.clone(),
            insecure_skip_verify: self.tls_insecure_skip_verify,
        }
    }
}
