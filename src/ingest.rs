//! `POST /metrics`, top to bottom: content type → client id → rate limit →
//! body (size limit, gzip) → decode + validate → queue → ack.
//!
//! Every refusal happens before the queue sees the batch, and the queue
//! stores a batch whole or not at all, so a non-200 answer always means
//! "nothing stored, safe to retry".

use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};

use crate::auth::AuthError;
use crate::batch;
use crate::queue::{Message, QueueError};
use crate::server::App;

/// A refusal: status, a message that says what and where, maybe Retry-After.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn retry(mut self, secs: u64) -> ApiError {
        self.retry_after = Some(secs.max(1));
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message }).to_string();
        let mut resp = (self.status, body).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

pub async fn post_metrics(State(app): State<Arc<App>>, req: Request) -> Response {
    let started = Instant::now();
    let response = match ingest(&app, req).await {
        Ok(ok) => ok,
        Err(e) => e.into_response(),
    };
    let t = &app.telemetry;
    t.request_latency.observe(started.elapsed().as_secs_f64());
    t.requests
        .with_label_values(&[response.status().as_str()])
        .inc();
    response
}

async fn ingest(app: &App, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    check_headers(&parts.headers)?;
    check_content_type(&parts.headers)?;
    let client = app.auth.client_for(&parts.headers).map_err(|e| match e {
        AuthError::Unauthorized(m) => ApiError::new(StatusCode::UNAUTHORIZED, m),
        AuthError::BadClientId(m) => ApiError::new(StatusCode::BAD_REQUEST, m),
    })?;
    if let Some(limiter) = &app.limiter {
        if let Err(wait) = limiter.check(&client) {
            app.telemetry.rate_limited_requests.inc();
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("client {client}: over {} requests/s", app.rate_limit),
            )
            .retry(wait.as_secs_f64().ceil() as u64));
        }
    }
    // Bounds the memory held by bodies in flight; past it, shed load.
    let _permit = app.inflight.try_acquire().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many requests in flight",
        )
        .retry(1)
    })?;

    let body = read_body(body, &parts.headers, app.max_body).await?;
    let metrics = batch::decode(&body).map_err(|e| {
        app.telemetry.validation_errors.inc();
        ApiError::new(StatusCode::BAD_REQUEST, e.0)
    })?;
    let count = metrics.len();
    app.telemetry.metrics_received.inc_by(count as u64);

    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let value = batch::normalize(&client, now_ms, metrics);
    let msg = Message {
        key: client,
        value,
        timestamp_ms: now_ms as i64,
    };
    let delivery = app.queue.send(msg).await.map_err(|e| {
        let status = StatusCode::SERVICE_UNAVAILABLE;
        match e {
            QueueError::Full => ApiError::new(status, e.to_string()).retry(1),
            QueueError::Unavailable(_) => ApiError::new(status, e.to_string()).retry(5),
            QueueError::Closed => ApiError::new(status, e.to_string()).retry(5),
        }
    })?;
    app.telemetry.batches_processed.inc();

    let mut body = format!(
        r#"{{"success":true,"metrics_processed":{count},"partition":{}"#,
        delivery.partition
    );
    if let Some(offset) = delivery.offset {
        body.push_str(&format!(r#","offset":{offset}"#));
    }
    body.push('}');
    Ok(json_response(StatusCode::OK, body))
}

pub fn json_response(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Header bytes a `POST /metrics` may carry. hyper alone takes up to about
/// 400 KiB of headers; no metrics client needs more than a few hundred bytes.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Request framing the body reader cannot honour: oversized headers (431),
/// and a Transfer-Encoding other than plain `chunked`. hyper accepts e.g.
/// `gzip, chunked` but only undoes the chunking, so the body would be read
/// as something it is not (400).
fn check_headers(headers: &HeaderMap) -> Result<(), ApiError> {
    let bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if bytes > MAX_HEADER_BYTES {
        return Err(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("headers: {bytes} bytes, over the limit of {MAX_HEADER_BYTES}"),
        ));
    }
    let codings = headers.get_all(header::TRANSFER_ENCODING);
    // Two `chunked` lines would mean chunked twice: as unhonourable as gzip.
    let lines = codings.iter().count();
    for te in codings {
        if lines > 1 || !te.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked") {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "Transfer-Encoding: only chunked is supported, got {:?}",
                    String::from_utf8_lossy(te.as_bytes())
                ),
            ));
        }
    }
    Ok(())
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

/// Reads the body under the size limit and undoes gzip, also under the
/// limit (so a small gzip bomb cannot inflate past it).
async fn read_body(body: Body, headers: &HeaderMap, max: usize) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large(max));
    }
    let raw = match Limited::new(body, max).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large(max)),
        Err(e) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("body: could not be read: {e}"),
            ))
        }
    };
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("identity") | Some("") => Ok(raw),
        Some("gzip") | Some("x-gzip") => gunzip(&raw, max).map(Bytes::from),
        Some(other) => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Encoding: {other:?} is not supported (use gzip or none)"),
        )),
    }
}

fn too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("body: larger than the limit of {max} bytes"),
    )
}

/// Undoes gzip, stopping one byte past `max` so a gzip bomb costs at most
/// `max` bytes of memory: 400 if it is not gzip, 413 if it inflates past `max`.
pub fn gunzip(raw: &[u8], max: usize) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(max));
    let mut decoder = flate2::read::GzDecoder::new(raw).take(max as u64 + 1);
    decoder.read_to_end(&mut out).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("body: Content-Encoding is gzip but the body is not valid gzip: {e}"),
        )
    })?;
    if out.len() > max {
        return Err(too_large(max));
    }
    Ok(out)
}

/// `GET /ready`: 200 while the queue takes writes.
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

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn gunzip_checks_the_stream_and_the_limit() {
        assert_eq!(gunzip(&gzip(b"{}"), 100).unwrap(), b"{}");
        let e = gunzip(b"not gzip at all", 100).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("not valid gzip"), "{}", e.message);
        let whole = gzip(&[b'x'; 1000]);
        let e = gunzip(&whole[..whole.len() / 2], 10_000).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST, "{}", e.message);
        // 1 MiB of spaces is about 1 KiB of gzip: stopped at the limit.
        let bomb = gzip(&vec![b' '; 1 << 20]);
        assert!(bomb.len() < 4096);
        let e = gunzip(&bomb, 64 * 1024).unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(gunzip(&gzip(&[b' '; 100]), 100).unwrap().len(), 100);
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn oversized_headers_are_431() {
        assert!(check_headers(&headers(&[("x-a", &"a".repeat(10_000))])).is_ok());
        let e = check_headers(&headers(&[("x-a", &"a".repeat(100_000))])).unwrap_err();
        assert_eq!(e.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert!(
            e.message.starts_with("headers: 100007 bytes"),
            "{}",
            e.message
        );
    }

    #[test]
    fn only_plain_chunked_transfer_encoding_passes() {
        assert!(check_headers(&headers(&[("transfer-encoding", "chunked")])).is_ok());
        assert!(check_headers(&headers(&[("transfer-encoding", " Chunked ")])).is_ok());
        for bad in [
            vec![("transfer-encoding", "gzip, chunked")],
            vec![
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked"),
            ],
        ] {
            let e = check_headers(&headers(&bad)).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad:?}");
            assert!(e.message.starts_with("Transfer-Encoding:"), "{}", e.message);
        }
    }
}
