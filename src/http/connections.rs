//! The accept loop: hyper HTTP/1 connections with an idle timeout and a
//! connection cap, so slow, stuck or idle clients cannot hold the server.
//!
//! - Idle timeout (`--idle-timeout`) is hyper's header read timeout. In
//!   hyper 1.12 its timer starts whenever a connection waits for a request
//!   head (on open, and again after each answer: `poll_read_head` in
//!   proto/h1/conn.rs) and bytes trickling in do not reset it, so it bounds
//!   slowloris headers and idle keep-alive connections alike. Such a
//!   connection is closed without an answer. A body that never finishes is
//!   the request timeout's job (408, then the connection is closed).
//! - Cap (`--max-connections`): like nginx reusing idle keep-alive
//!   connections, a newcomer at the cap closes the connection idle longest
//!   (no request in flight); only if every connection is busy does the
//!   newcomer get a canned 503 with Retry-After.
//! - Shutdown: stop accepting; idle connections close at once (one stuck
//!   in half a head after a short grace), busy ones after their answer.
//! - TLS (`--tls-cert`): the handshake runs in the connection's task, after
//!   it was admitted (it holds a slot, may be evicted as idle), within
//!   `--idle-timeout`. Plain HTTP to the TLS port gets a plain 400 saying
//!   so. ALPN `h2` is served by hyper's HTTP/2 server, whose idle close is
//!   ours: no request in flight for `--idle-timeout` → graceful close. The
//!   write timeout sits on the TCP stream, under TLS, so a client that stops
//!   reading is cut off whatever it speaks.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_io_timeout::TimeoutStream;
use tokio_rustls::server::TlsStream;
use tower::ServiceExt;

use super::error::ApiError;
use crate::auth::PeerIdentity;
use crate::telemetry::Telemetry;
use crate::tls::server::{failure_reason, peer_identity, TlsServer};

#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub max_connections: usize,
    pub idle_timeout: Duration,
}

/// File descriptors kept free for the log, the data directory, Kafka
/// sockets and refusals.
const FD_RESERVE: usize = 512;
/// Refusals being written at once; past it a refused socket is just closed.
const MAX_REFUSING: usize = 64;
/// How long a connection closed as idle may take to flush before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// At shutdown, how long a connection may still start a request its client
/// already sent before it counts as idle.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);
/// `inflight` of a connection closed as idle: no request may start on it.
const CLOSED: u32 = u32::MAX;
/// Requests one HTTP/2 connection may have in flight at once (each also
/// takes one of `--max-inflight`).
const H2_MAX_STREAMS: u32 = 100;
/// The first byte of every TLS connection: a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Listens with a backlog for a burst of connections the accept loop has
/// not taken yet (tokio's default of 1024 overflowed in the idle-flood test;
/// the kernel caps it at net.core.somaxconn).
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As TcpListener::bind does: a restart may bind while old connections linger.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Raises the soft open-file limit to the hard one and returns how many
/// connections fit in it: `max_connections`, or fewer (with a warning), so
/// that a full server evicts or refuses instead of failing to accept.
pub fn fit_fd_limit(max_connections: usize) -> usize {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(soft) => soft,
        Err(e) => {
            tracing::warn!("reading or raising the open-file limit: {e}");
            return max_connections;
        }
    };
    let fit = usize::try_from(limit)
        .unwrap_or(usize::MAX)
        .saturating_sub(FD_RESERVE)
        .max(1);
    if max_connections > fit {
        tracing::warn!(
            max_connections,
            open_file_limit = limit,
            serving = fit,
            "--max-connections does not fit in the open-file limit (less {FD_RESERVE} for the \
             log and Kafka): serving at most {fit}; raise the hard limit (ulimit -Hn, LimitNOFILE) \
             or lower --max-connections"
        );
    }
    max_connections.min(fit)
}

/// Accepts and serves until `stop` turns true, then stops accepting and
/// waits for every connection to close. Dropping the future drops them all.
/// With `tls`, every connection is TLS.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: Config,
    telemetry: Arc<Telemetry>,
    tls: Option<Arc<TlsServer>>,
    mut stop: watch::Receiver<bool>,
) {
    let registry = Arc::new(Registry {
        max: config.max_connections.max(1),
        conns: Mutex::default(),
        epoch: Instant::now(),
        telemetry,
    });
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.idle_timeout)
        .keep_alive(true);
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_STREAMS);
    let protocols = Protocols { http1: http, h2 };
    let refusal: Arc<[u8]> = refusal(registry.max).into();
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let mut tasks = JoinSet::new();
    let mut next_id = 0u64;
    let conn_stop = stop.clone();
    loop {
        tokio::select! {
            () = stopped(&mut stop) => break,
            Some(ended) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = ended {
                    if e.is_panic() {
                        tracing::error!("a connection's task panicked: {e}");
                    }
                }
            }
            accepted = listener.accept() => {
                let tcp = match accepted {
                    Ok((tcp, _)) => tcp,
                    Err(e) => {
                        accept_error(e).await;
                        continue;
                    }
                };
                // Answers are small single writes: Nagle would only delay them.
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!("TCP_NODELAY: {e}");
                }
                next_id += 1;
                match registry.admit(next_id) {
                    Some(conn) => {
                        registry.telemetry.connections_open.inc();
                        let serving = Serving {
                            id: next_id,
                            conn,
                            registry: registry.clone(),
                            router: router.clone(),
                            stop: conn_stop.clone(),
                            idle_timeout: config.idle_timeout,
                            tls: tls.clone(),
                        };
                        tasks.spawn(serving.run(tcp, protocols.clone()));
                    }
                    None => {
                        registry.telemetry.connections_refused.inc();
                        if let Ok(permit) = refusing.clone().try_acquire_owned() {
                            let acceptor = tls.as_ref().map(|t| t.refusal_acceptor());
                            tokio::spawn(refuse(tcp, refusal.clone(), acceptor, permit));
                        }
                    }
                }
            }
        }
    }
    drop(listener);
    while tasks.join_next().await.is_some() {}
}

/// Sleeps until `at`; forever if None.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Resolves once the stop signal is on (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Connection errors are the client's; others (out of file descriptors)
/// get a pause so the loop does not spin, as hyper 0.14 and axum do.
async fn accept_error(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!("accepting a connection: {e}");
    tokio::time::sleep(Duration::from_millis(250)).await;
}

/// The answer to a newcomer when every connection is busy.
fn refusal(max: usize) -> Vec<u8> {
    let body = format!(
        r#"{{"error":"all {max} connections (--max-connections) have a request in flight; retry shortly"}}"#
    );
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n\
         Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn refuse(
    tcp: TcpStream,
    answer: Arc<[u8]>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    _permit: OwnedSemaphorePermit,
) {
    let Some(acceptor) = tls else {
        answer_and_close(tcp, &answer).await;
        return;
    };
    // A TLS client can read a 503 only inside TLS: the handshake is the
    // price, bounded like the answer (and by MAX_REFUSING at once).
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        if let Ok(stream) = acceptor.accept(tcp).await {
            answer_and_close(stream, &answer).await;
        }
    })
    .await;
}

/// The answer to plain HTTP sent to the TLS port.
fn plaintext_answer() -> Vec<u8> {
    let body = r#"{"error":"this port speaks TLS: send the request to https:// (not http://)"}"#;
    format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n\
         Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Writes a canned answer, then closes once the client did (within 1 s).
async fn answer_and_close<S>(mut tcp: S, answer: &[u8])
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        tcp.write_all(answer).await?;
        tcp.shutdown().await?;
        // Read what the client sent until it closes: closing with unread
        // data resets the connection, which can discard our answer.
        let mut buf = [0u8; 4096];
        let mut left = 64usize << 10;
        while left > 0 {
            let n = tcp.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            left = left.saturating_sub(n);
        }
        Ok::<_, io::Error>(())
    })
    .await;
}

/// The open connections, to pick one to close at the cap.
struct Registry {
    max: usize,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    epoch: Instant,
    telemetry: Arc<Telemetry>,
}

struct Conn {
    /// Requests in flight, or CLOSED.
    inflight: AtomicU32,
    /// When its last request ended (or it opened), ms since the epoch.
    idle_since: AtomicU64,
    /// Told to close because it was picked at the cap.
    close: Notify,
}

impl Registry {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        crate::sync::lock(&self.conns)
    }

    /// A slot for a new connection, closing the one idle longest if at the
    /// cap; None if every connection has a request in flight.
    fn admit(&self, id: u64) -> Option<Arc<Conn>> {
        let mut conns = self.lock();
        // A connection may turn busy between the pick and the close: try again.
        for _ in 0..4 {
            if conns.len() < self.max {
                break;
            }
            let victim = conns
                .iter()
                .filter(|(_, c)| c.inflight.load(Ordering::Acquire) == 0)
                .min_by_key(|(_, c)| c.idle_since.load(Ordering::Relaxed))
                .map(|(id, c)| (*id, c.clone()));
            // None idle: every connection has a request in flight.
            let (victim_id, victim) = victim?;
            if victim.close_if_idle() {
                conns.remove(&victim_id);
                victim.close.notify_one();
                self.telemetry.connections_evicted.inc();
            }
        }
        if conns.len() >= self.max {
            return None;
        }
        let conn = Arc::new(Conn {
            inflight: AtomicU32::new(0),
            idle_since: AtomicU64::new(self.now_ms()),
            close: Notify::new(),
        });
        conns.insert(id, conn.clone());
        Some(conn)
    }
}

impl Conn {
    /// Marks the connection CLOSED if it has no request in flight, so none
    /// can start on it; then it may be closed without losing an answer.
    fn close_if_idle(&self) -> bool {
        self.inflight
            .compare_exchange(0, CLOSED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// One request in flight on a connection, from the head until the
/// handler's answer.
struct InFlight {
    conn: Arc<Conn>,
    registry: Arc<Registry>,
}

impl InFlight {
    fn begin(conn: &Arc<Conn>, registry: &Arc<Registry>) -> Option<InFlight> {
        conn.inflight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n != CLOSED).then(|| n + 1)
            })
            .ok()?;
        Some(InFlight {
            conn: conn.clone(),
            registry: registry.clone(),
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.conn
            .idle_since
            .store(self.registry.now_ms(), Ordering::Relaxed);
        self.conn.inflight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A request that arrived on a connection already picked to close.
fn closing_answer() -> Response<Body> {
    let mut resp = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "connection closing (idle at --max-connections, or shutdown); retry on a new connection",
    )
    .retry(1)
    .into_response();
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// One connection's task.
struct Serving {
    id: u64,
    conn: Arc<Conn>,
    registry: Arc<Registry>,
    router: Router,
    stop: watch::Receiver<bool>,
    /// `--idle-timeout`: the handshake's bound, the write timeout, and
    /// HTTP/2's idle close.
    idle_timeout: Duration,
    tls: Option<Arc<TlsServer>>,
}

/// The HTTP servers a connection may speak.
#[derive(Clone)]
struct Protocols {
    http1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
}

/// The TCP stream with the write timeout, under TLS if any.
type Limited = std::pin::Pin<Box<TimeoutStream<TcpStream>>>;

fn write_limited(tcp: TcpStream, timeout: Duration) -> Limited {
    let mut io = TimeoutStream::new(tcp);
    io.set_write_timeout(Some(timeout));
    Box::pin(io)
}

/// Why a TLS connection got no further than its handshake.
enum Refused {
    /// It sent plain HTTP (already answered 400).
    Plaintext,
    /// Closed before sending anything.
    Closed,
    Failed(io::Error),
}

/// The answer could not be written within the write timeout.
fn io_timed_out(e: &hyper::Error) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<io::Error>())
        .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut)
}

impl Serving {
    async fn run(mut self, tcp: TcpStream, protocols: Protocols) {
        let Some(tls) = self.tls.clone() else {
            let io = TokioIo::new(self.write_limited(tcp));
            let service = self.service(None);
            let served = protocols.http1.serve_connection(io, service);
            tokio::pin!(served);
            self.drive(served, |c| c.graceful_shutdown(), false).await;
            return;
        };
        let Some(stream) = self.handshake(tcp, &tls).await else {
            return;
        };
        let session = stream.get_ref().1;
        let h2 = session.alpn_protocol() == Some(b"h2".as_slice());
        let service = self.service(peer_identity(session));
        let io = TokioIo::new(stream);
        if h2 {
            let served = protocols.h2.serve_connection(io, service);
            tokio::pin!(served);
            self.drive(served, |c| c.graceful_shutdown(), true).await;
        } else {
            let served = protocols.http1.serve_connection(io, service);
            tokio::pin!(served);
            self.drive(served, |c| c.graceful_shutdown(), false).await;
        }
    }

    /// A client that stops reading its answers is cut off like an idle
    /// one: hyper has no write timeout, and a write that makes no progress
    /// for this long fails with TimedOut. The timer only starts when the
    /// kernel says "not now", so a write that goes through costs nothing.
    /// Under TLS, so that TLS's own buffering cannot hide a stuck client.
    fn write_limited(&self, tcp: TcpStream) -> Limited {
        write_limited(tcp, self.idle_timeout)
    }

    /// Each request counted in flight on this connection while the router
    /// handles it, with the client certificate's name in its extensions.
    fn service(
        &self,
        peer: Option<PeerIdentity>,
    ) -> impl hyper::service::Service<
        Request<Incoming>,
        Response = Response<Body>,
        Error = Infallible,
        Future = impl std::future::Future<Output = Result<Response<Body>, Infallible>> + Send,
    > + Clone {
        let (conn, registry, router) = (
            self.conn.clone(),
            self.registry.clone(),
            self.router.clone(),
        );
        hyper::service::service_fn(move |mut req: Request<Incoming>| {
            if let Some(peer) = &peer {
                req.extensions_mut().insert(peer.clone());
            }
            let inflight = InFlight::begin(&conn, &registry);
            let router = router.clone();
            async move {
                let Some(_inflight) = inflight else {
                    return Ok::<_, Infallible>(closing_answer());
                };
                router.oneshot(req).await
            }
        })
    }

    /// The TLS handshake, within the idle timeout, given up if the
    /// connection is picked at the cap or the server stops meanwhile.
    /// Every failure is counted by its class and logged at debug.
    async fn handshake(&mut self, tcp: TcpStream, tls: &TlsServer) -> Option<TlsStream<Limited>> {
        let acceptor = tls.acceptor();
        let write_timeout = self.idle_timeout;
        let attempt = async move {
            let mut first = [0u8; 1];
            let n = tcp.peek(&mut first).await.map_err(Refused::Failed)?;
            if n == 0 {
                return Err(Refused::Closed);
            }
            if first[0] != TLS_HANDSHAKE_RECORD {
                answer_and_close(tcp, &plaintext_answer()).await;
                return Err(Refused::Plaintext);
            }
            acceptor
                .accept(write_limited(tcp, write_timeout))
                .await
                .map_err(Refused::Failed)
        };
        let conn = self.conn.clone();
        let outcome = tokio::select! {
            done = tokio::time::timeout(self.idle_timeout, attempt) => done,
            // Picked at the cap, or shutting down: a handshake is not a
            // request in flight.
            _ = conn.close.notified() => return None,
            () = stopped(&mut self.stop) => return None,
        };
        let telemetry = &self.registry.telemetry;
        let reason = match outcome {
            Ok(Ok(stream)) => return Some(stream),
            Err(_elapsed) => {
                telemetry.connections_timed_out.inc();
                tracing::debug!("TLS handshake: no ClientHello within --idle-timeout");
                "timeout"
            }
            Ok(Err(Refused::Plaintext)) => {
                tracing::debug!("TLS port: plain HTTP answered 400");
                "plaintext_http"
            }
            Ok(Err(Refused::Closed)) => {
                tracing::debug!("TLS port: closed before a ClientHello");
                "closed"
            }
            Ok(Err(Refused::Failed(e))) => {
                tracing::debug!("TLS handshake failed: {e}");
                failure_reason(&e)
            }
        };
        telemetry
            .tls_handshake_failures
            .with_label_values(&[reason])
            .inc();
        None
    }

    /// Serves one connection until hyper is done with it, closing it when
    /// picked at the cap or at shutdown; `h2`: also after `--idle-timeout`
    /// with no request in flight (hyper's HTTP/2 server has no idle close).
    async fn drive<C>(
        mut self,
        mut served: std::pin::Pin<&mut C>,
        graceful: impl Fn(std::pin::Pin<&mut C>),
        h2: bool,
    ) where
        C: std::future::Future<Output = Result<(), hyper::Error>>,
    {
        // Dropped then, even if hyper is not done.
        let mut drop_at: Option<Instant> = None;
        // Shutting down: closed then if idle.
        let mut idle_check_at: Option<Instant> = None;
        // HTTP/2: when it may have been idle for --idle-timeout.
        let mut h2_idle_at = h2.then(|| Instant::now() + self.idle_timeout);
        let mut stopping = false;
        loop {
            tokio::select! {
                done = served.as_mut() => {
                    if let Err(e) = done {
                        if e.is_timeout() || io_timed_out(&e) {
                            self.registry.telemetry.connections_timed_out.inc();
                        }
                        tracing::debug!("connection: {e}");
                    }
                    break;
                }
                // Picked at the cap (already CLOSED): hyper flushes the last
                // answer and closes an idle keep-alive connection at once.
                _ = self.conn.close.notified(), if drop_at.is_none() => {
                    graceful(served.as_mut());
                    drop_at = Some(Instant::now() + CLOSE_GRACE);
                }
                // hyper closes a connection idle after an answer, or with
                // nothing read yet, at once; a busy one after its answer.
                // One with half a head (slowloris) is ours to close below,
                // rather than at the idle timeout.
                () = stopped(&mut self.stop), if !stopping => {
                    stopping = true;
                    graceful(served.as_mut());
                    idle_check_at = Some(Instant::now() + SHUTDOWN_GRACE);
                }
                // Idle now: nothing can start on it, and the last answer
                // was written in the same poll that finished its request.
                () = sleep_until(idle_check_at) => {
                    idle_check_at = None;
                    if self.conn.close_if_idle() {
                        break;
                    }
                }
                () = sleep_until(h2_idle_at), if drop_at.is_none() => {
                    h2_idle_at = self.h2_idle_until();
                    if h2_idle_at.is_none() {
                        self.registry.telemetry.connections_timed_out.inc();
                        tracing::debug!("HTTP/2 connection idle for --idle-timeout: closing");
                        // GOAWAY, then closed: no stream is open.
                        graceful(served.as_mut());
                        drop_at = Some(Instant::now() + CLOSE_GRACE);
                    }
                }
                () = sleep_until(drop_at) => break,
            }
        }
    }

    /// None once the connection has had no request in flight for
    /// `--idle-timeout` (then it is marked CLOSED); else when to look again.
    fn h2_idle_until(&self) -> Option<Instant> {
        let idle_since = self.conn.idle_since.load(Ordering::Relaxed);
        let due = self.registry.epoch + Duration::from_millis(idle_since) + self.idle_timeout;
        let busy = self.conn.inflight.load(Ordering::Acquire) != 0;
        if busy {
            return Some(Instant::now() + self.idle_timeout);
        }
        if due > Instant::now() {
            return Some(due);
        }
        if self.conn.close_if_idle() {
            None
        } else {
            // A request began between the two reads.
            Some(Instant::now() + self.idle_timeout)
        }
    }
}

/// The slot is freed however the task ends: done, aborted or panicked.
impl Drop for Serving {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
        self.registry.telemetry.connections_open.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(max: usize) -> Arc<Registry> {
        Arc::new(Registry {
            max,
            conns: Mutex::default(),
            epoch: Instant::now(),
            telemetry: Arc::new(Telemetry::new().unwrap()),
        })
    }

    #[test]
    fn at_the_cap_the_connection_idle_longest_makes_room() {
        let r = registry(2);
        let a = r.admit(1).unwrap();
        let b = r.admit(2).unwrap();
        // a answered a request more recently than b opened.
        a.idle_since.store(r.now_ms() + 10, Ordering::Relaxed);
        let c = r.admit(3).unwrap();
        assert_eq!(b.inflight.load(Ordering::Acquire), CLOSED);
        assert!(
            InFlight::begin(&b, &r).is_none(),
            "no request on a closed one"
        );
        assert_eq!(r.telemetry.connections_evicted.get(), 1);
        // Both left busy: the next newcomer is refused.
        let _ga = InFlight::begin(&a, &r).unwrap();
        let _gc = InFlight::begin(&c, &r).unwrap();
        assert!(r.admit(4).is_none());
        assert_eq!(a.inflight.load(Ordering::Acquire), 1);
        drop(_gc);
        // One busy (a), one idle (c).
        assert_eq!(c.inflight.load(Ordering::Acquire), 0);
        assert!(r.admit(5).is_some(), "c is idle again");
        assert_eq!(c.inflight.load(Ordering::Acquire), CLOSED);
    }

    #[test]
    fn refusal_is_a_complete_503() {
        let text = String::from_utf8(refusal(50)).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains("Retry-After: 1"));
        assert!(head.contains("Connection: close"));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(json["error"]
            .as_str()
            .unwrap()
            .contains("--max-connections"));
    }

    // The write-timeout semantics the never-reading-client defence relies on.
    fn write_limited(
        a: tokio::io::DuplexStream,
    ) -> std::pin::Pin<Box<TimeoutStream<tokio::io::DuplexStream>>> {
        let mut s = TimeoutStream::new(a);
        s.set_write_timeout(Some(Duration::from_secs(5)));
        Box::pin(s)
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_that_never_reads_times_the_write_out() {
        // A 64-byte pipe whose other end is never read.
        let (a, _b) = tokio::io::duplex(64);
        let mut w = write_limited(a);
        let err = w.write_all(&[0u8; 1024]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_reading_is_not_cut_off() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut w = write_limited(a);
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 16];
            let mut total = 0;
            while total < 1024 {
                // Slower than the limit in all, faster than it each time.
                tokio::time::sleep(Duration::from_secs(1)).await;
                total += b.read(&mut buf).await.unwrap();
            }
            total
        });
        w.write_all(&[0u8; 1024]).await.unwrap();
        drop(w);
        assert_eq!(reader.await.unwrap(), 1024);
    }
}
