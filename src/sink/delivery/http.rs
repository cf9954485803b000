//! The delivery's HTTP/1.1 client, on hyper's low-level API (as the load
//! generator's): one keep-alive connection per lane, plain or TLS
//! (`https://`, [`crate::tls::client`]), fixed headers (auth, `--header`),
//! a timeout per request (connecting and the TLS handshake included). It carries a store's [`Body`] and
//! brings back an [`Answer`] for the retry policy ([`super::retry`]); the
//! stores never touch the network.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::backoff::parse_retry_after;
use super::retry::Answer;
use crate::sink::store::Body;
use crate::tls::client::{error_chain, is_tls_error, TlsClientOptions, TlsConnector};

/// Where and how to send: resolved once, shared by the workers.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// Origin-form target (`/api/v1/write?…`).
    pub path: Uri,
    /// Host, authentication and `--header`s.
    pub headers: HeaderMap,
    pub timeout: Duration,
    /// `https://`: the TLS handshake to run after connecting.
    pub tls: Option<TlsConnector>,
}

/// How to authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    Bearer(String),
    /// `user:pass`.
    Basic(String),
    /// InfluxDB's `Authorization: Token …`.
    InfluxToken(String),
}

impl Endpoint {
    /// Parses `http://host[:port]/path`, resolves the host, builds the headers.
    pub async fn resolve(
        url: &str,
        auth: &Auth,
        extra: &[(String, String)],
        timeout: Duration,
    ) -> anyhow::Result<Endpoint> {
        Endpoint::resolve_tls(url, auth, extra, timeout, &TlsClientOptions::default()).await
    }

    /// [`resolve`](Self::resolve) for `http://` or `https://` (default port
    /// 443), the TLS flags in `tls` (an error with an `http://` URL).
    pub async fn resolve_tls(
        url: &str,
        auth: &Auth,
        extra: &[(String, String)],
        timeout: Duration,
        tls: &TlsClientOptions,
    ) -> anyhow::Result<Endpoint> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("invalid --url `{url}`"))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            Some(other) => {
                bail!("--url `{url}`: scheme `{other}` not supported, use http or https")
            }
            None => {
                bail!("--url `{url}`: missing scheme, e.g. http://prometheus:9090/api/v1/write")
            }
        }
        let tls = tls.for_url(url)?;
        let authority = uri
            .authority()
            .with_context(|| format!("--url `{url}`: missing host"))?;
        let port = authority
            .port_u16()
            .unwrap_or(if tls.is_some() { 443 } else { 80 });
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let addr = tokio::net::lookup_host((host, port))
            .await
            .with_context(|| format!("resolve `{host}`"))?
            .next()
            .with_context(|| format!("`{host}` resolved to no address"))?;
        let path: Uri = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .with_context(|| format!("--url `{url}`: bad path"))?;
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(authority.as_str())?);
        headers.insert(header::USER_AGENT, HeaderValue::from_static("metricstream"));
        let authorization = match auth {
            Auth::None => None,
            Auth::Bearer(t) => Some(format!("Bearer {t}")),
            Auth::Basic(userpass) => {
                use base64::Engine as _;
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(userpass)
                ))
            }
            Auth::InfluxToken(t) => Some(format!("Token {t}")),
        };
        if let Some(a) = authorization {
            let mut v =
                HeaderValue::from_str(&a).context("the credentials are not a valid header")?;
            v.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, v);
        }
        for (k, v) in extra {
            let name = HeaderName::from_bytes(k.as_bytes())
                .with_context(|| format!("--header {k:?}: not a header name"))?;
            let value = HeaderValue::from_str(v)
                .with_context(|| format!("--header {k}: not a header value"))?;
            headers.append(name, value);
        }
        Ok(Endpoint {
            addr,
            path,
            headers,
            timeout,
            tls,
        })
    }
}

/// Longest part of an answer body kept (for the dead-letter reason, logs).
const MAX_REASON: usize = 1024;

struct Connection {
    sender: SendRequest<Full<Bytes>>,
    driver: JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

pub struct Client {
    endpoint: std::sync::Arc<Endpoint>,
    connection: Option<Connection>,
}

impl Client {
    pub fn new(endpoint: std::sync::Arc<Endpoint>) -> Client {
        Client {
            endpoint,
            connection: None,
        }
    }

    pub async fn send(&mut self, body: &Body) -> Answer {
        let timeout = self.endpoint.timeout;
        let answer = match tokio::time::timeout(timeout, self.exchange(body)).await {
            Ok(a) => a,
            Err(_) => Answer::NoAnswer(format!("no answer within {timeout:?}")),
        };
        if !matches!(
            answer,
            Answer::Status {
                status: 200..=299,
                ..
            }
        ) {
            // After a failure the connection's state is unknown: start afresh.
            self.connection = None;
        }
        answer
    }

    fn request(&self, body: &Body) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(body.bytes.clone()));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.endpoint.path.clone();
        let h = request.headers_mut();
        *h = self.endpoint.headers.clone();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(body.content_type),
        );
        if let Some(e) = body.encoding {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(e));
        }
        for (k, v) in body.headers {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        // The batch's tenant (`--tenant-header`), over a fixed `--header`.
        if let Some((k, v)) = &body.tenant {
            h.insert(k.clone(), v.clone());
        }
        request
    }

    async fn exchange(&mut self, body: &Body) -> Answer {
        let mut request = self.request(body);
        if let Some(c) = self.connection.as_mut() {
            // An idle keep-alive connection the store closed hands the
            // request back unsent: retry it at once on a fresh one.
            if c.sender.ready().await.is_ok() {
                match c.sender.try_send_request(request).await {
                    Ok(response) => return read(response).await,
                    Err(mut e) => match e.take_message() {
                        Some(unsent) => request = unsent,
                        None => return Answer::NoAnswer(e.error().to_string()),
                    },
                }
            }
            self.connection = None;
        }
        let addr = self.endpoint.addr;
        let stream = match TcpStream::connect(addr).await {
            Ok(s) => s,
            Err(e) => return Answer::Unreachable(format!("connect to {addr}: {e}")),
        };
        let _ = stream.set_nodelay(true);
        let opened = match &self.endpoint.tls {
            None => open(stream).await,
            Some(tls) => match tls.connect(stream).await {
                Ok(s) => open(s).await,
                Err(e) => {
                    return Answer::Unreachable(format!(
                        "TLS handshake with {addr} (verifying {}): {}",
                        tls.server_name.to_str(),
                        error_chain(&e)
                    ))
                }
            },
        };
        let (mut sender, driver) = match opened {
            Ok(pair) => pair,
            Err(e) => return Answer::Unreachable(error_chain(&e)),
        };
        let answer = match sender.send_request(request).await {
            Ok(response) => read(response).await,
            // With TLS 1.3 the server judges our certificate after the
            // client's side of the handshake is done, so its refusal (an
            // alert) arrives as the first request's error. A server that
            // refuses the connection at the TLS layer has served nothing
            // on it: the store does not have the request.
            Err(e) if is_tls_error(&e) => {
                Answer::Unreachable(format!("TLS handshake with {addr}: {}", error_chain(&e)))
            }
            Err(e) => Answer::NoAnswer(error_chain(&e)),
        };
        self.connection = Some(Connection { sender, driver });
        answer
    }
}

/// HTTP/1.1 on a connected stream (plain or TLS); the task driving the
/// connection is returned to die with it.
async fn open<I>(io: I) -> Result<(SendRequest<Full<Bytes>>, JoinHandle<()>), hyper::Error>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = http1::handshake(TokioIo::new(io)).await?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok((sender, driver))
}

async fn read(response: hyper::Response<hyper::body::Incoming>) -> Answer {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    match response.into_body().collect().await {
        Ok(b) => {
            let bytes = b.to_bytes();
            let cut = &bytes[..bytes.len().min(MAX_REASON)];
            Answer::Status {
                status,
                retry_after,
                body: String::from_utf8_lossy(cut).trim().to_string(),
            }
        }
        // The status is in: the store has decided, whatever the body says.
        Err(e) => Answer::Status {
            status,
            retry_after,
            body: format!("(answer body unreadable: {e})"),
        },
    }
}
