//! One sample as the sinks handle it: its series (shared by the samples of
//! one series in a record, hashed once), value, timestamp, and the queue
//! offset it came from (acknowledgements and dead letters name it).

use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;

use crate::batch::{MetricType, StoredBatch, Value};

/// A series: metric name and tags sorted by key, with their hash.
#[derive(Debug)]
pub struct Series {
    pub name: String,
    pub labels: Vec<(String, String)>,
    hash: u64,
}

impl Series {
    pub fn new(name: String, labels: Vec<(String, String)>) -> Series {
        let mut h = FxHasher::default();
        h.write(name.as_bytes());
        h.write_u8(0xff);
        for (k, v) in &labels {
            h.write(k.as_bytes());
            h.write_u8(0xfe);
            h.write(v.as_bytes());
            h.write_u8(0xff);
        }
        Series {
            name,
            labels,
            hash: h.finish(),
        }
    }

    pub fn hash_value(&self) -> u64 {
        self.hash
    }
}

impl PartialEq for Series {
    fn eq(&self, other: &Series) -> bool {
        self.hash == other.hash && self.name == other.name && self.labels == other.labels
    }
}

impl Eq for Series {}

impl Hash for Series {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

#[derive(Debug, Clone)]
pub struct Sample {
    pub series: Arc<Series>,
    pub value: Value,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    pub kind: MetricType,
    pub offset: u64,
}

impl Sample {
    pub fn new(
        name: &str,
        labels: &[(&str, &str)],
        value: Value,
        timestamp: i64,
        kind: MetricType,
        offset: u64,
    ) -> Sample {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Sample {
            series: Arc::new(Series::new(name.to_string(), labels)),
            value,
            timestamp,
            kind,
            offset,
        }
    }

    pub fn name(&self) -> &str {
        &self.series.name
    }

    pub fn labels(&self) -> &[(String, String)] {
        &self.series.labels
    }

    /// Bytes this sample adds to a request, roughly (before compression):
    /// what the batch size limit counts. A series' labels are counted once
    /// per sample: an upper bound.
    pub fn size(&self) -> usize {
        let labels: usize = self
            .series
            .labels
            .iter()
            .map(|(k, v)| k.len() + v.len() + 4)
            .sum();
        self.series.name.len() + labels + 32
    }
}

/// The samples of one stored record, and when it was received (ms), or why
/// it cannot be read. Neighbouring samples of one series share its `Series`.
pub fn decode(offset: u64, value: &[u8]) -> Result<(Vec<Sample>, u64), String> {
    let batch: StoredBatch<'_> =
        serde_json::from_slice(value).map_err(|e| format!("undecodable record: {e}"))?;
    let mut out: Vec<Sample> = Vec::with_capacity(batch.metrics.len());
    for m in &batch.metrics {
        let same = out.last().filter(|prev| {
            let s = &prev.series;
            s.name == m.name
                && s.labels.len() == m.tags.len()
                && s.labels
                    .iter()
                    .zip(&m.tags)
                    .all(|((a, b), (c, d))| a == c && b == d)
        });
        let series = match same {
            Some(prev) => prev.series.clone(),
            None => Arc::new(Series::new(
                m.name.to_string(),
                m.tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )),
        };
        out.push(Sample {
            series,
            value: m.value,
            // Filled in by `serve` before storing; the receive time otherwise.
            timestamp: m.timestamp.unwrap_or(batch.received_at) as i64,
            kind: m.kind,
            offset,
        });
    }
    Ok((out, batch.received_at))
}

/// A fast non-cryptographic hasher (rustc's Fx): the maps it serves live
/// inside one process and hold our own data.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ rest.len() as u64);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl FxHasher {
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// For maps keyed by an already well-mixed u64 (or a `Series`).
pub type Fx = BuildHasherDefault<FxHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_record_becomes_samples() {
        let record = br#"{"client_id":"c","received_at":5,"metrics":[
            {"name":"m","value":"StaleNaN","type":"gauge","tags":{"b":"2","a":"1"},"timestamp":7},
            {"name":"m","value":1.5,"type":"gauge","tags":{"a":"1","b":"2"},"timestamp":8},
            {"name":"n","value":3,"type":"counter"}]}"#;
        let (samples, received) = decode(9, record).unwrap();
        assert_eq!(received, 5);
        assert_eq!(
            samples[0].labels(),
            [("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        assert!(Arc::ptr_eq(&samples[0].series, &samples[1].series));
        assert_eq!(samples[0].timestamp, 7);
        assert_eq!(
            samples[0].value.as_f64().to_bits(),
            crate::batch::value::STALE_NAN
        );
        assert_eq!((samples[2].timestamp, samples[2].offset), (5, 9));
        assert_eq!(samples[2].value, Value::Int(3));
        assert_ne!(
            samples[2].series.hash_value(),
            samples[0].series.hash_value()
        );
        assert!(decode(1, b"nope").is_err());
    }
}
