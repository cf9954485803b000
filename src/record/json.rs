//! Version 1 of the stored record: the JSON batch,
//! `{"client_id":…,"received_at":…,"metrics":[…]}` with each metric in the
//! form `POST /metrics` takes, and `"tenant":…` after the client when the
//! request had one (docs/record.md). The embedded log wrote only
//! this before version 2; Kafka topics still take it with
//! `--kafka-format json`, for readers that want text.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::metric::{Metric, Overheads};
use super::RecordError;

/// What a version 1 record holds: the batch with its client and receive time.
#[derive(Debug, Serialize, Deserialize)]
pub struct StoredBatch<'a> {
    #[serde(borrow)]
    pub client_id: Cow<'a, str>,
    /// The request's tenant (`X-Scope-OrgID`); absent when it had none.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<Cow<'a, str>>,
    pub received_at: u64,
    #[serde(borrow)]
    pub metrics: Vec<Metric<'a>>,
}

/// The same, borrowed, for writing a part of a request without copying it.
#[derive(Serialize)]
struct BatchRef<'m, 'a> {
    client_id: &'m str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<&'m str>,
    received_at: u64,
    metrics: &'m [Metric<'a>],
}

/// Every metric without a timestamp gets the receive time: what is stored
/// always says when.
pub fn fill_timestamps(metrics: &mut [Metric<'_>], received_at: u64) {
    for m in metrics {
        m.timestamp.get_or_insert(received_at);
    }
}

/// The version 1 record of a whole batch, timestamps filled in.
pub fn normalize(
    client_id: &str,
    received_at: u64,
    mut metrics: Vec<Metric<'_>>,
) -> Result<Vec<u8>, RecordError> {
    fill_timestamps(&mut metrics, received_at);
    encode(client_id, None, received_at, &metrics)
}

/// The bytes a metric takes in a version 1 record, about (an upper bound
/// for what the writer makes of it without escapes).
pub fn size_of(m: &Metric<'_>) -> usize {
    m.size(Overheads {
        per_string: 10,
        per_number: 24,
        per_point: 160,
        per_histogram: 200,
    })
}

/// The version 1 record of `metrics` (timestamps filled in first, see
/// [`fill_timestamps`]) from `client_id`, under `tenant` if any.
pub fn encode(
    client_id: &str,
    tenant: Option<&str>,
    received_at: u64,
    metrics: &[Metric<'_>],
) -> Result<Vec<u8>, RecordError> {
    let batch = BatchRef {
        client_id,
        tenant,
        received_at,
        metrics,
    };
    serde_json::to_vec(&batch).map_err(|e| RecordError::Encode(format!("JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::decode;
    use crate::record::MetricType;

    fn stored(client: &str, received_at: u64, body: &str) -> Vec<u8> {
        let mut metrics = decode(body.as_bytes()).unwrap();
        fill_timestamps(&mut metrics, received_at);
        encode(client, None, received_at, &metrics).unwrap()
    }

    #[test]
    fn stored_batches_still_read_back() {
        let value = stored(
            "c",
            7,
            r#"{"metrics":[{"name":"cpu","value":1.5,"type":"gauge","tags":{"h":"w"}}]}"#,
        );
        let stored: StoredBatch<'_> = serde_json::from_slice(&value).unwrap();
        assert_eq!(stored.metrics[0].kind, MetricType::Gauge);
        assert_eq!(stored.metrics[0].tags["h"], "w");
    }

    #[test]
    fn timestamps_are_filled_and_the_client_added() {
        let body = r#"{"metrics":[{"name":"a","value":1,"type":"counter"},{"name":"b","value":2,"type":"gauge","timestamp":5}]}"#;
        let value = stored("client-1", 1000, body);
        let stored: StoredBatch<'_> = serde_json::from_slice(&value).unwrap();
        assert_eq!(stored.client_id, "client-1");
        assert_eq!(stored.received_at, 1000);
        assert_eq!(stored.metrics[0].timestamp, Some(1000));
        assert_eq!(stored.metrics[1].timestamp, Some(5));
        assert_eq!(stored.tenant, None);
        assert!(!String::from_utf8(value).unwrap().contains("tenant"));
    }

    #[test]
    fn the_tenant_follows_the_client() {
        let mut metrics =
            decode(br#"{"metrics":[{"name":"a","value":1,"type":"counter"}]}"#).unwrap();
        fill_timestamps(&mut metrics, 9);
        let value = encode("web", Some("acme"), 9, &metrics).unwrap();
        let text = String::from_utf8(value.clone()).unwrap();
        assert!(
            text.starts_with(r#"{"client_id":"web","tenant":"acme","received_at":9,"#),
            "{text}"
        );
        let stored: StoredBatch<'_> = serde_json::from_slice(&value).unwrap();
        assert_eq!(stored.tenant.as_deref(), Some("acme"));
    }
}
