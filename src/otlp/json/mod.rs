//! OTLP JSON bodies into `opentelemetry-proto`'s message types, following
//! the OTLP JSON mapping (module doc, "JSON"): [`wire`] mirrors the
//! messages with the field rules of [`fields`], and [`into_proto`] moves
//! them into the generated types, so protobuf and JSON requests meet in one
//! type and one conversion.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;

mod fields;
mod into_proto;
mod wire;

use wire::Request;

/// Decodes a JSON body; Err names the field (`resourceMetrics[0]…`).
pub(super) fn decode(bytes: &[u8]) -> Result<ExportMetricsServiceRequest, String> {
    // serde's derive also reads a struct from an array of its fields; the
    // request, at least, must be an object.
    if bytes.trim_ascii_start().first() == Some(&b'[') {
        return Err(
            "invalid OTLP JSON body: an array, not an ExportMetricsServiceRequest object".into(),
        );
    }
    let request: Request = match serde_json::from_slice(bytes) {
        Ok(r) => r,
        // The path is tracked only on the (rare) error path.
        Err(plain) => {
            let de = &mut serde_json::Deserializer::from_slice(bytes);
            let path = match serde_path_to_error::deserialize::<_, Request>(de) {
                Err(e) => e.path().to_string(),
                Ok(_) => String::new(),
            };
            return Err(if path.is_empty() || path == "." {
                format!("invalid OTLP JSON body: {plain}")
            } else {
                format!("invalid OTLP JSON body at {path}: {plain}")
            });
        }
    };
    request.into_proto()
}
