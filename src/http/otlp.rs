//! `POST /v1/metrics`, OTLP/HTTP metrics: the content type (protobuf or
//! JSON), the decoder (`crate::otlp`, which maps points to metrics) and the
//! answers. The path is [`super::ingest`]'s.
//!
//! Answers as the OTLP/HTTP spec gives them, in the request's encoding:
//! 200 with an `ExportMetricsServiceResponse`, whose `partial_success` says
//! how many points were refused and why (the valid ones are stored); a 400
//! when every point was refused (bad data, not a partial success); every
//! failure with a `google.rpc.Status` body (JSON when the content type was
//! not one OTLP speaks). A 429 or 503 carries `Retry-After` and means
//! nothing was stored: the exporter retries the whole request.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, request, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::body::Coding;
use super::error::ApiError;
use super::ingest::{self, Decoded, Incoming, Ingest, Stored};
use super::state::App;
use crate::otlp::{self, Encoding, Refused};
use crate::telemetry::Protocol;

pub async fn post_metrics(State(app): State<Arc<App>>, req: Request) -> Response {
    ingest::handle(&app, &Otlp, req).await
}

struct Otlp;

impl Ingest for Otlp {
    const PROTOCOL: Protocol = Protocol::Otlp;
    const CODING: Coding = Coding::Gzip;
    type Asked = Encoding;
    type Kept = ();
    type Refused = Refused;

    fn asked(&self, head: &request::Parts) -> Result<Encoding, ApiError> {
        encoding(&head.headers).map_err(|m| ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, m))
    }

    fn decode<'s>(
        &self,
        _app: &App,
        request: Incoming<'s, Encoding>,
        _kept: &'s mut Option<()>,
    ) -> Result<Decoded<'s, Refused>, String> {
        let decoded = otlp::decode(*request.asked, request.body, request.received.ms())
            .map_err(|m| format!("body: {m}"))?;
        Ok(Decoded {
            metrics: decoded.metrics,
            refused_points: decoded.refused.points,
            refused: decoded.refused,
        })
    }

    fn answer(
        &self,
        head: &request::Parts,
        outcome: Result<Stored<Refused>, ApiError>,
    ) -> Response {
        let encoding = encoding(&head.headers).unwrap_or(Encoding::Json);
        let stored = match outcome {
            Ok(stored) => stored,
            Err(e) => return failure(e, encoding),
        };
        // Nothing stored and points refused: not a partial success but bad
        // data, which the spec answers with a 400 (that exporters log, too).
        if stored.metrics == 0 && stored.refused.points > 0 {
            return failure(ApiError::bad_request(stored.refused.message()), encoding);
        }
        answer(
            StatusCode::OK,
            encoding,
            otlp::export_response(encoding, &stored.refused),
        )
    }
}

fn encoding(headers: &HeaderMap) -> Result<Encoding, String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("?"));
    otlp::encoding_of(content_type)
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
