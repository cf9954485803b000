//! `POST /metrics`, the C++ system's JSON, top to bottom: framing →
//! content type → admission (client, rate, slot) → body → decode + validate
//! → queue → ack.
//!
//! Every refusal happens before the queue sees the batch, and the queue
//! stores a batch whole or not at all, so a non-200 answer always means
//! "nothing stored, safe to retry".

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::admit::{admit, record};
use super::body::{check_headers, read_body};
use super::error::{json_response, ApiError};
use super::state::App;
use crate::batch;
use crate::queue::partitioner::partition_for;
use crate::queue::Message;
use crate::telemetry::Protocol;

pub async fn post_metrics(State(app): State<Arc<App>>, req: Request) -> Response {
    let started = Instant::now();
    let response = match ingest(&app, req).await {
        Ok(ok) => ok,
        Err(e) => e.into_response(),
    };
    record(&app, Protocol::Json, started, &response);
    response
}

async fn ingest(app: &App, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    check_headers(&parts.headers)?;
    check_content_type(&parts.headers)?;
    let admitted = admit(app, &parts.headers)?;

    let body = read_body(body, &parts.headers, app.max_body).await?;
    let metrics = batch::decode(&body).map_err(|e| {
        app.telemetry.validation_errors.inc();
        ApiError::bad_request(e.0)
    })?;
    let count = metrics.len();
    app.telemetry.metrics_received.inc_by(count as u64);

    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let value = batch::normalize(&admitted.client, now_ms, metrics);
    // A batch stays whole, in its client's partition.
    let msg = Message {
        partition: partition_for(admitted.client.as_bytes(), app.queue.partitions()),
        key: admitted.client,
        value,
        timestamp_ms: now_ms as i64,
    };
    let receipt = app.queue.send(msg).await?;
    app.telemetry.batches_processed.inc();
    app.telemetry
        .samples_received
        .with_label_values(&[Protocol::Json.as_str()])
        .inc_by(count as u64);

    let mut body = format!(
        r#"{{"success":true,"metrics_processed":{count},"partition":{}"#,
        receipt.partition
    );
    if let Some(offset) = receipt.offset {
        body.push_str(&format!(r#","offset":{offset}"#));
    }
    body.push('}');
    Ok(json_response(StatusCode::OK, body))
}

/// JSON, `+json` types, or no Content-Type at all (the C++ clients' habit).
fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let mime = ct
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime == "application/json" || mime.ends_with("+json") {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!(
            "Content-Type: expected application/json, got {:?}",
            String::from_utf8_lossy(ct.as_bytes())
        ),
    ))
}
