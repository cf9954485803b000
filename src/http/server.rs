//! The routes, and one server's life: serve until the shutdown future
//! resolves, then shut down in order: stop accepting → finish in-flight
//! requests → make every accepted batch durable (the queue's shutdown) →
//! report the counts.
//!
//! The caller hands in the listener and the shutdown future (a signal in
//! `main`, a channel in tests), so the whole server runs in-process too.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::otlp;
use super::state::App;
use super::{admin, connections, influx, json, remote_write, status};
use crate::queue::ShutdownReport;
use crate::tls::server::TlsServer;

#[derive(Clone, Copy, Debug)]
pub struct ServerConfig {
    /// Longest time one request may take, body included (then 408).
    pub request_timeout: Duration,
    /// How long shutdown may take to finish requests and flush the queue.
    pub shutdown_timeout: Duration,
    pub connections: connections::Config,
}

pub fn router(app: Arc<App>, request_timeout: Duration) -> Router {
    Router::new()
        .route("/metrics", get(admin::prometheus).post(json::post_metrics))
        .route("/api/v1/write", post(remote_write::post_write))
        .route("/api/v2/write", post(influx::post_v2_write))
        .route("/write", post(influx::post_v1_write))
        .route("/ping", get(influx::ping).head(influx::ping))
        .route("/query", get(influx::query).post(influx::query))
        .route("/v1/metrics", post(otlp::post_metrics))
        .route("/health", get(admin::health))
        .route("/ready", get(admin::ready))
        .route("/stats", get(admin::stats))
        .route("/", get(status::page))
        .route("/status", get(status::page))
        .route("/status/style.css", get(status::style))
        .route("/status/app.js", get(status::script))
        .route("/api/status", get(status::api))
        .fallback(admin::not_found)
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .with_state(app)
}

/// Serves until `shutdown` resolves, then shuts down in order. Returns what
/// shutdown managed; the caller turns lost batches into a non-zero exit.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<ShutdownReport> {
    run_tls(listener, app, config, None, shutdown).await
}

/// [`run`], with every connection TLS when `tls` is given.
pub async fn run_tls(
    listener: TcpListener,
    app: Arc<App>,
    config: ServerConfig,
    tls: Option<Arc<TlsServer>>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<ShutdownReport> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(listen = %listener.local_addr()?, scheme, "metricstream serving");
    let (stop_tx, stop_rx) = watch::channel(false);
    let service = router(app.clone(), config.request_timeout);
    let mut server = tokio::spawn(connections::serve(
        listener,
        service,
        config.connections,
        app.telemetry.clone(),
        tls,
        stop_rx,
    ));
    let forgetting = tokio::spawn(forget_idle_clients(app.clone()));

    tokio::select! {
        ended = &mut server => {
            // The accept loop only ends on the stop signal or a panic.
            ended?;
        }
        () = shutdown => {}
    }
    tracing::info!("shutting down: no new connections; finishing in-flight requests");
    app.shutting_down.store(true, Ordering::Release);
    let _ = stop_tx.send(true);
    let deadline = tokio::time::Instant::now() + config.shutdown_timeout;
    app.queue.closing(deadline);
    if tokio::time::timeout_at(deadline, &mut server)
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight at the shutdown deadline; they get no answer");
        server.abort();
    }
    forgetting.abort();
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

/// The rate limiters keep a cell per client (and per tenant): drop the
/// idle ones now and then.
async fn forget_idle_clients(app: Arc<App>) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tick.tick().await;
        for l in [&app.limiter, &app.tenant_limiter].into_iter().flatten() {
            l.forget_idle();
        }
    }
}
