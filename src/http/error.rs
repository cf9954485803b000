//! The one shape every refusal takes: a status, a message that says what
//! and where, and `Retry-After` when trying again later can help.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::queue::QueueError;

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

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

/// A queue that cannot take the batch now: "try again later" (503); a
/// message it could never take is our fault, which no retry fixes (500).
impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> ApiError {
        let secs = match e {
            QueueError::Full => 1,
            QueueError::Unavailable(_) | QueueError::Closed => 5,
            QueueError::NoSuchPartition { .. } => {
                return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
        };
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).retry(secs)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message }).to_string();
        let mut resp = json_response(self.status, body);
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

pub fn json_response(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
