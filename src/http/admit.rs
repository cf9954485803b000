//! The steps every ingest endpoint takes before it reads a body: who the
//! client is, whether it is over its rate, and a slot among the requests in
//! flight. Then the answer is counted, whatever it was.

use std::time::Instant;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use tokio::sync::SemaphorePermit;

use super::error::ApiError;
use super::state::App;
use crate::auth::{AuthError, PeerIdentity};
use crate::telemetry::Protocol;

/// A request let in: its client id, and its slot until it is dropped.
pub struct Admitted<'a> {
    pub client: String,
    _slot: SemaphorePermit<'a>,
}

/// Client id → rate limit → in-flight slot, refusing with 401/400, 429 or 503.
/// `peer`: the name of the client's verified certificate (mutual TLS), from
/// the request's extensions.
pub fn admit<'a>(
    app: &'a App,
    headers: &HeaderMap,
    peer: Option<&PeerIdentity>,
) -> Result<Admitted<'a>, ApiError> {
    let client = app.auth.client_of(headers, peer).map_err(|e| match e {
        AuthError::Unauthorized(m) => ApiError::new(StatusCode::UNAUTHORIZED, m),
        AuthError::BadClientId(m) => ApiError::bad_request(m),
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
    let slot = app.inflight.try_acquire().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many requests in flight",
        )
        .retry(1)
    })?;
    Ok(Admitted {
        client,
        _slot: slot,
    })
}

/// Counts an answered request: its protocol, status and how long it took.
pub fn record(app: &App, protocol: Protocol, started: Instant, response: &Response) {
    let t = &app.telemetry;
    t.request_latency.observe(started.elapsed().as_secs_f64());
    t.requests
        .with_label_values(&[protocol.as_str(), response.status().as_str()])
        .inc();
}
