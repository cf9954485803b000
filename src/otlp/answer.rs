//! The bodies of OTLP/HTTP answers, in the request's encoding: an
//! `ExportMetricsServiceResponse` on success (with `partial_success` when
//! points were refused), a `google.rpc.Status` on failure.

use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
};
use prost::Message;

use super::{Encoding, Refused};

/// `google.rpc.Status` (google/rpc/status.proto), which the OTLP/HTTP spec
/// makes the body of every failure. Not in opentelemetry-proto; `details`
/// (field 3, `repeated google.protobuf.Any`) is never sent.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    /// A `google.rpc.Code`.
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// The 200's body: empty when everything was stored, else
/// `partial_success` with the points refused and why. JSON writes the
/// int64 as a string, as the OTLP JSON mapping does.
pub fn export_response(encoding: Encoding, refused: &Refused) -> Vec<u8> {
    let partial = (!refused.is_empty()).then(|| ExportMetricsPartialSuccess {
        rejected_data_points: refused.points as i64,
        error_message: refused.message(),
    });
    match encoding {
        Encoding::Protobuf => ExportMetricsServiceResponse {
            partial_success: partial,
        }
        .encode_to_vec(),
        Encoding::Json => match partial {
            None => b"{}".to_vec(),
            Some(p) => serde_json::json!({
                "partialSuccess": {
                    "rejectedDataPoints": p.rejected_data_points.to_string(),
                    "errorMessage": p.error_message,
                }
            })
            .to_string()
            .into_bytes(),
        },
    }
}

/// A failure's body for an HTTP status.
pub fn status_body(encoding: Encoding, http_status: u16, message: &str) -> Vec<u8> {
    let status = Status {
        code: grpc_code(http_status),
        message: message.to_string(),
    };
    match encoding {
        Encoding::Protobuf => status.encode_to_vec(),
        Encoding::Json => serde_json::json!({ "code": status.code, "message": status.message })
            .to_string()
            .into_bytes(),
    }
}

/// The `google.rpc.Code` nearest to an HTTP status (the mapping gRPC
/// gateways use).
fn grpc_code(http_status: u16) -> i32 {
    match http_status {
        400 | 413 | 415 | 431 => 3, // INVALID_ARGUMENT
        401 => 16,                  // UNAUTHENTICATED
        403 => 7,                   // PERMISSION_DENIED
        429 => 8,                   // RESOURCE_EXHAUSTED
        503 => 14,                  // UNAVAILABLE
        504 => 4,                   // DEADLINE_EXCEEDED
        _ => 13,                    // INTERNAL
    }
}
