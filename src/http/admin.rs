//! The endpoints that are not ingest: liveness, readiness, the counters as
//! JSON and as Prometheus text, and the 404 that lists what exists.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;

use super::error::json_response;
use super::state::App;

pub async fn health() -> Response {
    json_response(
        StatusCode::OK,
        r#"{"status":"healthy","service":"ingestion"}"#.into(),
    )
}

/// `GET /ready`: 200 while the queue takes writes and we are not shutting down.
pub async fn ready(State(app): State<Arc<App>>) -> Response {
    if !app.shutting_down.load(Ordering::Acquire) && app.queue.ready() {
        json_response(StatusCode::OK, r#"{"status":"ready"}"#.into())
    } else {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"status":"unavailable"}"#.into(),
        )
    }
}

pub async fn stats(State(app): State<Arc<App>>) -> Response {
    // Serializing plain counters cannot fail; if it did, the answer says so
    // rather than a 200 with an empty body.
    match serde_json::to_string(&app.telemetry.stats()) {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(e) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({ "error": format!("cannot write the stats: {e}") }).to_string(),
        ),
    }
}

pub async fn prometheus(State(app): State<Arc<App>>) -> Response {
    let mut resp = Response::new(app.telemetry.render().into());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    resp
}

pub async fn not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        r#"{"error":"no such endpoint (POST /metrics, /api/v1/write, /write, /api/v2/write, /v1/metrics; GET / (the status page), /api/status, /health, /ready, /stats, /metrics)"}"#
            .into(),
    )
}
