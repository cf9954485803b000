//! What a stored record is: the one module that writes the queue's records
//! and reads them back, every format version of them.
//!
//! The data path through it, top to bottom:
//! - [`metric`]: what is stored of one data point ([`Metric`]), whichever
//!   protocol it came in by; [`value`]: its value, bit-exact.
//! - Writing: [`json`] (version 1, the JSON batch: old data dirs, and Kafka
//!   topics for readers that want text) or [`compact`] (version 2: series
//!   ids, columns, zstd; `proto/record.proto` is its specification), whose
//!   series table the embedded log's writer fills in with [`epoch`].
//! - Reading: [`read::PartitionReader`] reads any version into
//!   [`Sample`]s (version 1 through [`json_read`], which falls back to
//!   serde for JSON it does not know the shape of).
//!
//! # The format byte
//! A record's first byte names its format: `{` is version 1 (JSON has no
//! version byte, and records written before versions existed read as
//! version 1), [`compact::VERSION`] (0x02) is version 2. A reader refuses
//! any other, saying which byte it found.

pub mod compact;
pub mod epoch;
pub mod json;
pub mod json_read;
pub mod metric;
pub mod read;
pub mod sample;
pub mod value;

#[cfg(test)]
mod tests;

pub use metric::{ExemplarPoint, HistogramPoint, Metric, MetricType};
pub use read::PartitionReader;
pub use sample::{Extra, Interner, Sample, Series};
pub use value::Value;

/// Who sent a record, under which tenant, and when it was received (ms).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Head {
    pub received_at: u64,
    pub client_id: String,
    /// The request's tenant (`X-Scope-OrgID`); `None` when it had none.
    pub tenant: Option<String>,
}

/// A record's format version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Version 1: the JSON batch.
    Json,
    /// Version 2: the compact binary record.
    Compact,
}

impl Format {
    /// The name `--kafka-format` and the docs give it.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Compact => "compact",
        }
    }
}

/// The format of a record value, by its first byte.
pub fn format_of(offset: u64, value: &[u8]) -> Result<Format, RecordError> {
    match value.first() {
        Some(b'{') => Ok(Format::Json),
        Some(&compact::VERSION) => Ok(Format::Compact),
        Some(&b) => Err(RecordError::UnknownFormat { offset, byte: b }),
        None => Err(RecordError::Corrupt {
            offset,
            what: "empty record".into(),
        }),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// A record could not be made (a value the format cannot hold). The
    /// request that brought it is refused, never stored as something else.
    #[error("cannot encode the record: {0}")]
    Encode(String),
    #[error(
        "record at offset {offset}: unknown format byte 0x{byte:02x} (a newer release wrote it?)"
    )]
    UnknownFormat { offset: u64, byte: u8 },
    #[error("record at offset {offset}: {what}")]
    Corrupt { offset: u64, what: String },
    /// The record refers to series defined from offset `from` on, which this
    /// reader has not read: hand those records to `learn` first.
    #[error("record at offset {offset} needs the series defined from offset {from}")]
    NeedsEpoch { offset: u64, from: u64 },
}

/// A record as the queue is handed it.
#[derive(Debug, Clone)]
pub enum Payload {
    /// Finished bytes: a version 1 record (or any record made elsewhere).
    Ready(Vec<u8>),
    /// A version 2 record whose series table is made where its place in
    /// the partition is known: by the embedded log's writer (ids shared
    /// with the partition's earlier records), or as a standalone record.
    Compact(compact::Encoded),
}

impl Payload {
    /// Bytes it holds now (what the queue's memory budget counts).
    pub fn len(&self) -> usize {
        match self {
            Payload::Ready(b) => b.len(),
            Payload::Compact(e) => {
                e.body.len() + e.series.iter().map(|s| s.def.len() + 4).sum::<usize>()
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The record as bytes that need nothing else to be read (a Kafka
    /// message, a spill file's record).
    pub fn into_bytes(self) -> Result<Vec<u8>, RecordError> {
        match self {
            Payload::Ready(b) => Ok(b),
            Payload::Compact(e) => e.standalone(),
        }
    }
}

/// The records that store one request's `metrics` (of one partition) in
/// `format`, each at most about `max_bytes` before compression (a metric
/// larger than that alone gets a record of its own). Timestamps are filled
/// in with `received_at` first. No tenant: see [`tenant_records`].
pub fn records(
    format: Format,
    client_id: &str,
    received_at: u64,
    metrics: &mut [Metric<'_>],
    max_bytes: usize,
) -> Result<Vec<Payload>, RecordError> {
    tenant_records(format, client_id, None, received_at, metrics, max_bytes)
}

/// [`records`] of a request under `tenant`: each record stores it (a
/// record holds one request, so one tenant).
pub fn tenant_records(
    format: Format,
    client_id: &str,
    tenant: Option<&str>,
    received_at: u64,
    metrics: &mut [Metric<'_>],
    max_bytes: usize,
) -> Result<Vec<Payload>, RecordError> {
    let who = Who { client_id, tenant };
    json::fill_timestamps(metrics, received_at);
    let mut out = Vec::new();
    let mut start = 0;
    while start < metrics.len() {
        let mut size = 0;
        let mut end = start;
        let mut last: Option<(usize, usize)> = None;
        while end < metrics.len() {
            let m = &metrics[end];
            // A series' plain samples come together and cost the same: the
            // size of the first is the size of the others.
            let plain = m.histogram.is_none() && m.exemplar.is_none();
            let s = match last {
                Some((i, s)) if plain && metrics[i].same_series(m) => s,
                _ => match format {
                    Format::Compact => compact::size_of(m),
                    Format::Json => json::size_of(m),
                },
            };
            last = plain.then_some((end, s));
            if end > start && size + s > max_bytes {
                break;
            }
            size += s;
            end += 1;
        }
        encode_within(
            format,
            who,
            received_at,
            &metrics[start..end],
            max_bytes,
            &mut out,
        )?;
        start = end;
    }
    Ok(out)
}

/// Who a record is from: its client and tenant.
#[derive(Clone, Copy)]
struct Who<'a> {
    client_id: &'a str,
    tenant: Option<&'a str>,
}

/// Encodes `part`; a record over `max_bytes` (JSON escapes can make one so)
/// is made again as two, down to single metrics.
fn encode_within(
    format: Format,
    who: Who<'_>,
    received_at: u64,
    part: &[Metric<'_>],
    max_bytes: usize,
    out: &mut Vec<Payload>,
) -> Result<(), RecordError> {
    let payload = match format {
        Format::Compact => {
            let received_ms = i64::try_from(received_at)
                .map_err(|_| RecordError::Encode(format!("receive time {received_at} ms")))?;
            Payload::Compact(compact::encode(
                who.client_id,
                who.tenant,
                received_ms,
                part,
            )?)
        }
        Format::Json => Payload::Ready(json::encode(who.client_id, who.tenant, received_at, part)?),
    };
    if payload.len() > max_bytes && part.len() > 1 {
        let (a, b) = part.split_at(part.len() / 2);
        encode_within(format, who, received_at, a, max_bytes, out)?;
        return encode_within(format, who, received_at, b, max_bytes, out);
    }
    out.push(payload);
    Ok(())
}
