//! Reading stored records back, every version: one [`PartitionReader`] per
//! partition read, fed the partition's records in offset order. It keeps
//! what reading needs between records: the series ids of the current epoch
//! (version 2) and the series met lately (version 1, see
//! [`Interner`]).
//!
//! A reader that starts in the middle of an epoch (a consumer resuming at
//! its committed offset) is told so by [`RecordError::NeedsEpoch`]: it then
//! hands the records from the epoch's start to [`PartitionReader::learn`]
//! (only their series tables are read) and reads on.

use std::sync::Arc;

use prompb::record as pb;
use prost::Message;

use super::compact::{self, BODY_ZSTD, KNOWN_FLAGS, STANDALONE, TABLE_ZSTD};
use super::epoch::MAX_IDS;
use super::json_read;
use super::sample::{Extra, Interner, Sample, Series};
use super::value::Value;
use super::{Format, Head, RecordError};

/// Largest part a record may unpack to: a damaged length cannot make a
/// reader allocate more.
pub const MAX_UNPACKED: usize = 256 << 20;

#[derive(Default)]
pub struct PartitionReader {
    /// Series of the current epoch by id (index 0 unused).
    ids: Vec<Option<Arc<Series>>>,
    /// The offset the current epoch started at, and the next offset this
    /// reader expects (both None before the first record).
    epoch: Option<u64>,
    next: Option<u64>,
    /// Version 1: series met lately.
    pub interner: Interner,
}

/// What a version 2 record holds around its two parts.
struct Layout<'a> {
    flags: u8,
    /// Offsets back to the epoch's start (None: standalone).
    epoch: Option<u64>,
    table: &'a [u8],
    body: &'a [u8],
}

fn layout(offset: u64, value: &[u8]) -> Result<Layout<'_>, RecordError> {
    let bad = |what: &str| RecordError::Corrupt {
        offset,
        what: what.to_string(),
    };
    let flags = *value.get(1).ok_or_else(|| bad("no flags byte"))?;
    if flags & !KNOWN_FLAGS != 0 {
        return Err(bad(&format!("unknown flags 0x{flags:02x}")));
    }
    let mut at = 2;
    let epoch = if flags & STANDALONE != 0 {
        None
    } else {
        Some(read_varint(value, &mut at).ok_or_else(|| bad("torn epoch"))?)
    };
    let table_len = read_varint(value, &mut at).ok_or_else(|| bad("torn table length"))?;
    let table_end = usize::try_from(table_len)
        .ok()
        .and_then(|n| at.checked_add(n))
        .filter(|&end| end <= value.len())
        .ok_or_else(|| bad("series table runs past the record"))?;
    Ok(Layout {
        flags,
        epoch,
        table: &value[at..table_end],
        body: &value[table_end..],
    })
}

fn read_varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(v);
        }
    }
    None
}

thread_local! {
    /// One zstd context per thread (see `compact::PACKER`).
    static UNPACKER: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

fn unpack(
    offset: u64,
    bytes: &[u8],
    zstd: bool,
) -> Result<std::borrow::Cow<'_, [u8]>, RecordError> {
    if !zstd {
        return Ok(std::borrow::Cow::Borrowed(bytes));
    }
    let bad = |what: String| RecordError::Corrupt { offset, what };
    let size = zstd::zstd_safe::get_frame_content_size(bytes)
        .map_err(|_| bad("not a zstd frame".into()))?
        .ok_or_else(|| bad("zstd frame without its size".into()))?;
    let size = usize::try_from(size)
        .ok()
        .filter(|&n| n <= MAX_UNPACKED)
        .ok_or_else(|| bad(format!("unpacks to {size} bytes, over {MAX_UNPACKED}")))?;
    let out = UNPACKER
        .with(|cell| -> std::io::Result<Vec<u8>> {
            let mut slot = cell.borrow_mut();
            let unpacker = match &mut *slot {
                Some(u) => u,
                None => slot.insert(zstd::bulk::Decompressor::new()?),
            };
            unpacker.decompress(bytes, size)
        })
        .map_err(|e| bad(format!("zstd: {e}")))?;
    Ok(std::borrow::Cow::Owned(out))
}

impl PartitionReader {
    pub fn new() -> PartitionReader {
        PartitionReader::default()
    }

    /// Appends the samples of the record at `offset` to `out`, returns who
    /// sent it and when it was received. Records must come in offset order; one that
    /// refers to an epoch this reader has not read answers
    /// [`RecordError::NeedsEpoch`] (and `out` is as it was).
    pub fn read(
        &mut self,
        offset: u64,
        value: &[u8],
        out: &mut Vec<Sample>,
    ) -> Result<Head, RecordError> {
        let before = out.len();
        let result = match super::format_of(offset, value)? {
            Format::Json => json_read::decode(offset, value, &mut self.interner, out)
                .map_err(|why| RecordError::Corrupt { offset, what: why }),
            Format::Compact => self.read_compact(offset, value, out),
        };
        if !matches!(result, Err(RecordError::NeedsEpoch { .. })) {
            self.next = Some(offset + 1);
        }
        // Every sample of a record has the record's tenant: one string,
        // shared.
        if let Ok(Head {
            tenant: Some(t), ..
        }) = &result
        {
            let tenant: Arc<str> = Arc::from(t.as_str());
            for s in &mut out[before..] {
                s.tenant = Some(tenant.clone());
            }
        }
        result
    }

    /// Reads only the series table of the record at `offset`: what a
    /// reader starting in the middle of an epoch does with the records
    /// from the epoch's start to where it starts.
    pub fn learn(&mut self, offset: u64, value: &[u8]) -> Result<(), RecordError> {
        if let Format::Compact = super::format_of(offset, value)? {
            let l = layout(offset, value)?;
            if let Some(back) = l.epoch {
                self.enter(offset, back)?;
                let table = unpack(offset, l.table, l.flags & TABLE_ZSTD != 0)?;
                let table =
                    pb::SeriesTable::decode(&table[..]).map_err(|e| RecordError::Corrupt {
                        offset,
                        what: format!("series table: {e}"),
                    })?;
                define(offset, &mut self.ids, table.defs)?;
            }
        }
        self.next = Some(offset + 1);
        Ok(())
    }

    /// Checks that this reader holds the epoch a record `back` offsets
    /// into it needs (or starts it, for `back` 0).
    fn enter(&mut self, offset: u64, back: u64) -> Result<(), RecordError> {
        let start = offset.checked_sub(back).ok_or(RecordError::Corrupt {
            offset,
            what: format!("its epoch starts {back} records back, before offset 0"),
        })?;
        if back == 0 {
            self.ids.clear();
            self.epoch = Some(offset);
            return Ok(());
        }
        if self.epoch == Some(start) && self.next == Some(offset) {
            return Ok(());
        }
        Err(RecordError::NeedsEpoch {
            offset,
            from: start,
        })
    }

    fn read_compact(
        &mut self,
        offset: u64,
        value: &[u8],
        out: &mut Vec<Sample>,
    ) -> Result<Head, RecordError> {
        let l = layout(offset, value)?;
        let bad = |what: String| RecordError::Corrupt { offset, what };
        let mut own = Vec::new();
        let ids = match l.epoch {
            Some(back) => {
                self.enter(offset, back)?;
                &mut self.ids
            }
            None => &mut own,
        };
        let table = unpack(offset, l.table, l.flags & TABLE_ZSTD != 0)?;
        let table =
            pb::SeriesTable::decode(&table[..]).map_err(|e| bad(format!("series table: {e}")))?;
        let body = unpack(offset, l.body, l.flags & BODY_ZSTD != 0)?;
        let body = pb::Body::decode(&body[..]).map_err(|e| bad(format!("body: {e}")))?;
        define(offset, ids, table.defs)?;
        let mut series = Vec::with_capacity(table.ids.len());
        let mut id = 0u64;
        for diff in table.ids {
            id = id.wrapping_add(diff as u64);
            let s = usize::try_from(id)
                .ok()
                .and_then(|i| ids.get(i))
                .and_then(Option::as_ref)
                .ok_or_else(|| bad(format!("series id {id} is not defined in its epoch")))?;
            series.push(s.clone());
        }
        let before = out.len();
        let result = samples(offset, &series, body, out);
        if result.is_err() {
            out.truncate(before);
        }
        result
    }
}

/// Adds the definitions of a series table to `ids`.
fn define(
    offset: u64,
    ids: &mut Vec<Option<Arc<Series>>>,
    defs: Vec<pb::SeriesDef>,
) -> Result<(), RecordError> {
    for def in defs {
        let bad = |what: String| RecordError::Corrupt { offset, what };
        if def.id == 0 || def.id > MAX_IDS {
            return Err(bad(format!("series id {} out of range", def.id)));
        }
        if def.labels.len() % 2 != 0 {
            return Err(bad(format!("series {}: odd label list", def.id)));
        }
        let mut labels = Vec::with_capacity(def.labels.len() / 2);
        let mut it = def.labels.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            labels.push((k, v));
        }
        let i = def.id as usize;
        if ids.len() <= i {
            ids.resize(i + 1, None);
        }
        ids[i] = Some(Arc::new(Series::new(def.name, labels)));
    }
    Ok(())
}

fn symbol(offset: u64, symbols: &[String], i: u32) -> Result<Option<String>, RecordError> {
    if i == 0 {
        return Ok(None);
    }
    symbols
        .get(i as usize)
        .map(|s| Some(s.clone()))
        .ok_or_else(|| RecordError::Corrupt {
            offset,
            what: format!("symbol {i} of {}", symbols.len()),
        })
}

/// The body's points, series by series: float samples, then histograms,
/// then exemplars.
fn samples(
    offset: u64,
    series: &[Arc<Series>],
    body: pb::Body,
    out: &mut Vec<Sample>,
) -> Result<Head, RecordError> {
    let bad = |what: String| RecordError::Corrupt { offset, what };
    let n = series.len();
    if body.sample_counts.len() != n || body.types.len() != n {
        return Err(bad(format!(
            "{n} series, {} sample counts, {} types",
            body.sample_counts.len(),
            body.types.len()
        )));
    }
    let total: u64 = body.sample_counts.iter().map(|&c| u64::from(c)).sum();
    if total != body.timestamps.len() as u64 || total != body.values.len() as u64 {
        return Err(bad(format!(
            "{total} samples, {} timestamps, {} values",
            body.timestamps.len(),
            body.values.len()
        )));
    }
    let mut infos: Vec<Option<pb::SeriesInfo>> = vec![None; n];
    for info in body.infos {
        let i = info.series as usize;
        let slot = infos
            .get_mut(i)
            .ok_or_else(|| bad(format!("info for series {i} of {n}")))?;
        *slot = Some(info);
    }
    let received_at = body.received_at;
    let mut ts = received_at;
    let symbols = body.symbols;
    let mut at = 0usize;
    for (i, s) in series.iter().enumerate() {
        let kind = compact::metric_type(body.types[i])
            .ok_or_else(|| bad(format!("unknown metric type {}", body.types[i])))?;
        let count = body.sample_counts[i] as usize;
        let info = infos[i].take();
        let (unit, help, value_kind) = match &info {
            Some(info) => (
                symbol(offset, &symbols, info.unit)?,
                symbol(offset, &symbols, info.help)?,
                pb::ValueKind::try_from(info.value_kind)
                    .map_err(|_| bad(format!("unknown value kind {}", info.value_kind)))?,
            ),
            None => (None, None, pb::ValueKind::Float),
        };
        let per_sample = |len: usize, what: &str| -> Result<(), RecordError> {
            if len != 0 && len != count {
                return Err(bad(format!("{what}: {len} for {count} samples")));
            }
            Ok(())
        };
        let (sub_ms, starts): (&[u32], &[i64]) = match &info {
            Some(info) => (&info.sub_ms_nanos, &info.start_timestamps),
            None => (&[], &[]),
        };
        per_sample(sub_ms.len(), "sub-ms nanos")?;
        per_sample(starts.len(), "start timestamps")?;
        let meta = unit.is_some() || help.is_some();
        for j in 0..count {
            ts = ts.wrapping_add(body.timestamps[at]);
            let bits = body.values[at];
            at += 1;
            let value = match value_kind {
                pb::ValueKind::Float => Value::Float(f64::from_bits(bits)),
                pb::ValueKind::Int => Value::Int(bits as i64),
                pb::ValueKind::Uint => Value::UInt(bits),
            };
            let nanos = sub_ms.get(j).copied().unwrap_or(0);
            let start = starts.get(j).copied().unwrap_or(0);
            let extra = (meta || nanos != 0 || start != 0).then(|| {
                Arc::new(Extra {
                    timestamp_ns: (nanos != 0)
                        .then(|| (ts as u64).wrapping_mul(1_000_000) + u64::from(nanos)),
                    start_timestamp: (start != 0).then_some(start as u64),
                    unit: unit.clone(),
                    help: help.clone(),
                    ..Extra::default()
                })
            });
            out.push(Sample {
                series: s.clone(),
                value,
                timestamp: ts,
                kind,
                offset,
                extra,
                tenant: None,
            });
        }
        let Some(info) = info else { continue };
        for h in info.histograms {
            let count = match h.count {
                Some(pb::histogram::Count::CountInt(n)) => Value::UInt(n),
                Some(pb::histogram::Count::CountFloat(f)) => Value::Float(f),
                None => Value::UInt(0),
            };
            let timestamp = h.timestamp;
            let start = h.start_timestamp;
            out.push(Sample {
                series: s.clone(),
                value: count,
                timestamp,
                kind,
                offset,
                extra: Some(Arc::new(Extra {
                    histogram: Some(h),
                    start_timestamp: (start != 0).then_some(start as u64),
                    unit: unit.clone(),
                    help: help.clone(),
                    ..Extra::default()
                })),
                tenant: None,
            });
        }
        for e in info.exemplars {
            if e.labels.len() % 2 != 0 {
                return Err(bad("exemplar with an odd label list".into()));
            }
            let mut labels = Vec::with_capacity(e.labels.len() / 2);
            for pair in e.labels.chunks_exact(2) {
                let k = symbol(offset, &symbols, pair[0])?.unwrap_or_default();
                let v = symbol(offset, &symbols, pair[1])?.unwrap_or_default();
                labels.push((k, v));
            }
            out.push(Sample {
                series: s.clone(),
                value: Value::Float(e.value),
                timestamp: e.timestamp,
                kind,
                offset,
                extra: Some(Arc::new(Extra {
                    exemplar: Some(labels),
                    ..Extra::default()
                })),
                tenant: None,
            });
        }
    }
    let received_at =
        u64::try_from(received_at).map_err(|_| bad(format!("received at {received_at} ms")))?;
    Ok(Head {
        received_at,
        client_id: body.client_id,
        // Proto3 has no absent string: "" is no tenant (an empty tenant id
        // is never valid).
        tenant: (!body.tenant.is_empty()).then_some(body.tenant),
    })
}

/// Where the epoch of the record at `offset` starts, when it starts before
/// it: the records a reader starting at `offset` must
/// [learn](PartitionReader::learn) first. None for every other record.
pub fn epoch_start(offset: u64, value: &[u8]) -> Option<u64> {
    if super::format_of(offset, value).ok()? != Format::Compact {
        return None;
    }
    let back = layout(offset, value).ok()?.epoch?;
    (back > 0).then(|| offset.saturating_sub(back))
}

/// A series table and a body, unpacked.
pub type Unpacked = (Vec<u8>, Vec<u8>);

/// A compact record's series table and body, unpacked (for measuring
/// codecs on real records: `examples/record_codecs.rs`); None for a
/// record of another version.
pub fn unpacked_parts(offset: u64, value: &[u8]) -> Result<Option<Unpacked>, RecordError> {
    if super::format_of(offset, value)? != Format::Compact {
        return Ok(None);
    }
    let l = layout(offset, value)?;
    let table = unpack(offset, l.table, l.flags & TABLE_ZSTD != 0)?.into_owned();
    let body = unpack(offset, l.body, l.flags & BODY_ZSTD != 0)?.into_owned();
    Ok(Some((table, body)))
}
