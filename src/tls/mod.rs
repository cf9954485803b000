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
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
