//! The live status page: `GET /` and `GET /status` (the page, static: it
//! carries no figures), its stylesheet and script, and `GET /api/status`
//! (the figures as JSON, from [`crate::status`], behind the API keys when
//! they are configured). The page's files are compiled in: no build step,
//! nothing fetched from elsewhere, works offline.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;

use super::error::json_response;
use super::state::App;
use crate::auth::AuthError;

const PAGE: &str = include_str!("status/index.html");
const STYLE: &str = include_str!("status/style.css");
const SCRIPT: &str = include_str!("status/app.js");

/// The page may load only its own files and ask only its own server
/// (so no value of a figure can leave for a third party).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

fn static_file(body: &'static str, content_type: &'static str) -> Response {
    let mut resp = Response::new(body.into());
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

pub async fn page() -> Response {
    static_file(PAGE, "text/html; charset=utf-8")
}

pub async fn style() -> Response {
    static_file(STYLE, "text/css; charset=utf-8")
}

pub async fn script() -> Response {
    static_file(SCRIPT, "text/javascript; charset=utf-8")
}

/// `GET /api/status`: with API keys configured, a known key is required
/// (401 otherwise, as on the ingest endpoints); the answer names no metric,
/// label value or key.
pub async fn api(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if app.auth.enabled() {
        // With keys configured every refusal is a 401 (a second
        // Authorization header included).
        match app.auth.client_for(&headers) {
            Ok(_) => {}
            Err(AuthError::Unauthorized(m)) => return error(StatusCode::UNAUTHORIZED, m),
            Err(AuthError::BadClientId(m)) => return error(StatusCode::UNAUTHORIZED, &m),
        }
    }
    let Some(status) = app.status.get().cloned() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "this server was started without status figures",
        );
    };
    // The figures are read from the file system: not on a request worker.
    let mut resp = match tokio::task::spawn_blocking(move || status.report()).await {
        Ok(Ok(report)) => match serde_json::to_string(&report) {
            Ok(body) => json_response(StatusCode::OK, body),
            Err(e) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("cannot write the status: {e}"),
            ),
        },
        Ok(Err(e)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("reading the data directory: {e}"),
        ),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("gathering the status failed: {e}"),
        ),
    };
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn error(status: StatusCode, message: &str) -> Response {
    json_response(status, serde_json::json!({ "error": message }).to_string())
}
