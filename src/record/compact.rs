//! Version 2 of the stored record, the compact one (`proto/record.proto`
//! is its specification): written in two steps, because only the log's
//! writer knows which series a partition already holds.
//!
//! 1. [`encode`] (in the request's task, on any worker thread): the metrics
//!    of one record become a [`Encoded`]: the record's series in order, each
//!    as the bytes of its definition with their hash, and the body (types,
//!    timestamps, values, histograms, exemplars, client, receive time),
//!    compressed.
//! 2. [`Encoded::standalone`] (Kafka, and anything that cannot share ids
//!    between records) or `epoch::SeriesIds::assemble` (the
//!    embedded log's writer thread) put the series table in front: the
//!    definitions of the series new to the partition's epoch, the ids of
//!    all of them.
//!
//! The body is compressed with zstd at level [`ZSTD_LEVEL`]; figures that
//! chose it are in BENCHMARKS.md ("stored record").

use std::hash::Hasher;

use prompb::record as pb;
use prost::Message;

use super::metric::{Metric, MetricType, Overheads};
use super::value::Value;
use super::RecordError;
use crate::hash::FxHasher;

/// The format byte of version 2.
pub const VERSION: u8 = 0x02;
/// Flag bits (byte 1).
pub const TABLE_ZSTD: u8 = 0x01;
pub const BODY_ZSTD: u8 = 0x02;
pub const STANDALONE: u8 = 0x04;
pub const KNOWN_FLAGS: u8 = TABLE_ZSTD | BODY_ZSTD | STANDALONE;

/// zstd level of bodies and series tables (see the module doc): level 1
/// packs real records to within 3% of level 3's size, faster (and a
/// receiver spends its CPU on every record).
pub const ZSTD_LEVEL: i32 = 1;
/// Parts smaller than this are stored as they are: zstd's frame header
/// and the call cost more than they save.
pub const COMPRESS_FROM: usize = 128;

/// One series of a record, as the writer needs it: its definition's bytes
/// (a `SeriesDef` without its id: name and labels) and their hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesKey {
    pub hash: u64,
    pub def: Box<[u8]>,
}

impl SeriesKey {
    /// Encoded by hand as the `SeriesDef` fields 2 (name) and 3 (labels,
    /// names and values alternating): one buffer, no message to build.
    fn new<'t>(name: &str, tags: impl Iterator<Item = (&'t str, &'t str)> + Clone) -> SeriesKey {
        let field = |out: &mut Vec<u8>, tag: u8, s: &str| {
            out.push(tag);
            varint(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        };
        let len = name.len()
            + 2
            + tags
                .clone()
                .map(|(k, v)| k.len() + v.len() + 4)
                .sum::<usize>();
        let mut def = Vec::with_capacity(len + 8);
        field(&mut def, 0x12, name);
        for (k, v) in tags {
            field(&mut def, 0x1a, k);
            field(&mut def, 0x1a, v);
        }
        SeriesKey {
            hash: hash(&def),
            def: def.into_boxed_slice(),
        }
    }
}

pub fn hash(bytes: &[u8]) -> u64 {
    let mut h = FxHasher::default();
    h.write(bytes);
    h.finish()
}

/// A record with its body encoded and its series table still to make.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// The record's series, in the body's order.
    pub series: Vec<SeriesKey>,
    /// The `Body` message, a zstd frame if `body_zstd`.
    pub body: Vec<u8>,
    pub body_zstd: bool,
    /// Data points in the record (samples, histograms and exemplars).
    pub points: usize,
}

impl Encoded {
    /// The record with every series defined in it (ids 1, 2, … of its
    /// own): readable alone, as a Kafka consumer starting anywhere in a
    /// topic needs.
    pub fn standalone(&self) -> Result<Vec<u8>, RecordError> {
        let mut table = TableWriter::default();
        let mut ids: Vec<(u64, usize)> = Vec::new();
        for (i, key) in self.series.iter().enumerate() {
            // A series met twice in one record keeps its first id.
            let id = match ids.iter().find(|(_, j)| self.series[*j] == *key) {
                Some(&(id, _)) => id,
                None => {
                    let id = ids.len() as u64 + 1;
                    ids.push((id, i));
                    table.define(id, &key.def);
                    id
                }
            };
            table.id(id);
        }
        self.finish(STANDALONE, None, table)
    }

    /// The record with `table` (ids and definitions) in front; `epoch` is
    /// how many offsets back its epoch starts (None: standalone).
    pub(super) fn finish(
        &self,
        flags: u8,
        epoch: Option<u64>,
        table: TableWriter,
    ) -> Result<Vec<u8>, RecordError> {
        let (table, table_zstd) = compress(table.into_bytes())?;
        let mut flags = flags;
        if table_zstd {
            flags |= TABLE_ZSTD;
        }
        if self.body_zstd {
            flags |= BODY_ZSTD;
        }
        let mut out = Vec::with_capacity(2 + 20 + table.len() + self.body.len());
        out.push(VERSION);
        out.push(flags);
        if let Some(epoch) = epoch {
            varint(&mut out, epoch);
        }
        varint(&mut out, table.len() as u64);
        out.extend_from_slice(&table);
        out.extend_from_slice(&self.body);
        Ok(out)
    }
}

/// A series table being written (hand-encoded: the definitions arrive as
/// ready bytes).
#[derive(Default)]
pub(super) struct TableWriter {
    /// Packed `ids` (field 1): zigzag differences.
    ids: Vec<u8>,
    last: u64,
    /// `defs` (field 2), each with its tag and length.
    defs: Vec<u8>,
}

impl TableWriter {
    pub(super) fn id(&mut self, id: u64) {
        let diff = id.wrapping_sub(self.last) as i64;
        self.last = id;
        varint(&mut self.ids, zigzag(diff));
    }

    pub(super) fn define(&mut self, id: u64, def: &[u8]) {
        let mut head = Vec::with_capacity(12);
        head.push(0x08); // field 1 (id), varint
        varint(&mut head, id);
        self.defs.push(0x12); // field 2 (defs), length-delimited
        varint(&mut self.defs, (head.len() + def.len()) as u64);
        self.defs.extend_from_slice(&head);
        self.defs.extend_from_slice(def);
    }

    fn into_bytes(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.ids.len() + self.defs.len() + 6);
        if !self.ids.is_empty() {
            out.push(0x0a); // field 1 (ids), packed
            varint(&mut out, self.ids.len() as u64);
            out.extend_from_slice(&self.ids);
        }
        out.extend_from_slice(&self.defs);
        out
    }
}

thread_local! {
    /// One zstd context per thread, made once: making one costs more than
    /// packing a small record.
    static PACKER: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// zstd when it pays (see [`COMPRESS_FROM`]); whether it was used.
pub(super) fn compress(bytes: Vec<u8>) -> Result<(Vec<u8>, bool), RecordError> {
    if bytes.len() < COMPRESS_FROM {
        return Ok((bytes, false));
    }
    let zstd_error = |e: std::io::Error| RecordError::Encode(format!("zstd: {e}"));
    let packed = PACKER.with(|cell| -> Result<Vec<u8>, RecordError> {
        let mut slot = cell.borrow_mut();
        let packer = match &mut *slot {
            Some(p) => p,
            None => slot.insert(zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(zstd_error)?),
        };
        packer.compress(&bytes).map_err(zstd_error)
    })?;
    if packed.len() >= bytes.len() {
        return Ok((bytes, false));
    }
    Ok((packed, true))
}

pub(super) fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(super) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// The record type of a metric type.
pub fn type_code(kind: MetricType) -> pb::MetricType {
    match kind {
        MetricType::Unknown => pb::MetricType::Unknown,
        MetricType::Counter => pb::MetricType::Counter,
        MetricType::Gauge => pb::MetricType::Gauge,
        MetricType::Histogram => pb::MetricType::Histogram,
        MetricType::GaugeHistogram => pb::MetricType::GaugeHistogram,
        MetricType::Summary => pb::MetricType::Summary,
        MetricType::Info => pb::MetricType::Info,
        MetricType::StateSet => pb::MetricType::Stateset,
    }
}

pub fn metric_type(code: i32) -> Option<MetricType> {
    Some(match pb::MetricType::try_from(code).ok()? {
        pb::MetricType::Unknown => MetricType::Unknown,
        pb::MetricType::Counter => MetricType::Counter,
        pb::MetricType::Gauge => MetricType::Gauge,
        pb::MetricType::Histogram => MetricType::Histogram,
        pb::MetricType::GaugeHistogram => MetricType::GaugeHistogram,
        pb::MetricType::Summary => MetricType::Summary,
        pb::MetricType::Info => MetricType::Info,
        pb::MetricType::Stateset => MetricType::StateSet,
    })
}

fn value_kind(v: Value) -> pb::ValueKind {
    match v {
        Value::Float(_) => pb::ValueKind::Float,
        Value::Int(_) => pb::ValueKind::Int,
        Value::UInt(_) => pb::ValueKind::Uint,
    }
}

fn value_bits(v: Value) -> u64 {
    match v {
        Value::Float(f) => f.to_bits(),
        Value::Int(i) => i as u64,
        Value::UInt(u) => u,
    }
}

/// Strings of the body (units, helps, exemplar labels), each once.
#[derive(Default)]
struct Symbols<'m> {
    list: Vec<&'m str>,
    index: std::collections::HashMap<&'m str, u32>,
}

impl<'m> Symbols<'m> {
    fn get(&mut self, s: &'m str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        if self.list.is_empty() {
            self.list.push("");
        }
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.list.len() as u32;
        self.list.push(s);
        self.index.insert(s, i);
        i
    }
}

/// Whether `m` belongs to the same series entry as `first`: same series,
/// same type, and (for samples) the same kind of value.
fn same_entry(first: &Metric<'_>, m: &Metric<'_>, kind: pb::ValueKind) -> bool {
    first.kind == m.kind
        && first.same_series(m)
        && (m.histogram.is_some() || m.exemplar.is_some() || value_kind(m.value) == kind)
}

fn ms(t: Option<u64>, received_at: i64, what: &str) -> Result<i64, RecordError> {
    match t {
        None => Ok(received_at),
        Some(t) => i64::try_from(t)
            .map_err(|_| RecordError::Encode(format!("{what} {t} ms is beyond 2^63"))),
    }
}

/// The body and series of one record holding `metrics`, in their order
/// (consecutive points of one series become one entry of the record). A
/// metric without a timestamp gets `received_at`.
pub fn encode(
    client_id: &str,
    tenant: Option<&str>,
    received_at: i64,
    metrics: &[Metric<'_>],
) -> Result<Encoded, RecordError> {
    let mut body = pb::Body {
        client_id: client_id.to_string(),
        tenant: tenant.unwrap_or("").to_string(),
        received_at,
        ..Default::default()
    };
    let mut symbols = Symbols::default();
    let mut series = Vec::new();
    let mut last_ts = received_at;
    let mut i = 0;
    while i < metrics.len() {
        let first = &metrics[i];
        // The value kind of the entry: its first float sample's.
        let kind = metrics[i..]
            .iter()
            .take_while(|m| first.same_series(m))
            .find(|m| m.histogram.is_none() && m.exemplar.is_none())
            .map_or(pb::ValueKind::Float, |m| value_kind(m.value));
        let end = i + metrics[i..]
            .iter()
            .take_while(|m| same_entry(first, m, kind))
            .count();
        let entry = &metrics[i..end];
        let index = series.len() as u32;
        let tags = first.tags.iter().map(|(k, v)| (k.as_ref(), v.as_ref()));
        series.push(SeriesKey::new(&first.name, tags));
        body.types.push(type_code(first.kind) as i32);
        let mut info = pb::SeriesInfo {
            series: index,
            value_kind: kind as i32,
            ..Default::default()
        };
        let mut samples = 0u32;
        let mut sub_ms = false;
        let mut started = false;
        for m in entry {
            if let Some(u) = &m.unit {
                info.unit = symbols.get(u);
            }
            if let Some(h) = &m.help {
                info.help = symbols.get(h);
            }
            let t = ms(m.timestamp, received_at, "timestamp")?;
            if let Some(h) = &m.histogram {
                let mut h = h.0.clone();
                h.timestamp = t;
                h.start_timestamp = ms(m.created_timestamp, 0, "created timestamp")?;
                info.histograms.push(h);
                continue;
            }
            if let Some(e) = &m.exemplar {
                let mut labels = Vec::with_capacity(e.labels.len() * 2);
                for (k, v) in &e.labels {
                    labels.push(symbols.get(k));
                    labels.push(symbols.get(v));
                }
                info.exemplars.push(pb::Exemplar {
                    labels,
                    value: m.value.as_f64(),
                    timestamp: t,
                });
                continue;
            }
            body.timestamps.push(t.wrapping_sub(last_ts));
            last_ts = t;
            body.values.push(value_bits(m.value));
            // The two rare columns are filled only once a sample needs
            // them (zeros for the samples before it).
            let nanos = m.timestamp_ns.map_or(0, |ns| (ns % 1_000_000) as u32);
            if nanos != 0 && !sub_ms {
                sub_ms = true;
                info.sub_ms_nanos.resize(samples as usize, 0);
            }
            if sub_ms {
                info.sub_ms_nanos.push(nanos);
            }
            let start = ms(m.created_timestamp, 0, "created timestamp")?;
            if start != 0 && !started {
                started = true;
                info.start_timestamps.resize(samples as usize, 0);
            }
            if started {
                info.start_timestamps.push(start);
            }
            samples += 1;
        }
        body.sample_counts.push(samples);
        let plain = info.unit == 0
            && info.help == 0
            && info.value_kind == 0
            && info.sub_ms_nanos.is_empty()
            && info.start_timestamps.is_empty()
            && info.histograms.is_empty()
            && info.exemplars.is_empty();
        if !plain {
            body.infos.push(info);
        }
        i = end;
    }
    body.symbols = symbols.list.iter().map(|s| s.to_string()).collect();
    let (bytes, body_zstd) = compress(body.encode_to_vec())?;
    Ok(Encoded {
        series,
        body: bytes,
        body_zstd,
        points: metrics.len(),
    })
}

/// The bytes a metric adds to an uncompressed record, about: what a
/// request is cut into records by, before any is encoded.
pub fn size_of(m: &Metric<'_>) -> usize {
    m.size(Overheads {
        per_string: 4,
        per_number: 8,
        per_point: 24,
        per_histogram: 64,
    })
}
