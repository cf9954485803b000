//! `POST /metrics`, the C++ system's JSON: its content type, its decoder
//! (`batch::decode`) and its answer. The path is [`super::ingest`]'s.
//!
//! All or nothing: every refusal happens before the queue sees the batch,
//! and the batch is stored whole, in its client's partition, so a non-200
//! answer always means "nothing stored, safe to retry".

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, request, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::body::Coding;
use super::error::{json_response, ApiError};
use super::ingest::{self, Decoded, Incoming, Ingest, Stored};
use super::state::App;
use crate::batch;
use crate::telemetry::Protocol;

pub async fn post_metrics(State(app): State<Arc<App>>, req: Request) -> Response {
    ingest::handle(&app, &Json, req).await
}

struct Json;

impl Ingest for Json {
    const PROTOCOL: Protocol = Protocol::Json;
    const CODING: Coding = Coding::Gzip;
    const WHOLE: bool = true;
    type Asked = ();
    type Kept = ();
    type Refused = ();

    fn asked(&self, head: &request::Parts) -> Result<(), ApiError> {
        check_content_type(&head.headers)
    }

    fn decode<'s>(
        &self,
        _app: &App,
        request: Incoming<'s, ()>,
        _kept: &'s mut Option<()>,
    ) -> Result<Decoded<'s, ()>, String> {
        let metrics = batch::decode(request.body).map_err(|e| e.0)?;
        Ok(Decoded {
            metrics,
            refused_points: 0,
            refused: (),
        })
    }

    /// `{"success":true,"metrics_processed":N,"partition":P,"offset":O}`,
    /// the offset (of the batch's first record) only once it is durable.
    fn answer(&self, _head: &request::Parts, outcome: Result<Stored<()>, ApiError>) -> Response {
        let stored = match outcome {
            Ok(stored) => stored,
            Err(e) => return e.into_response(),
        };
        // A whole batch is one message in its client's partition, or
        // (over --max-record-bytes) several in a row there: the answer
        // names the first. None at all would be a queue that broke its
        // promise, and nothing stored.
        let Some(&receipt) = stored.receipts.first() else {
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the batch was stored as no message at all",
            )
            .into_response();
        };
        let mut body = format!(
            r#"{{"success":true,"metrics_processed":{},"partition":{}"#,
            stored.metrics, receipt.partition
        );
        if let Some(offset) = receipt.offset {
            body.push_str(&format!(r#","offset":{offset}"#));
        }
        body.push('}');
        json_response(StatusCode::OK, body)
    }
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
