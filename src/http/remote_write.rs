//! `POST /api/v1/write`, Prometheus remote_write 1.0 and 2.0, top to bottom:
//! framing → content type (which version) and encoding → admission → body
//! (snappy, its declared length checked before anything is allocated) →
//! decode + validate each series → queue → ack.
//!
//! Not all-or-nothing, unlike `POST /metrics`: remote_write senders never
//! retry a 4xx, so one bad series must not cost the good ones. The valid
//! series are stored and the 400 says how many were refused and why. A 429
//! or 503 means nothing was stored: the sender retries the whole request.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::admit::{admit, record};
use super::body::{check_headers, read_raw};
use super::error::ApiError;
use super::parts::{count_refused, Parts};
use super::state::App;
use crate::remote_write::{self, Decompress, Version};
use crate::telemetry::Protocol;

const SAMPLES_WRITTEN: HeaderName =
    HeaderName::from_static("x-prometheus-remote-write-samples-written");
const HISTOGRAMS_WRITTEN: HeaderName =
    HeaderName::from_static("x-prometheus-remote-write-histograms-written");
const EXEMPLARS_WRITTEN: HeaderName =
    HeaderName::from_static("x-prometheus-remote-write-exemplars-written");

/// Reasons quoted in a 400, at most.
const REASONS_SHOWN: usize = 5;

pub async fn post_write(State(app): State<Arc<App>>, req: Request) -> Response {
    let started = Instant::now();
    let v2 = version_asked(req.headers()) == Ok(Version::V2);
    let mut response = match write(&app, req).await {
        Ok(ok) => ok,
        Err(e) => e.into_response(),
    };
    // 2.0 senders read these on every answer; a refused request wrote nothing.
    if v2 && !response.headers().contains_key(SAMPLES_WRITTEN) {
        written_headers(&mut response, 0);
    }
    record(&app, Protocol::RemoteWrite, started, &response);
    response
}

fn version_asked(headers: &HeaderMap) -> Result<Version, String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("?"));
    remote_write::version_of(content_type)
}

fn written_headers(response: &mut Response, samples: usize) {
    let h = response.headers_mut();
    h.insert(SAMPLES_WRITTEN, HeaderValue::from(samples));
    h.insert(HISTOGRAMS_WRITTEN, HeaderValue::from(0));
    h.insert(EXEMPLARS_WRITTEN, HeaderValue::from(0));
}

async fn write(app: &App, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    check_headers(&parts.headers)?;
    let version = version_asked(&parts.headers)
        .map_err(|m| ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, m))?;
    check_snappy(&parts.headers)?;
    let admitted = admit(app, &parts.headers)?;

    let raw = read_raw(body, &parts.headers, app.max_body).await?;
    let bytes = remote_write::decompress(&raw, app.max_body).map_err(|e| match e {
        Decompress::TooLarge { declared, .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "body: snappy declares {declared} bytes uncompressed, over the limit of {} bytes",
                app.max_body
            ),
        ),
        Decompress::Invalid(m) => ApiError::bad_request(format!("body: not valid snappy: {m}")),
    })?;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let decoded = remote_write::decode(version, &bytes, now_ms).map_err(|m| {
        app.telemetry.validation_errors.inc();
        ApiError::bad_request(format!("body: {m}"))
    })?;
    let mut parts = Parts::new(app, &admitted.client);
    for m in remote_write::metrics_of(&decoded, &admitted.client, &app.remote_write_types) {
        let labels = m.tags.iter().map(|(k, v)| (k.as_ref(), v.as_ref()));
        let name = m.name.clone();
        parts.series(&name, labels).push(m);
    }
    let written = parts.store(app, Protocol::RemoteWrite).await?;

    let refused = &decoded.refused;
    let mut response = if refused.is_empty() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        let points = refused.samples + refused.histograms + refused.exemplars;
        count_refused(app, Protocol::RemoteWrite, points);
        let reasons = refused.reasons.iter().take(REASONS_SHOWN);
        let reasons: Vec<&str> = reasons.map(String::as_str).collect();
        ApiError::bad_request(format!(
            "{} series refused ({} samples, {} native histogram samples, {} exemplars); \
             {written} samples stored. First reasons: {}",
            refused.series,
            refused.samples,
            refused.histograms,
            refused.exemplars,
            reasons.join("; ")
        ))
        .into_response()
    };
    if version == Version::V2 {
        written_headers(&mut response, written);
    }
    Ok(response)
}

/// remote_write bodies are snappy, always (both versions of the spec).
fn check_snappy(headers: &HeaderMap) -> Result<(), ApiError> {
    let encoding = headers.get(header::CONTENT_ENCODING).map(|v| v.as_bytes());
    match encoding {
        Some(e) if e.trim_ascii().eq_ignore_ascii_case(b"snappy") => Ok(()),
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content-Encoding: remote_write takes snappy, got {:?}",
                other.map(String::from_utf8_lossy).unwrap_or_default()
            ),
        )),
    }
}
