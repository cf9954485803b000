//! `POST /api/v1/write`, Prometheus remote_write 1.0 and 2.0: the content
//! type (which version) and encoding (snappy), the decoder and the mapping
//! to metrics (`crate::remote_write`), and the answer. The path is
//! [`super::ingest`]'s.
//!
//! Not all-or-nothing, unlike `POST /metrics`: remote_write senders never
//! retry a 4xx, so one bad series must not cost the good ones. The valid
//! series are stored and the 400 says how many were refused and why. A 429
//! or 503 means nothing was stored: the sender retries the whole request.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, request, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::body::Coding;
use super::error::ApiError;
use super::ingest::{self, Decoded, Incoming, Ingest, Stored};
use super::state::App;
use crate::remote_write::{self, Refused, Version};
use crate::telemetry::Protocol;

const SAMPLES_WRITTEN: HeaderName =
    HeaderName::from_static("x-prometheus-remote-write-samples-written");
const HISTOGRAMS_WRITTEN: HeaderName =
    HeaderName::from_static("x-prometheus-remote-write-histograms-written");
const EXEMPLARS_WRITTEN: HeaderName =
    HeaderName::from_static("x-prometheus-remote-write-exemplars-written");

pub async fn post_write(State(app): State<Arc<App>>, req: Request) -> Response {
    ingest::handle(&app, &RemoteWrite, req).await
}

struct RemoteWrite;

impl Ingest for RemoteWrite {
    const PROTOCOL: Protocol = Protocol::RemoteWrite;
    const CODING: Coding = Coding::Snappy;
    type Asked = Version;
    type Kept = remote_write::Decoded;
    type Refused = Account;

    fn asked(&self, head: &request::Parts) -> Result<Version, ApiError> {
        let version = version_asked(&head.headers)
            .map_err(|m| ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, m))?;
        check_snappy(&head.headers)?;
        Ok(version)
    }

    fn decode<'s>(
        &self,
        app: &App,
        request: Incoming<'s, Version>,
        kept: &'s mut Option<remote_write::Decoded>,
    ) -> Result<Decoded<'s, Account>, String> {
        let now_ms = request.received.ms() as i64;
        let decoded = remote_write::decode(*request.asked, request.body, now_ms)
            .map_err(|m| format!("body: {m}"))?;
        let decoded = kept.insert(decoded);
        let refused = std::mem::take(&mut decoded.refused);
        let kept = Written {
            samples: decoded.samples,
            histograms: decoded.histograms,
            exemplars: decoded.exemplars,
        };
        Ok(Decoded {
            metrics: remote_write::metrics_of(decoded, request.client, &app.remote_write_types),
            refused_points: refused.samples + refused.histograms + refused.exemplars,
            refused: Account { refused, kept },
        })
    }

    /// 204 when everything was stored; a 400 that counts what was refused
    /// and quotes the first reasons. 2.0 senders read the written headers
    /// on every answer (a refused request wrote nothing).
    fn answer(
        &self,
        head: &request::Parts,
        outcome: Result<Stored<Account>, ApiError>,
    ) -> Response {
        let (mut response, written) = match outcome {
            Ok(stored) if stored.refused.refused.is_empty() => {
                (StatusCode::NO_CONTENT.into_response(), stored.refused.kept)
            }
            Ok(stored) => (partial(&stored).into_response(), stored.refused.kept),
            Err(e) => (e.into_response(), Written::default()),
        };
        if version_asked(&head.headers) == Ok(Version::V2) {
            let h = response.headers_mut();
            h.insert(SAMPLES_WRITTEN, HeaderValue::from(written.samples));
            h.insert(HISTOGRAMS_WRITTEN, HeaderValue::from(written.histograms));
            h.insert(EXEMPLARS_WRITTEN, HeaderValue::from(written.exemplars));
        }
        response
    }
}

/// What a request kept and refused, for its answer.
#[derive(Debug)]
struct Account {
    refused: Refused,
    /// Written once the request is stored (a stored request is stored
    /// whole: every part, or none and an error).
    kept: Written,
}

/// Points of each kind, as the 2.0 written headers count them.
#[derive(Debug, Clone, Copy, Default)]
struct Written {
    samples: usize,
    histograms: usize,
    exemplars: usize,
}

/// The 400 of a request stored in part.
fn partial(stored: &Stored<Account>) -> ApiError {
    let Account { refused, kept } = &stored.refused;
    ApiError::bad_request(format!(
        "{} series refused ({} samples, {} native histogram samples, {} exemplars); \
         {} samples stored, {} native histogram samples stored, {} exemplars stored. \
         First reasons: {}",
        refused.series,
        refused.samples,
        refused.histograms,
        refused.exemplars,
        kept.samples,
        kept.histograms,
        kept.exemplars,
        ingest::first_reasons(&refused.reasons)
    ))
}

fn version_asked(headers: &HeaderMap) -> Result<Version, String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("?"));
    remote_write::version_of(content_type)
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
