//! `POST /v1/metrics`, OTLP/HTTP metrics, top to bottom: framing → content
//! type (protobuf or JSON) → admission → body (gzip, the limit measured
//! after decompression) → decode + validate each data point → queue → ack.
//!
//! Answers as the OTLP/HTTP spec gives them, in the request's encoding:
//! 200 with an `ExportMetricsServiceResponse`, whose `partial_success` says
//! how many points were refused and why (the valid ones are stored); a 400
//! when every point was refused (bad data, not a partial success); every
//! failure with a `google.rpc.Status` body (JSON when the content type was
//! not one OTLP speaks). A 429 or 503 carries `Retry-After` and means
//! nothing was stored: the exporter retries the whole request.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::admit::{admit, record};
use super::body::{check_headers, read_body};
use super::error::ApiError;
use super::parts::{count_refused, now_ms, Parts};
use super::state::App;
use crate::otlp::{self, Encoding};
use crate::telemetry::Protocol;

pub async fn post_metrics(State(app): State<Arc<App>>, req: Request) -> Response {
    let started = Instant::now();
    let encoding = encoding(req.headers()).ok();
    let response = match export(&app, req).await {
        Ok(ok) => ok,
        Err(e) => failure(e, encoding.unwrap_or(Encoding::Json)),
    };
    record(&app, Protocol::Otlp, started, &response);
    response
}

fn encoding(headers: &HeaderMap) -> Result<Encoding, String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("?"));
    otlp::encoding_of(content_type)
}

async fn export(app: &App, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    check_headers(&parts.headers)?;
    let encoding = encoding(&parts.headers)
        .map_err(|m| ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, m))?;
    let admitted = admit(app, &parts.headers)?;
    let bytes = read_body(body, &parts.headers, app.max_body).await?;
    let decoded = otlp::decode(encoding, &bytes, now_ms()).map_err(|m| {
        app.telemetry.validation_errors.inc();
        ApiError::bad_request(format!("body: {m}"))
    })?;

    // Nothing stored and points refused: not a partial success but bad data,
    // which the spec answers with a 400 (that exporters log, too).
    if decoded.metrics.is_empty() && decoded.refused.points > 0 {
        count_refused(app, Protocol::Otlp, decoded.refused.points);
        return Err(ApiError::bad_request(decoded.refused.message()));
    }
    let mut stored = Parts::new(app, &admitted.client);
    for metric in decoded.metrics {
        let tags = metric.tags.iter().map(|(k, v)| (k.as_ref(), v.as_ref()));
        let part = stored.series(&metric.name, tags);
        part.push(metric);
    }
    stored.store(app, Protocol::Otlp).await?;
    count_refused(app, Protocol::Otlp, decoded.refused.points);
    Ok(answer(
        StatusCode::OK,
        encoding,
        otlp::export_response(encoding, &decoded.refused),
    ))
}

fn failure(e: ApiError, encoding: Encoding) -> Response {
    let body = otlp::status_body(encoding, e.status.as_u16(), &e.message);
    let mut response = answer(e.status, encoding, body);
    if let Some(secs) = e.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

fn answer(status: StatusCode, encoding: Encoding, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(encoding.content_type()),
    );
    response
}
