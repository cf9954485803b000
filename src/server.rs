//! The HTTP server: routes, shared state, and ordered shutdown.
//!
//! Shutdown order: stop accepting → finish in-flight requests → make every
//! accepted batch durable (the queue's shutdown) → report the counts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::auth::Auth;
use crate::connections;
use crate::ingest::{self, json_response};
use crate::limits::ClientLimiter;
use crate::queue::{Queue, ShutdownReport};
use crate::telemetry::Telemetry;

/// Everything a request handler may touch. It knows the queue only as the
/// `Queue` trait.
pub struct App {
    pub queue: Arc<dyn Queue>,
    pub auth: Auth,
    pub limiter: Option<ClientLimiter>,
    pub rate_limit: u32,
    pub telemetry: Arc<Telemetry>,
    pub max_body: usize,
    pub inflight: Semaphore,
    pub shutting_down: AtomicBool,
}

pub fn router(app: Arc<App>, request_timeout: Duration) -> Router {
    Router::new()
        .route("/metrics", get(prometheus).post(ingest::post_metrics))
        .route("/health", get(health))
        .route("/ready", get(ingest::ready))
        .route("/stats", get(stats))
        .fallback(not_found)
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .with_state(app)
}

async fn health() -> Response {
    json_response(
        StatusCode::OK,
        r#"{"status":"healthy","service":"ingestion"}"#.into(),
    )
}

async fn stats(State(app): State<Arc<App>>) -> Response {
    let body = serde_json::to_string(&app.telemetry.stats()).unwrap_or_default();
    json_response(StatusCode::OK, body)
}

async fn prometheus(State(app): State<Arc<App>>) -> Response {
    let mut resp = Response::new(app.telemetry.render().into());
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    resp
}

async fn not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        r#"{"error":"no such endpoint (POST /metrics, GET /health, /ready, /stats, /metrics)"}"#
            .into(),
    )
}

/// Registers for SIGTERM and SIGINT now (so a signal that comes before the
/// future is first polled is not missed) and resolves on the first of them.
pub fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    #[cfg(unix)]
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// Serves until a signal, then shuts down in order. Returns what shutdown
/// managed; the caller turns lost batches into a non-zero exit.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    request_timeout: Duration,
    connections: connections::Config,
    shutdown_timeout: Duration,
) -> anyhow::Result<ShutdownReport> {
    let signal = shutdown_signal()?;
    tracing::info!(listen = %listener.local_addr()?, "metricstream serving");
    let (stop_tx, stop_rx) = watch::channel(false);
    let service = router(app.clone(), request_timeout);
    let mut server = tokio::spawn(connections::serve(
        listener,
        service,
        connections,
        app.telemetry.clone(),
        stop_rx,
    ));

    let limiter_app = app.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            tick.tick().await;
            if let Some(l) = &limiter_app.limiter {
                l.forget_idle();
            }
        }
    });

    tokio::select! {
        ended = &mut server => {
            // The accept loop only ends on the stop signal or a panic.
            ended?;
        }
        _ = signal => {}
    }
    tracing::info!("shutting down: no new connections; finishing in-flight requests");
    app.shutting_down.store(true, Ordering::Release);
    let _ = stop_tx.send(true);
    let deadline = tokio::time::Instant::now() + shutdown_timeout;
    app.queue.closing(deadline);
    if tokio::time::timeout_at(deadline, &mut server)
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight at the shutdown deadline; they get no answer");
        server.abort();
    }
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    let report = app.queue.shutdown(left.max(Duration::from_secs(1))).await;
    tracing::info!(
        delivered = report.delivered,
        spilled = report.spilled,
        lost = report.lost,
        "shutdown complete"
    );
    Ok(report)
}
