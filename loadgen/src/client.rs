//! One simulated client's HTTP/1.1 plumbing on hyper's low-level API: a
//! TCP_NODELAY socket, with https a TLS handshake on it, an HTTP
//! handshake, one request, the whole body read back.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::config::{Format, Tls};
use super::outcome::{classify_hyper, classify_io, judge_response, FailureKind, Outcome};

/// Where requests go, resolved once so no request pays for a DNS lookup.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// `Host` header value (the URL's authority).
    pub host: HeaderValue,
    /// Origin-form request target (`/metrics?…`): hyper sends the URI as given.
    pub path: Uri,
    /// `https://`: TLS on every connection.
    pub tls: Option<Tls>,
}

impl Target {
    /// Parses an `http://host[:port]/path` URL, or `https://` with `tls`
    /// (default port 443), and resolves the host.
    pub async fn resolve(url: &str, tls: Option<Tls>) -> anyhow::Result<Self> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("invalid --url `{url}`"))?;
        match (uri.scheme_str(), &tls) {
            (Some("http"), None) | (Some("https"), Some(_)) => {}
            (Some("http"), Some(_)) => {
                bail!("--url `{url}` is plain http: TLS settings need an https:// URL")
            }
            (Some("https"), None) => {
                bail!("--url `{url}`: https needs a TLS client config (the caller builds it)")
            }
            (Some(other), _) => {
                bail!("--url `{url}`: scheme `{other}` not supported, use http or https")
            }
            (None, _) => {
                bail!("--url `{url}`: missing scheme, e.g. http://127.0.0.1:8080/metrics")
            }
        }
        let authority = uri
            .authority()
            .with_context(|| format!("--url `{url}`: missing host"))?;
        let port = authority
            .port_u16()
            .unwrap_or(if tls.is_some() { 443 } else { 80 });
        // IPv6 literals come bracketed (`[::1]`); the resolver wants them bare.
        let host_name = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let addr = tokio::net::lookup_host((host_name, port))
            .await
            .with_context(|| format!("resolve `{host_name}`"))?
            .next()
            .with_context(|| format!("`{host_name}` resolved to no address"))?;
        let host = HeaderValue::from_str(authority.as_str())
            .with_context(|| format!("--url `{url}`: host is not a valid header"))?;
        let path = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse::<Uri>()
            .with_context(|| format!("--url `{url}`: bad path"))?;
        Ok(Self {
            addr,
            host,
            path,
            tls,
        })
    }
}

/// How a client talks to the server.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub format: Format,
    pub keep_alive: bool,
    pub gzip: bool,
    pub timeout: Duration,
}

/// One open connection; the task driving it dies with it, so a request
/// abandoned on timeout does not leave a task behind.
struct Connection {
    sender: SendRequest<Full<Bytes>>,
    driver: JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// A simulated client: fixed headers, and in keep-alive mode its connection.
pub struct Client {
    target: Target,
    config: ClientConfig,
    headers: HeaderMap,
    connection: Option<Connection>,
    /// Connections opened (TLS handshakes completed, with https).
    opened: u64,
    /// https: of those, resumed sessions.
    resumed: u64,
}

impl Client {
    pub fn new(target: Target, config: ClientConfig, authorization: HeaderValue) -> Self {
        let mut headers = HeaderMap::with_capacity(6);
        headers.insert(header::HOST, target.host.clone());
        match config.format {
            Format::Json => {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
            }
            Format::RemoteWrite => {
                // What Prometheus sends for remote_write 1.0.
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/x-protobuf"),
                );
                headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("snappy"));
                headers.insert(
                    header::HeaderName::from_static("x-prometheus-remote-write-version"),
                    HeaderValue::from_static("0.1.0"),
                );
            }
            Format::Otlp => {
                // What the OpenTelemetry SDKs' OTLP/HTTP exporters send.
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/x-protobuf"),
                );
            }
            Format::Influx => {
                // What Telegraf's influxdb outputs send.
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
            }
        }
        headers.insert(header::AUTHORIZATION, authorization);
        if config.gzip {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        if !config.keep_alive {
            // Let the server close first, so TIME_WAIT piles up on its side
            // rather than eating this machine's ephemeral ports.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        Self {
            target,
            config,
            headers,
            connection: None,
            opened: 0,
            resumed: 0,
        }
    }

    /// Adds the connections this client opened to `stats`.
    pub fn tally_connections(&self, stats: &mut super::stats::Stats) {
        stats.connections += self.opened;
        stats.resumed += self.resumed;
    }

    /// Sends one body and judges the answer. Never panics on network trouble.
    pub async fn send(&mut self, body: Bytes) -> Outcome {
        let exchange = tokio::time::timeout(self.config.timeout, self.exchange(body)).await;
        let outcome = match exchange {
            Ok(Ok((status, body))) => match self.config.format {
                Format::Json => judge_response(status, &body),
                // remote_write, line protocol: any 2xx is an acknowledgement
                // (204 usually).
                _ if (200..300).contains(&status) => Outcome::Success,
                _ => Outcome::Failure(FailureKind::Status(status)),
            },
            Ok(Err(kind)) => Outcome::Failure(kind),
            Err(_elapsed) => Outcome::Failure(FailureKind::Timeout),
        };
        if !self.config.keep_alive || outcome != Outcome::Success {
            // After any failure the connection's state is unknown: start afresh.
            self.connection = None;
        }
        outcome
    }

    fn request(&self, body: Bytes) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.target.path.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }

    async fn exchange(&mut self, body: Bytes) -> Result<(u16, Bytes), FailureKind> {
        let mut request = self.request(body);
        if let Some(connection) = self.connection.as_mut() {
            // A reused connection may have been closed by the server while
            // idle; if hyper hands the request back unsent, retry once on a
            // fresh connection instead of blaming the server.
            if connection.sender.ready().await.is_ok() {
                match connection.sender.try_send_request(request).await {
                    Ok(response) => return read_response(response).await,
                    Err(mut error) => match error.take_message() {
                        Some(unsent) => request = unsent,
                        None => return Err(classify_hyper(error.error())),
                    },
                }
            }
            self.connection = None;
        }
        let (mut connection, resumed) = connect(self.target.addr, self.target.tls.as_ref()).await?;
        self.opened += 1;
        self.resumed += u64::from(resumed);
        let response = connection
            .sender
            .send_request(request)
            .await
            .map_err(|e| classify_hyper(&e))?;
        let answer = read_response(response).await;
        if self.config.keep_alive {
            self.connection = Some(connection);
        }
        answer
    }
}

/// A new connection, and whether its TLS handshake resumed a session.
async fn connect(addr: SocketAddr, tls: Option<&Tls>) -> Result<(Connection, bool), FailureKind> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|_| FailureKind::ConnectError)?;
    // Small request, small answer: don't let Nagle hold either back.
    stream.set_nodelay(true).map_err(|e| classify_io(&e))?;
    match tls {
        None => Ok((http(stream).await?, false)),
        Some(tls) => {
            let stream = tokio_rustls::TlsConnector::from(std::sync::Arc::clone(&tls.config))
                .connect(tls.server_name.clone(), stream)
                .await
                // Whatever went wrong, it went wrong in the handshake.
                .map_err(|_| FailureKind::Tls)?;
            let resumed =
                stream.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
            Ok((http(stream).await?, resumed))
        }
    }
}

/// The HTTP/1.1 handshake on a connected stream (plain or TLS).
async fn http<I>(io: I) -> Result<Connection, FailureKind>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| classify_hyper(&e))?;
    // The connection's own error also reaches the pending request, which is
    // where it gets counted; here it can be dropped.
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(Connection { sender, driver })
}

async fn read_response(
    response: hyper::Response<hyper::body::Incoming>,
) -> Result<(u16, Bytes), FailureKind> {
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| classify_hyper(&e))?
        .to_bytes();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn target_parsing() {
        let target = Target::resolve("http://127.0.0.1:8080/metrics", None)
            .await
            .unwrap();
        assert_eq!(target.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(target.host, "127.0.0.1:8080");
        assert_eq!(target.path, "/metrics");

        let target = Target::resolve("http://[::1]/a?b=c", None).await.unwrap();
        assert_eq!(target.addr, "[::1]:80".parse().unwrap());
        assert_eq!(target.path, "/a?b=c");

        let target = Target::resolve("http://127.0.0.1:9", None).await.unwrap();
        assert_eq!(target.path, "/");

        for bad in [
            "https://127.0.0.1/metrics",
            "127.0.0.1:8080/metrics",
            "not a url",
            "",
        ] {
            assert!(Target::resolve(bad, None).await.is_err(), "{bad:?}");
        }
    }

    // ring's provider is deprecated for lacking post-quantum key exchange
    // (see metricstream's src/tls/mod.rs); what matters here is the URL check.
    #[allow(deprecated)]
    #[tokio::test]
    async fn https_needs_tls_and_http_refuses_it() {
        let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        let tls = Tls {
            config: std::sync::Arc::new(config),
            server_name: rustls::pki_types::ServerName::try_from("localhost").unwrap(),
        };
        let target = Target::resolve("https://127.0.0.1/metrics", Some(tls.clone()))
            .await
            .unwrap();
        assert_eq!(target.addr, "127.0.0.1:443".parse().unwrap());
        assert!(target.tls.is_some());
        assert!(Target::resolve("https://127.0.0.1/m", None).await.is_err());
        assert!(Target::resolve("http://127.0.0.1/m", Some(tls))
            .await
            .is_err());
    }
}
