//! The steps every ingest endpoint takes before it reads a body: who the
//! client is, its tenant, whether it (or its tenant) is over its rate, and
//! a slot among the requests in flight. Then the answer is counted,
//! whatever it was.

use std::time::Instant;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use tokio::sync::SemaphorePermit;

use super::error::ApiError;
use super::state::App;
use crate::auth::{AuthError, PeerIdentity};
use crate::telemetry::Protocol;
use crate::tenant::{self, TenantError};

/// A request let in: its client id, its tenant, and its slot until it is
/// dropped.
pub struct Admitted<'a> {
    pub client: String,
    /// `X-Scope-OrgID`, or the client's bound tenant; `None`: no tenant.
    pub tenant: Option<String>,
    _slot: SemaphorePermit<'a>,
}

/// Client id → tenant → rate limits (client's, tenant's) → in-flight slot,
/// refusing with 401/400/403, 429 or 503. `peer`: the name of the client's verified certificate (mutual TLS), from
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
    // Identified: by an API key, or by a verified client certificate.
    let identified = app.auth.enabled() || peer.is_some();
    let tenant = tenant_of(app, &client, identified, headers)?;
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
    if let (Some(limiter), Some(tenant)) = (&app.tenant_limiter, &tenant) {
        if let Err(wait) = limiter.check(tenant) {
            app.telemetry.rate_limited_requests.inc();
            app.telemetry.tenants.rate_limited(tenant);
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "tenant {tenant}: over {} requests/s (--tenant-rate-limit)",
                    app.tenant_rate_limit
                ),
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
        tenant,
        _slot: slot,
    })
}

/// The request's tenant by the client's rule (`crate::tenant::rule`), 400
/// for a header that is no tenant id, 403 for a tenant the client may not
/// use. Counted per tenant from here on, whatever the answer after. An
/// `identified` client (API keys configured, or a verified certificate)
/// without a rule may not name a tenant.
fn tenant_of(
    app: &App,
    client: &str,
    identified: bool,
    headers: &HeaderMap,
) -> Result<Option<String>, ApiError> {
    let refused = |e| match e {
        TenantError::Invalid(m) => ApiError::bad_request(m),
        TenantError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, m),
    };
    let requested = tenant::requested(headers).map_err(refused)?;
    let tenant = app
        .tenant_rules
        .admit(client, identified, requested)
        .map_err(refused)?;
    if let Some(t) = &tenant {
        app.telemetry.tenants.request(t);
    }
    Ok(tenant)
}

/// Counts an answered request: its protocol, status and how long it took.
pub fn record(app: &App, protocol: Protocol, started: Instant, response: &Response) {
    let t = &app.telemetry;
    t.request_latency.observe(started.elapsed().as_secs_f64());
    t.requests
        .with_label_values(&[protocol.as_str(), response.status().as_str()])
        .inc();
}
