//! One sample as the sinks handle it: owned, labels sorted, with the queue
//! offset it came from (acknowledgements and dead letters name it).

use serde::Serialize;

use crate::batch::{MetricType, StoredBatch, Value};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    pub name: String,
    /// Tags, sorted by key (the stored map is a BTreeMap).
    pub labels: Vec<(String, String)>,
    pub value: Value,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    #[serde(rename = "type")]
    pub kind: MetricType,
    #[serde(skip)]
    pub offset: u64,
}

impl Sample {
    /// Bytes this sample adds to a request, roughly (before compression):
    /// what the batch size limit counts.
    pub fn size(&self) -> usize {
        let labels: usize = self.labels.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
        self.name.len() + labels + 32
    }
}

/// The samples of one stored record, and when it was received (ms), or why
/// it cannot be read.
pub fn decode(offset: u64, value: &[u8]) -> Result<(Vec<Sample>, u64), String> {
    let batch: StoredBatch<'_> =
        serde_json::from_slice(value).map_err(|e| format!("undecodable record: {e}"))?;
    let samples = batch
        .metrics
        .iter()
        .map(|m| Sample {
            name: m.name.to_string(),
            labels: m
                .tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value: m.value,
            // Filled in by `serve` before storing; the receive time otherwise.
            timestamp: m.timestamp.unwrap_or(batch.received_at) as i64,
            kind: m.kind,
            offset,
        })
        .collect();
    Ok((samples, batch.received_at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_record_becomes_samples() {
        let record = br#"{"client_id":"c","received_at":5,"metrics":[
            {"name":"m","value":"StaleNaN","type":"gauge","tags":{"b":"2","a":"1"},"timestamp":7},
            {"name":"n","value":3,"type":"counter"}]}"#;
        let (samples, received) = decode(9, record).unwrap();
        assert_eq!(received, 5);
        assert_eq!(
            samples[0].labels,
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        assert_eq!(samples[0].timestamp, 7);
        assert_eq!(
            samples[0].value.as_f64().to_bits(),
            crate::batch::value::STALE_NAN
        );
        assert_eq!((samples[1].timestamp, samples[1].offset), (5, 9));
        assert_eq!(samples[1].value, Value::Int(3));
        assert!(decode(1, b"nope").is_err());
    }
}
