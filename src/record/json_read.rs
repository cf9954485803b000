//! Stored records read fast: a decoder for exactly the JSON `serve` writes
//! (`serde_json` of a `StoredBatch`: no whitespace, keys as serde names
//! them), straight into samples. A series met before is found by how the
//! record spells it ([`Interner::get_spelled`]): its tags are parsed only
//! the first time; a metric whose name and tags bytes repeat the previous
//! one's (a series' samples mostly come together) is not even hashed.
//!
//! It never decides anything serde would decide differently: an escape in
//! a string, whitespace, a key it does not know, `null`, a number serde
//! reads another way, or anything malformed makes it give up, and the
//! serde decoder ([`super::sample::decode_serde`]) reads the record instead (the
//! two are compared by a property test below). Records written by
//! metricstream take this path; the JSON parse was the largest single cost
//! of `consume` into a store.

use std::sync::Arc;

use super::metric::MetricType;
use super::sample::{decode_serde, sort_tags, Interner, Sample, Series};
use super::value::{self, Value};
use super::Head;

/// Appends the samples of one stored record to `out`; who sent it and
/// when it was received (ms), or why it cannot be read. What `serve`
/// wrote takes the fast path, anything else serde's.
pub fn decode(
    offset: u64,
    value: &[u8],
    interner: &mut Interner,
    out: &mut Vec<Sample>,
) -> Result<Head, String> {
    let before = out.len();
    if let Some(received_at) = decode_fast(offset, value, interner, out) {
        let (client_id, tenant) = who_of(value).unwrap_or_default();
        return Ok(Head {
            received_at,
            client_id,
            tenant,
        });
    }
    out.truncate(before);
    let (samples, head) = decode_serde(offset, value, interner)?;
    out.extend(samples);
    Ok(head)
}

/// The client and tenant of a record the fast path read: its first key,
/// and the second when that is the tenant (as serve writes them).
fn who_of(value: &[u8]) -> Option<(String, Option<String>)> {
    let text = std::str::from_utf8(value).ok()?;
    let mut r = Reader::new(text);
    r.eat(b'{')?;
    (r.string()? == "client_id").then_some(())?;
    r.eat(b':')?;
    let client = r.string()?.to_string();
    r.eat(b',')?;
    if r.string()? != "tenant" {
        return Some((client, None));
    }
    r.eat(b':')?;
    Some((client, Some(r.string()?.to_string())))
}

/// Appends the samples of the record at `offset` to `out` and returns when
/// it was received (ms); `None` (and `out` as it was): serde's turn.
pub fn decode_fast(
    offset: u64,
    bytes: &[u8],
    interner: &mut Interner,
    out: &mut Vec<Sample>,
) -> Option<u64> {
    let before = out.len();
    // UTF-8 checked once for the record, not per string: a string ends at
    // an ASCII quote, so every slice of it is UTF-8 too.
    let mut r = Reader::new(std::str::from_utf8(bytes).ok()?);
    let received_at = r.record(offset, interner, out);
    if received_at.is_none() {
        out.truncate(before);
    }
    received_at
}

struct Reader<'a> {
    text: &'a str,
    /// `text`'s bytes.
    b: &'a [u8],
    i: usize,
    /// The previous metric's name, tags text and series: the samples of a
    /// series mostly come together, and the same name and tags bytes are
    /// the same series without walking or hashing them again.
    last: Option<(&'a str, &'a str, Arc<Series>)>,
}

impl<'a> Reader<'a> {
    fn new(text: &'a str) -> Reader<'a> {
        Reader {
            text,
            b: text.as_bytes(),
            i: 0,
            last: None,
        }
    }

    fn next(&mut self) -> Option<u8> {
        let c = *self.b.get(self.i)?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    /// `"…"` without escapes or control characters, as UTF-8.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let end = start + special(&self.b[start..])?;
        if self.b[end] != b'"' {
            return None;
        }
        self.i = end + 1;
        self.text.get(start..end)
    }

    /// A tags object (`{"k":"v",…}`), each pair handed to `each`.
    fn tags_object(&mut self, mut each: impl FnMut(&'a str, &'a str)) -> Option<()> {
        self.eat(b'{')?;
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Some(());
        }
        loop {
            let k = self.string()?;
            self.eat(b':')?;
            each(k, self.string()?);
            match self.next()? {
                b',' => {}
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// A number as JSON spells it: its text, and whether it is an integer.
    fn number(&mut self) -> Option<(&'a str, bool)> {
        let b = self.b;
        let start = self.i;
        let mut i = start;
        let digits = |mut i: usize| {
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            i
        };
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => i = digits(i),
            _ => return None,
        }
        let mut integer = true;
        if b.get(i) == Some(&b'.') {
            integer = false;
            let from = i + 1;
            i = digits(from);
            if i == from {
                return None;
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            integer = false;
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let from = i;
            i = digits(from);
            if i == from {
                return None;
            }
        }
        self.i = i;
        Some((self.text.get(start..i)?, integer))
    }

    fn uint(&mut self) -> Option<u64> {
        match self.number()? {
            (text, true) => text.parse().ok(),
            _ => None,
        }
    }

    /// As [`Value`]'s serde reading: integers exact, floats correctly
    /// rounded (as `float_roundtrip`), the strings of [`value::parse`].
    fn value(&mut self) -> Option<Value> {
        if self.b.get(self.i) == Some(&b'"') {
            return value::parse(self.string()?).map(Value::Float);
        }
        let (text, integer) = self.number()?;
        if integer {
            if let Ok(v) = text.parse::<i64>() {
                return Some(Value::Int(v));
            }
            // Past u64 (or below i64) serde reads a float: let it.
            return text.parse::<u64>().ok().map(Value::UInt);
        }
        let v: f64 = text.parse().ok()?;
        // serde calls a number too big for an f64 an error.
        v.is_finite().then_some(Value::Float(v))
    }

    /// `{"k":"v",…}` into `tags`, sorted by key as the serde path sorts.
    fn tags(&mut self, tags: &mut Vec<(&'a str, &'a str)>) -> Option<()> {
        self.tags_object(|k, v| tags.push((k, v)))?;
        sort_tags(tags);
        Some(())
    }

    fn record(
        &mut self,
        offset: u64,
        interner: &mut Interner,
        out: &mut Vec<Sample>,
    ) -> Option<u64> {
        self.eat(b'{')?;
        let (mut client, mut received_at, mut metrics) = (false, None, false);
        let mut tenant = false;
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            match key {
                "client_id" if !client => {
                    client = true;
                    self.string()?;
                }
                // Read back by `who_of` only right after the client, as
                // serve writes it; anywhere else serde reads the record.
                "tenant" if client && !tenant && received_at.is_none() => {
                    tenant = true;
                    self.string()?;
                }
                "received_at" if received_at.is_none() => received_at = Some(self.uint()?),
                // Metrics without a timestamp take the receive time: it
                // must come first (it does in what serve writes).
                "metrics" if !metrics => {
                    metrics = true;
                    self.metrics(received_at?, offset, interner, out)?;
                }
                _ => return None,
            }
            match self.next()? {
                b',' => {}
                b'}' => break,
                _ => return None,
            }
        }
        (metrics && self.i == self.b.len()).then_some(received_at?)
    }

    fn metrics(
        &mut self,
        received_at: u64,
        offset: u64,
        interner: &mut Interner,
        out: &mut Vec<Sample>,
    ) -> Option<()> {
        self.eat(b'[')?;
        if self.b.get(self.i) == Some(&b']') {
            self.i += 1;
            return Some(());
        }
        loop {
            let mut m = Metric::default();
            self.metric(&mut m)?;
            let name = m.name?;
            let series = match &self.last {
                Some((n, _, s)) if m.same_tags && *n == name => s.clone(),
                _ => {
                    // No tags key: no tags (as serde's default).
                    let (from, to) = m.tags.unwrap_or((self.i, self.i));
                    let text = self.text.get(from..to)?;
                    let series = interner.get_spelled(name, text.as_bytes(), || {
                        let mut tags = Vec::new();
                        if !text.is_empty() {
                            Reader::new(text).tags(&mut tags)?;
                        }
                        Some(tags)
                    })?;
                    if m.tags.is_some() {
                        self.last = Some((name, text, series.clone()));
                    }
                    series
                }
            };
            out.push(Sample {
                series,
                value: m.value?,
                // As the serde path: the receive time where none was stored.
                timestamp: m.timestamp.unwrap_or(received_at) as i64,
                kind: m.kind?,
                offset,
                extra: None,
                tenant: None,
            });
            match self.next()? {
                b',' => {}
                b']' => return Some(()),
                _ => return None,
            }
        }
    }

    fn metric(&mut self, m: &mut Metric<'a>) -> Option<()> {
        self.eat(b'{')?;
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            match key {
                "name" if m.name.is_none() => m.name = Some(self.string()?),
                "value" if m.value.is_none() => m.value = Some(self.value()?),
                "type" if m.kind.is_none() => m.kind = Some(MetricType::from_name(self.string()?)?),
                "tags" if m.tags.is_none() => {
                    let from = self.i;
                    let last = self.last.as_ref().map(|(_, t, _)| *t);
                    if let Some(t) = last.filter(|t| self.b[from..].starts_with(t.as_bytes())) {
                        // The previous tags object, byte for byte: it
                        // would walk the same and end at the same `}`.
                        self.i += t.len();
                        m.same_tags = true;
                    } else {
                        // Only stepped over: a known series needs no parsing.
                        self.tags_object(|_, _| {})?;
                    }
                    m.tags = Some((from, self.i));
                }
                "timestamp" if m.timestamp.is_none() => m.timestamp = Some(self.uint()?),
                // Stored, but not what a sink sends (serde ignores them too).
                "timestamp_ns" | "created_timestamp" => {
                    self.uint()?;
                }
                _ => return None,
            }
            match self.next()? {
                b',' => {}
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }
}

/// Where the first `"`, `\` or control character of `b` is, eight bytes
/// at a time (the bit tricks find a byte equal to, or below, a value in a
/// word; the lowest byte they flag is always a true one).
fn special(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH;
    let mut words = b.chunks_exact(8);
    let mut at = 0;
    for c in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let w = u64::from_le_bytes(w);
        let found = below(w ^ (ONES * u64::from(b'"')), 1)
            | below(w ^ (ONES * u64::from(b'\\')), 1)
            | below(w, 0x20);
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let rest = words.remainder();
    rest.iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|i| at + i)
}

#[derive(Default)]
struct Metric<'a> {
    name: Option<&'a str>,
    value: Option<Value>,
    kind: Option<MetricType>,
    timestamp: Option<u64>,
    /// Where the tags object is in the record.
    tags: Option<(usize, usize)>,
    /// Those tags are spelled as the previous metric's.
    same_tags: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::json::encode;
    use crate::record::Metric as Stored;
    use proptest::prelude::*;
    use std::borrow::Cow;
    use std::collections::BTreeMap;

    fn normalize(client: &str, received_at: u64, mut metrics: Vec<Stored<'_>>) -> Vec<u8> {
        crate::record::json::fill_timestamps(&mut metrics, received_at);
        encode(client, None, received_at, &metrics).unwrap()
    }

    /// A record with a tenant: read fast where serve put it (after the
    /// client), by serde anywhere else; both give it back.
    #[test]
    fn the_tenant_is_read_back() {
        let metrics =
            crate::batch::decode(br#"{"metrics":[{"name":"a","value":1,"type":"gauge"}]}"#)
                .unwrap();
        let mut metrics = metrics;
        crate::record::json::fill_timestamps(&mut metrics, 5);
        let bytes = encode("c", Some("acme"), 5, &metrics).unwrap();
        assert!(
            fast(&bytes).is_some(),
            "serve's own records take the fast path"
        );
        let mut out = Vec::new();
        let head = decode(7, &bytes, &mut Interner::default(), &mut out).unwrap();
        assert_eq!(
            (head.client_id.as_str(), head.tenant.as_deref()),
            ("c", Some("acme"))
        );
        let (_, by_serde) = decode_serde(7, &bytes, &mut Interner::default()).unwrap();
        assert_eq!(by_serde, head);
        let moved = br#"{"received_at":5,"tenant":"beta","client_id":"c","metrics":[]}"#;
        assert!(fast(moved).is_none());
        let head = decode(7, moved, &mut Interner::default(), &mut out).unwrap();
        assert_eq!(head.tenant.as_deref(), Some("beta"));
        let none = br#"{"client_id":"c","received_at":5,"metrics":[]}"#;
        let head = decode(7, none, &mut Interner::default(), &mut out).unwrap();
        assert_eq!(head.tenant, None);
    }

    fn fast(bytes: &[u8]) -> Option<(Vec<Sample>, u64)> {
        let mut out = Vec::new();
        let at = decode_fast(7, bytes, &mut Interner::default(), &mut out)?;
        Some((out, at))
    }

    fn serde(bytes: &[u8]) -> Result<(Vec<Sample>, u64), String> {
        decode_serde(7, bytes, &mut Interner::default()).map(|(s, h)| (s, h.received_at))
    }

    fn same(a: &[Sample], b: &[Sample]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                *x.series == *y.series
                    && x.value.same(y.value)
                    && x.timestamp == y.timestamp
                    && x.kind == y.kind
                    && x.offset == y.offset
            })
    }

    #[test]
    fn what_serve_writes_is_read_fast() {
        let mut tags = BTreeMap::new();
        tags.insert(Cow::Borrowed("host"), Cow::Borrowed("a"));
        tags.insert(Cow::Borrowed("dc"), Cow::Borrowed("eu"));
        let metrics = vec![
            Stored {
                name: "cpu".into(),
                value: Value::Float(f64::from_bits(value::STALE_NAN)),
                kind: MetricType::Gauge,
                tags: Arc::new(tags),
                timestamp: Some(5),
                timestamp_ns: Some(5_000_001),
                created_timestamp: Some(1),
                unit: None,
                help: None,
                histogram: None,
                exemplar: None,
            },
            Stored {
                name: "n".into(),
                value: Value::UInt(u64::MAX),
                kind: MetricType::Unknown,
                tags: Arc::default(),
                timestamp: None,
                timestamp_ns: None,
                created_timestamp: None,
                unit: None,
                help: None,
                histogram: None,
                exemplar: None,
            },
        ];
        let bytes = normalize("c", 99, metrics);
        let (samples, at) = fast(&bytes).expect("the fast path reads what serve writes");
        let (want, want_at) = serde(&bytes).unwrap();
        assert_eq!(at, want_at);
        assert!(same(&samples, &want));
        assert_eq!(samples[0].labels()[0], ("dc".into(), "eu".into()));
        assert_eq!(samples[1].timestamp, 99);
    }

    #[test]
    fn anything_else_is_left_to_serde() {
        for odd in [
            r#"{"received_at":1, "metrics":[]}"#,
            r#"{"metrics":[],"received_at":1}"#,
            r#"{"received_at":1,"metrics":[{"name":"a\"b","value":1,"type":"gauge"}]}"#,
            r#"{"received_at":1,"metrics":[{"name":"a","value":1,"type":"gauge","x":1}]}"#,
            r#"{"received_at":1,"metrics":[{"name":"a","value":1e999,"type":"gauge"}]}"#,
            r#"{"received_at":1,"metrics":[{"name":"a","value":99999999999999999999,"type":"gauge"}]}"#,
            r#"{"received_at":1,"metrics":[{"name":"a","value":null,"type":"gauge"}]}"#,
            r#"{"received_at":1,"metrics":[{"name":"a","value":01,"type":"gauge"}]}"#,
            r#"{"received_at":1,"metrics":[{"name":"a","name":"b","value":1,"type":"gauge"}]}"#,
            r#"{"received_at":1,"metrics":[]} "#,
            r#"{"received_at":1,"metrics":[]}x"#,
            r#"{"received_at":-1,"metrics":[]}"#,
            r#"{"received_at":1,"metrics":[{"name":"a","value":1,"type":"gauge"}"#,
        ] {
            assert!(fast(odd.as_bytes()).is_none(), "{odd}");
        }
        // Numbers at the edges of f64 read as serde reads them.
        for v in [
            "1e-400",
            "5e-324",
            "-2.2250738585072014e-308",
            "1.7976931348623157e308",
            "0.1e1",
        ] {
            let rec = format!(
                r#"{{"received_at":1,"metrics":[{{"name":"a","value":{v},"type":"gauge"}}]}}"#
            );
            let (got, _) = fast(rec.as_bytes()).unwrap();
            assert!(same(&got, &serde(rec.as_bytes()).unwrap().0), "{v}");
        }
        // Out-of-order tags are sorted, as serde's path sorts them.
        let rec = br#"{"received_at":1,"metrics":[{"name":"a","value":-0.0,"type":"counter","tags":{"b":"1","a":"2"}}]}"#;
        let (s, _) = fast(rec).unwrap();
        assert!(same(&s, &serde(rec).unwrap().0));
        assert_eq!(s[0].labels()[0].0, "a");
    }

    proptest! {
        #[test]
        fn special_finds_the_first(
            b in prop::collection::vec(prop_oneof![30 => 0x20u8..=0xff, 1 => any::<u8>()], 0..80),
        ) {
            let want = b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
            prop_assert_eq!(special(&b), want);
        }
    }

    #[test]
    fn one_series_however_its_tags_are_spelled() {
        let mut interner = Interner::default();
        let mut out = Vec::new();
        for rec in [
            r#"{"received_at":1,"metrics":[{"name":"m","value":1,"type":"gauge","tags":{"a":"1","b":"2"}}]}"#,
            r#"{"received_at":1,"metrics":[{"name":"m","value":2,"type":"gauge","tags":{"b":"2","a":"1"}}]}"#,
            r#"{"received_at":1,"metrics":[{"name":"m","value":3,"type":"gauge","tags":{"a":"1","b":"2"}}]}"#,
            r#"{"received_at":1,"metrics":[{"name":"m","value":4,"type":"gauge"},{"name":"m","value":5,"type":"gauge","tags":{}}]}"#,
        ] {
            decode(1, rec.as_bytes(), &mut interner, &mut out).unwrap();
        }
        assert!(std::sync::Arc::ptr_eq(&out[0].series, &out[1].series));
        assert!(std::sync::Arc::ptr_eq(&out[0].series, &out[2].series));
        assert!(std::sync::Arc::ptr_eq(&out[3].series, &out[4].series));
        assert!(out[3].labels().is_empty());
        assert_ne!(*out[0].series, *out[3].series);
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<f64>().prop_map(Value::Float),
            any::<u64>().prop_map(|b| Value::Float(f64::from_bits(b))),
            any::<i64>().prop_map(Value::Int),
            (i64::MAX as u64..=u64::MAX).prop_map(Value::UInt),
        ]
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z_]{1,12}",
            any::<String>(),
            Just("a\"b\\c\u{1}".to_string()),
        ]
    }

    proptest! {
        /// Whatever serve writes, the fast path reads as serde does (or
        /// leaves it to serde).
        #[test]
        fn agrees_with_serde(
            metrics in prop::collection::vec(
                (text(), value(), prop::collection::btree_map(text(), text(), 0..5),
                 prop::option::of(any::<u64>()), prop::option::of(any::<u64>())),
                0..8),
            received_at in any::<u64>(),
        ) {
            let metrics: Vec<Stored> = metrics
                .iter()
                .map(|(name, value, tags, ts, ns)| Stored {
                    name: Cow::Borrowed(name.as_str()),
                    value: *value,
                    kind: MetricType::Histogram,
                    tags: Arc::new(
                        tags.iter()
                            .map(|(k, v)| (Cow::Borrowed(k.as_str()), Cow::Borrowed(v.as_str())))
                            .collect(),
                    ),
                    timestamp: *ts,
                    timestamp_ns: *ns,
                    created_timestamp: None,
                    unit: None,
                    help: None,
                    histogram: None,
                    exemplar: None,
                })
                .collect();
            let bytes = normalize("client", received_at, metrics);
            let want = serde(&bytes).unwrap();
            if let Some((got, at)) = fast(&bytes) {
                prop_assert_eq!(at, want.1);
                prop_assert!(same(&got, &want.0));
            }
            // Plain names, tags and values always take the fast path.
            let plain = metrics_plain(&bytes);
            prop_assert!(!plain || fast(&bytes).is_some());
        }
    }

    proptest! {
        /// Runs of one series, next to series whose tags or names start
        /// alike (the previous metric's tags bytes are a shortcut).
        #[test]
        fn runs_of_one_series_agree_with_serde(
            picks in prop::collection::vec((0..3usize, 0..5usize, any::<i64>()), 0..16),
        ) {
            let tag_sets: [&[(&str, &str)]; 5] = [
                &[],
                &[("a", "b")],
                &[("a", "bc")],
                &[("a", "b"), ("c", "d")],
                &[("a", "b"), ("c", "d}")],
            ];
            let names = ["m", "m_total", "n"];
            let metrics: Vec<Stored> = picks
                .iter()
                .map(|&(n, t, v)| Stored {
                    name: Cow::Borrowed(names[n]),
                    value: Value::Int(v),
                    kind: MetricType::Gauge,
                    tags: Arc::new(
                        tag_sets[t]
                            .iter()
                            .map(|&(k, v)| (Cow::Borrowed(k), Cow::Borrowed(v)))
                            .collect(),
                    ),
                    timestamp: Some(1),
                    timestamp_ns: None,
                    created_timestamp: None,
                    unit: None,
                    help: None,
                    histogram: None,
                    exemplar: None,
                })
                .collect();
            let bytes = normalize("client", 1, metrics);
            let (got, _) = fast(&bytes).expect("plain records take the fast path");
            prop_assert!(same(&got, &serde(&bytes).unwrap().0));
            for (s, &(n, t, _)) in got.iter().zip(&picks) {
                prop_assert_eq!(s.name(), names[n]);
                prop_assert_eq!(s.labels().len(), tag_sets[t].len());
            }
        }
    }

    proptest! {
        /// A record with one byte changed: whatever the fast path still
        /// reads, serde reads the same.
        #[test]
        fn damaged_records_agree_with_serde(at in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let rec = br#"{"client_id":"c","received_at":1700000000000,"metrics":[{"name":"cpu_seconds","value":-1.5e-7,"type":"counter","tags":{"cpu":"0","mode":"idle"},"timestamp":1700000000001},{"name":"up","value":12345678901234567890,"type":"gauge","tags":{},"timestamp":5,"timestamp_ns":5000001}]}"#;
            let mut rec = rec.to_vec();
            let i = at.index(rec.len());
            rec[i] = byte;
            if let Some((got, at)) = fast(&rec) {
                let want = serde(&rec);
                prop_assert!(want.is_ok(), "fast read what serde refuses: {}", String::from_utf8_lossy(&rec));
                let want = want.unwrap_or_default();
                prop_assert_eq!(at, want.1);
                prop_assert!(same(&got, &want.0), "{}", String::from_utf8_lossy(&rec));
            }
        }
    }

    /// Whether a record has no string serde had to escape.
    fn metrics_plain(bytes: &[u8]) -> bool {
        !bytes.contains(&b'\\')
    }
}
