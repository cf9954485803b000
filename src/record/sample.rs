//! One sample as the sinks handle it: its series (shared by all samples of
//! the series, hashed once), value, timestamp, and the queue offset it came
//! from (acknowledgements and dead letters name it); and the decoding of a
//! stored record into samples.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::metric::{ExemplarPoint, HistogramPoint, MetricType};
use super::value::Value;
use super::Head;
use crate::hash::{Fx, FxHasher};
use prompb::record::Histogram;

/// A series: metric name and tags sorted by key, with their hash.
#[derive(Debug)]
pub struct Series {
    pub name: String,
    pub labels: Vec<(String, String)>,
    hash: u64,
    /// The bytes name and labels add to a request, roughly (see [`Sample::size`]).
    size: usize,
    /// A sink's encoding of the series (remote_write's labels, InfluxDB's
    /// series key), made the first time it is needed: an interned series
    /// is encoded once, not once per request. Tagged with the sink's name.
    encoded: OnceLock<(&'static str, Box<[u8]>)>,
}

impl Series {
    pub fn new(name: String, labels: Vec<(String, String)>) -> Series {
        let hash = series_hash(&name, labels.iter().map(|(k, v)| (k, v)));
        let size = name.len()
            + labels
                .iter()
                .map(|(k, v)| k.len() + v.len() + 4)
                .sum::<usize>();
        Series {
            name,
            labels,
            hash,
            size,
            encoded: OnceLock::new(),
        }
    }

    pub fn hash_value(&self) -> u64 {
        self.hash
    }

    /// `sink`'s encoding of this series, made by `make` once. Another sink
    /// (only in tests: a process has one) gets its own, made each time.
    pub fn encoded(&self, sink: &'static str, make: impl Fn(&Series) -> Vec<u8>) -> Cow<'_, [u8]> {
        let (owner, bytes) = self
            .encoded
            .get_or_init(|| (sink, make(self).into_boxed_slice()));
        if *owner == sink {
            Cow::Borrowed(bytes)
        } else {
            Cow::Owned(make(self))
        }
    }
}

impl PartialEq for Series {
    fn eq(&self, other: &Series) -> bool {
        std::ptr::eq(self, other)
            || (self.hash == other.hash && self.name == other.name && self.labels == other.labels)
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
    /// The sample's value; a histogram's count; an exemplar's value.
    pub value: Value,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    pub kind: MetricType,
    pub offset: u64,
    /// What a plain float sample does not have (rare, so kept apart).
    pub extra: Option<Arc<Extra>>,
    /// The tenant of the record it came from (shared by the record's
    /// samples); `None` when the request had none. The same series of two
    /// tenants is two series to a store: batches never mix tenants.
    pub tenant: Option<Arc<str>>,
}

/// The rest of a data point, where there is any.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extra {
    /// A native histogram sample (its timestamp is the sample's).
    pub histogram: Option<Histogram>,
    /// An exemplar of the series: its labels (value and time are the sample's).
    pub exemplar: Option<Vec<(String, String)>>,
    /// The timestamp in ns where the sender gave it finer than a ms.
    pub timestamp_ns: Option<u64>,
    /// When the counter started (ms), where known.
    pub start_timestamp: Option<u64>,
    pub unit: Option<String>,
    pub help: Option<String>,
}

impl Sample {
    /// The native histogram this sample is, if it is one.
    pub fn histogram(&self) -> Option<&Histogram> {
        self.extra.as_ref().and_then(|e| e.histogram.as_ref())
    }

    /// The labels of the exemplar this sample is, if it is one.
    pub fn exemplar(&self) -> Option<&[(String, String)]> {
        self.extra.as_ref().and_then(|e| e.exemplar.as_deref())
    }

    /// A plain float (or integer) sample: neither histogram nor exemplar.
    pub fn is_plain(&self) -> bool {
        self.histogram().is_none() && self.exemplar().is_none()
    }
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
            extra: None,
            tenant: None,
        }
    }

    /// The tenant of the record it came from, if any.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
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
        self.series.size + 32
    }
}

/// A stored record as the sinks read it: like [`StoredBatch`], but tags
/// come as a list of borrowed strings (the stored map is already sorted),
/// so a series seen before costs no allocation (see [`Interner`]).
#[derive(Deserialize)]
struct JsonBatch<'a> {
    #[serde(borrow, default)]
    client_id: Cow<'a, str>,
    #[serde(borrow, default)]
    tenant: Option<Cow<'a, str>>,
    received_at: u64,
    #[serde(borrow)]
    metrics: Vec<RawMetric<'a>>,
}

#[derive(Deserialize)]
struct RawMetric<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    value: Value,
    #[serde(rename = "type")]
    kind: MetricType,
    #[serde(default, borrow, deserialize_with = "tag_list")]
    tags: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    #[serde(default)]
    timestamp: Option<u64>,
    /// Written by `--kafka-format json` for these points (the fast path
    /// leaves such records to this one).
    #[serde(default)]
    histogram: Option<HistogramPoint>,
    #[serde(default)]
    exemplar: Option<ExemplarPoint>,
}

/// A string borrowed from the record where it has no escapes.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

type Tags<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

fn tag_list<'de, D: Deserializer<'de>>(d: D) -> Result<Tags<'de>, D::Error> {
    struct List;
    impl<'de> Visitor<'de> for List {
        type Value = Tags<'de>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map of tags")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tags<'de>, A::Error> {
            let mut out = Vec::with_capacity(map.size_hint().unwrap_or(4));
            while let Some((Text(k), Text(v))) = map.next_entry::<Text<'de>, Text<'de>>()? {
                out.push((k, v));
            }
            sort_tags(&mut out);
            Ok(out)
        }
    }
    d.deserialize_map(List)
}

/// Tags by key. Stored from a sorted map, so mostly already in order;
/// sorted (stably: duplicates keep their order) in case of another writer.
pub fn sort_tags<K: Ord, V>(tags: &mut [(K, V)]) {
    if !tags.windows(2).all(|w| w[0].0 < w[1].0) {
        tags.sort_by(|a, b| a.0.cmp(&b.0));
    }
}

/// Hash of a series from its parts, the same as [`Series::new`] computes.
fn series_hash(
    name: &str,
    labels: impl Iterator<Item = (impl AsRef<str>, impl AsRef<str>)>,
) -> u64 {
    let mut h = FxHasher::default();
    h.write(name.as_bytes());
    h.write_u8(0xff);
    for (k, v) in labels {
        h.write(k.as_ref().as_bytes());
        h.write_u8(0xfe);
        h.write(v.as_ref().as_bytes());
        h.write_u8(0xff);
    }
    h.finish()
}

/// The series a partition met lately, so the samples of a series share
/// one `Series` across records (no allocation for a known series).
/// Bounded: forgotten all at once when full.
#[derive(Default)]
pub struct Interner {
    known: HashMap<u64, Arc<Series>, Fx>,
    /// The same series by the bytes a stored record spells them with (name,
    /// then the tags object as written): a series seen before is found
    /// with one hash and one comparison, its tags not even parsed.
    spelled: HashMap<u64, Spelled, Fx>,
}

/// A series' spelling in a record (name, 0xff, tags object) and the series.
type Spelled = (Box<[u8]>, Arc<Series>);

/// Series remembered per partition.
const INTERNED: usize = 100_000;

impl Interner {
    pub fn get(&mut self, name: &str, tags: &[(impl AsRef<str>, impl AsRef<str>)]) -> Arc<Series> {
        let hash = series_hash(name, tags.iter().map(|(k, v)| (k, v)));
        if let Some(s) = self.known.get(&hash) {
            let same = s.name == name
                && s.labels.len() == tags.len()
                && s.labels
                    .iter()
                    .zip(tags)
                    .all(|((a, b), (c, d))| a == c.as_ref() && b == d.as_ref());
            if same {
                return s.clone();
            }
        }
        let series = Arc::new(Series::new(
            name.to_string(),
            tags.iter()
                .map(|(k, v)| (k.as_ref().to_string(), v.as_ref().to_string()))
                .collect(),
        ));
        if self.known.len() >= INTERNED {
            self.known.clear();
        }
        self.known.insert(hash, series.clone());
        series
    }

    /// The series named `name` whose tags a record spells `tags_text`;
    /// `tags` parses that text, needed only for a series not met before.
    pub fn get_spelled<'t>(
        &mut self,
        name: &str,
        tags_text: &[u8],
        tags: impl FnOnce() -> Option<Vec<(&'t str, &'t str)>>,
    ) -> Option<Arc<Series>> {
        let mut h = FxHasher::default();
        h.write(name.as_bytes());
        h.write_u8(0xff);
        h.write(tags_text);
        let hash = h.finish();
        if let Some((spelling, s)) = self.spelled.get(&hash) {
            let same = spelling.len() == name.len() + 1 + tags_text.len()
                && spelling[..name.len()] == *name.as_bytes()
                && spelling[name.len() + 1..] == *tags_text;
            if same {
                return Some(s.clone());
            }
        }
        let series = self.get(name, &tags()?);
        if self.spelled.len() >= INTERNED {
            self.spelled.clear();
        }
        let spelling = [name.as_bytes(), &[0xff], tags_text].concat();
        self.spelled
            .insert(hash, (spelling.into_boxed_slice(), series.clone()));
        Some(series)
    }
}

/// The samples of one stored record, and when it was received (ms), or why
/// it cannot be read: any JSON serde reads as a stored record.
pub fn decode_serde(
    offset: u64,
    value: &[u8],
    interner: &mut Interner,
) -> Result<(Vec<Sample>, Head), String> {
    let record: JsonBatch<'_> =
        serde_json::from_slice(value).map_err(|e| format!("undecodable record: {e}"))?;
    let samples = record
        .metrics
        .iter()
        .map(|m| {
            let timestamp = m.timestamp.unwrap_or(record.received_at) as i64;
            let extra = match (&m.histogram, &m.exemplar) {
                (Some(h), _) => {
                    let mut h = h.0.clone();
                    h.timestamp = timestamp;
                    Some(Arc::new(Extra {
                        histogram: Some(h),
                        ..Extra::default()
                    }))
                }
                (None, Some(e)) => Some(Arc::new(Extra {
                    exemplar: Some(e.labels.clone().into_iter().collect()),
                    ..Extra::default()
                })),
                (None, None) => None,
            };
            Sample {
                series: interner.get(&m.name, &m.tags),
                value: m.value,
                // Filled in by `serve` before storing; the receive time otherwise.
                timestamp,
                kind: m.kind,
                offset,
                extra,
                // Stamped by the partition reader, from the head.
                tenant: None,
            }
        })
        .collect();
    Ok((
        samples,
        Head {
            received_at: record.received_at,
            client_id: record.client_id.into_owned(),
            tenant: record.tenant.map(Cow::into_owned),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_record_becomes_samples() {
        let record = br#"{"client_id":"c","received_at":5,"metrics":[
            {"name":"m","value":"StaleNaN","type":"gauge","tags":{"b":"2","a":"1"},"timestamp":7},
            {"name":"m","value":1.5,"type":"gauge","tags":{"a":"1","b":"2"},"timestamp":8},
            {"name":"n","value":3,"type":"counter"}]}"#;
        let mut interner = Interner::default();
        let (samples, head) = decode_serde(9, record, &mut interner).unwrap();
        assert_eq!((head.received_at, head.client_id.as_str()), (5, "c"));
        assert_eq!(
            samples[0].labels(),
            [("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        assert!(Arc::ptr_eq(&samples[0].series, &samples[1].series));
        assert_eq!(samples[0].timestamp, 7);
        assert_eq!(
            samples[0].value.as_f64().to_bits(),
            crate::record::value::STALE_NAN
        );
        assert_eq!((samples[2].timestamp, samples[2].offset), (5, 9));
        assert_eq!(samples[2].value, Value::Int(3));
        assert_ne!(
            samples[2].series.hash_value(),
            samples[0].series.hash_value()
        );
        let (again, _) = decode_serde(10, record, &mut interner).unwrap();
        assert!(Arc::ptr_eq(&again[0].series, &samples[0].series));
        assert!(decode_serde(1, b"nope", &mut interner).is_err());
    }
}
