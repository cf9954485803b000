//! TLS for both ends of metricstream's HTTP: [`server`] terminates TLS on
//! `serve`'s listener (certificate reload, client certificates), [`client`]
//! opens TLS connections for the `consume` sinks and `bench`. Both read
//! their PEM files through [`pem`].
//!
//! rustls with the ring provider, installed explicitly per config (never as
//! a process-wide default), so nothing depends on which crate's features
//! picked a default provider.

pub mod client;
pub mod pem;
pub mod server;

use std::sync::Arc;

/// The crypto provider every config here is built with.
///
/// rustls 0.23.48 deprecates ring's `default_provider` because ring has no
/// post-quantum key exchange (X25519MLKEM768); aws-lc-rs has it but needs a
/// C/CMake build of its own on every machine that builds us. Classical
/// X25519/P-256 key exchange is what Prometheus 2.42, InfluxDB 1.6 and the
/// Python clients offer anyway; moving to aws-lc-rs is one line here.
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
