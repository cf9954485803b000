//! The OTLP/HTTP metrics fuzz check (`fuzz/fuzz_targets/otlp.rs`).

use crate::http;
use crate::otlp::{self, Encoding};
use crate::record::json::{normalize, StoredBatch};

/// Body limit used when the input asks for gzip (the server's default).
const MAX_BODY: usize = 1 << 20;
const NOW_MS: u64 = 1_700_000_000_000;

/// The first byte's low bit picks JSON (1) or protobuf (0), the next one
/// gzip; the rest is the body. A body is refused with a short message
/// (never a panic), or decoded into metrics within every limit of the
/// module doc, with at most the documented reasons, an answer that
/// encodes, and a stored batch that reads back.
pub fn check_otlp(data: &[u8]) {
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let encoding = if flags & 1 == 1 {
        Encoding::Json
    } else {
        Encoding::Protobuf
    };
    let plain = if flags & 2 != 0 {
        match http::body::gunzip(body, MAX_BODY) {
            Ok(plain) => plain,
            Err(e) => {
                assert!(e.status.is_client_error() && !e.message.is_empty());
                return;
            }
        }
    } else {
        body.to_vec()
    };
    let decoded = match otlp::decode(encoding, &plain, NOW_MS) {
        Ok(d) => d,
        Err(message) => {
            assert!(!message.is_empty());
            assert!(message.len() <= otlp::MAX_ERROR_LEN + 8, "{message}");
            return;
        }
    };
    assert!(decoded.metrics.len() <= otlp::MAX_SERIES);
    for m in &decoded.metrics {
        assert!(!m.name.is_empty() && m.name.len() <= otlp::MAX_NAME_LEN);
        assert!(!m.name.chars().any(char::is_control), "{:?}", m.name);
        // Attributes, then `le`/`quantile` and `otel_temporality`.
        assert!(m.tags.len() <= otlp::MAX_TAGS + 2, "{:?}", m.tags);
        for (k, v) in m.tags.iter() {
            assert!(!k.is_empty() && k.len() <= otlp::MAX_KEY_LEN, "{k:?}");
            assert!(v.len() <= otlp::MAX_VALUE_LEN);
        }
        if let Some(ns) = m.timestamp_ns {
            assert_eq!(m.timestamp, Some(ns / 1_000_000));
            assert!(ns / 1_000_000 <= NOW_MS + otlp::MAX_FUTURE_MS);
        }
    }
    let refused = &decoded.refused;
    assert!(refused.reasons.len() <= otlp::MAX_REASONS);
    assert!(refused
        .reasons
        .iter()
        .all(|r| r.len() <= otlp::MAX_REASON_LEN));
    for encoding in [Encoding::Protobuf, Encoding::Json] {
        let _ = otlp::export_response(encoding, refused);
    }
    let count = decoded.metrics.len();
    let stored = normalize("fuzz", 1, decoded.metrics).expect("a batch is stored");
    let back: StoredBatch<'_> = serde_json::from_slice(&stored).expect("a stored batch reads back");
    assert_eq!(back.metrics.len(), count);
}
