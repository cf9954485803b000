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
///
/// The key exchange groups are put in the order Go, OpenSSL and browsers
/// use, X25519 first: that ring provider lists P-384 first, and a profile
/// of `bench --new-connection` over https showed P-384's ECDH as ~60% of
/// the server's CPU (about 2 ms a handshake on each side, 270 handshakes/s
/// for one client).
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    use rustls::crypto::ring::{default_provider, kx_group};
    Arc::new(rustls::crypto::CryptoProvider {
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1],
        ..default_provider()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};

    /// A whole handshake in memory between configs built on `provider()`:
    /// the group they agree on is X25519, not the P-384 that ring's own
    /// default list puts first.
    #[test]
    fn handshakes_agree_on_x25519() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let server = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.der().clone()).unwrap();
        let client = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut c =
            ClientConnection::new(Arc::new(client), ServerName::try_from("localhost").unwrap())
                .unwrap();
        let mut s = ServerConnection::new(Arc::new(server)).unwrap();
        while c.is_handshaking() || s.is_handshaking() {
            let mut wire = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut wire).unwrap();
            }
            let mut rd = &wire[..];
            while !rd.is_empty() {
                s.read_tls(&mut rd).unwrap();
            }
            s.process_new_packets().unwrap();
            let mut wire = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut wire).unwrap();
            }
            let mut rd = &wire[..];
            while !rd.is_empty() {
                c.read_tls(&mut rd).unwrap();
            }
            c.process_new_packets().unwrap();
        }
        let group = s.negotiated_key_exchange_group().unwrap().name();
        assert_eq!(group, rustls::NamedGroup::X25519);
        assert_eq!(
            c.negotiated_key_exchange_group().unwrap().name(),
            rustls::NamedGroup::X25519
        );
    }
}
