//! A do-nothing ingest endpoint: the ceiling `metricstream bench` numbers are
//! compared against. It reads each body (so the transfer is paid for) and
//! answers like the real server would, without doing any work.
//!
//! Usage: cargo run --release --example noop_server [LISTEN_ADDR]
//! (default 127.0.0.1:8081)

use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;

const ACK: &str = r#"{"success":true,"metrics_processed":3}"#;

async fn metrics(_body: Bytes) -> ([(header::HeaderName, &'static str); 1], &'static str) {
    ([(header::CONTENT_TYPE, "application/json")], ACK)
}

async fn health() -> ([(header::HeaderName, &'static str); 1], &'static str) {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
}

fn main() -> anyhow::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".to_string());
    // One worker per core, like a production server would run.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let app = Router::new()
            .route("/metrics", post(metrics))
            .route("/health", get(health))
            // Accept big --metrics-per-request bodies; a ceiling shouldn't reject.
            .layer(DefaultBodyLimit::disable());
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|e| anyhow::anyhow!("bind {listen}: {e}"))?;
        eprintln!("noop_server listening on http://{}", listener.local_addr()?);
        axum::serve(listener, app).await?;
        Ok(())
    })
}
