//! A blocking HTTPS client for the tests (rustls over a std TcpStream):
//! client configs with a chosen CA, client certificate, TLS versions and
//! ALPN, one request per call or several on one connection, and the
//! certificate the server presented.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned, SupportedProtocolVersion};

use super::certs::Pair;
use super::Response;

pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// TLS 1.3 and 1.2.
pub const BOTH: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

/// What a client offers.
pub struct Offer<'a> {
    /// The CA it trusts the server's certificate by.
    pub ca: &'a Path,
    pub client_cert: Option<&'a Pair>,
    pub versions: &'a [&'static SupportedProtocolVersion],
    pub alpn: &'a [&'a [u8]],
}

impl<'a> Offer<'a> {
    /// TLS 1.2 and 1.3, ALPN http/1.1, no client certificate.
    pub fn new(ca: &'a Path) -> Offer<'a> {
        Offer {
            ca,
            client_cert: None,
            versions: BOTH,
            alpn: &[b"http/1.1"],
        }
    }

    pub fn with_cert(mut self, pair: &'a Pair) -> Offer<'a> {
        self.client_cert = Some(pair);
        self
    }

    pub fn config(&self) -> Arc<ClientConfig> {
        let roots = metricstream::tls::pem::root_store(self.ca).unwrap();
        let builder = ClientConfig::builder_with_provider(metricstream::tls::provider())
            .with_protocol_versions(self.versions)
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match self.client_cert {
            Some(pair) => builder
                .with_client_auth_cert(
                    metricstream::tls::pem::certificates(&pair.cert).unwrap(),
                    metricstream::tls::pem::private_key(&pair.key).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

/// A TLS connection to `addr` as `localhost`, handshake done.
pub fn connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> std::io::Result<TlsStream> {
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(config.clone(), name).map_err(std::io::Error::other)?;
    let mut stream = StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// The DER of the certificate the server presented on `stream`.
pub fn server_cert(stream: &TlsStream) -> Vec<u8> {
    stream.conn.peer_certificates().unwrap()[0].to_vec()
}

/// Writes one keep-alive request on `stream` and reads its answer.
pub fn exchange(
    stream: &mut TlsStream,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    stream.write_all(&request)?;
    stream.flush()?;
    read_answer(stream)
}

/// One answer with a Content-Length body.
fn read_answer(stream: &mut TlsStream) -> std::io::Result<Response> {
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_string();
            let len = super::content_length(&head);
            if raw.len() >= end + 4 + len {
                return super::parse_response(&raw[..end + 4 + len]).ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, "bad response")
                });
            }
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("closed after {:?}", String::from_utf8_lossy(&raw)),
            ));
        }
        raw.extend_from_slice(&chunk[..n]);
    }
}

/// One request on a new connection; Err carries the TLS or I/O failure
/// the client saw.
pub fn request(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut stream = connect(addr, config)?;
    exchange(&mut stream, method, path, headers, body)
}

/// `/metrics` over TLS.
pub fn metrics_text(addr: SocketAddr, config: &Arc<ClientConfig>) -> String {
    let r = request(addr, config, "GET", "/metrics", &[], b"").unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    r.body
}

/// The value of one sample line in Prometheus text (0 when absent).
pub fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}
