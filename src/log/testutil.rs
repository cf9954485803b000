//! Helpers shared by the log's unit tests.

use std::path::Path;

use super::{LogConfig, LogReader, NewRecord, PartitionLog, Record};

/// Small segments and a dense index so tests roll and use the index.
pub(crate) fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 100,
        ..LogConfig::default()
    }
}

/// The record written at `offset`: content derived from the offset, sizes vary.
pub(crate) fn record(offset: u64) -> Record {
    Record {
        offset,
        timestamp_ms: 1_000 + offset as i64,
        key: format!("key-{offset}").into_bytes().into(),
        value: vec![offset as u8; 10 + (offset as usize % 7) * 9].into(),
    }
}

pub(crate) fn records(offsets: std::ops::Range<u64>) -> Vec<Record> {
    offsets.map(record).collect()
}

/// Appends the records for `offsets` as one batch.
pub(crate) fn append(log: &mut PartitionLog, offsets: std::ops::Range<u64>) -> u64 {
    let owned = records(offsets.clone());
    let batch: Vec<NewRecord<'_>> = owned
        .iter()
        .map(|r| NewRecord {
            timestamp_ms: r.timestamp_ms,
            key: &r.key,
            value: &r.value,
        })
        .collect();
    let first = log.append(&batch).unwrap();
    assert_eq!(first, offsets.start);
    first
}

/// Appends `0..n` in batches of `batch` records and syncs.
pub(crate) fn fill(log: &mut PartitionLog, n: u64, batch: u64) {
    let mut at = log.next_offset();
    while at < n {
        let end = (at + batch).min(n);
        append(log, at..end);
        at = end;
    }
    log.sync().unwrap();
}

/// Everything a fresh reader returns from `from`, in small reads.
pub(crate) fn read_all(dir: &Path, from: u64) -> Vec<Record> {
    let mut reader = LogReader::open(dir).unwrap();
    let mut out: Vec<Record> = Vec::new();
    let mut next = from;
    loop {
        let got = reader.read(next, 300).unwrap();
        let Some(last) = got.last() else { break };
        next = last.offset + 1;
        out.extend(got);
    }
    out
}

/// Segment base offsets present in `dir`.
pub(crate) fn segment_bases(dir: &Path) -> Vec<u64> {
    let mut bases: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".log").map(|b| b.parse().unwrap())
        })
        .collect();
    bases.sort_unstable();
    bases
}

/// `(offset, position, size)` of every valid record of segment `base`.
pub(crate) fn frames(dir: &Path, base: u64) -> Vec<(u64, u64, u64)> {
    let path = super::files::log_path(dir, base);
    let file = std::fs::File::open(path).unwrap();
    let len = file.metadata().unwrap().len();
    let mut out = Vec::new();
    let end = super::segment::scan(&file, len, 0, base, |o, p, s| out.push((o, p, s))).unwrap();
    // Past the records, an active segment holds only preallocated zeros.
    let zeros = super::segment::is_zeros(&file, end.position, len).unwrap();
    assert!(end.invalid.is_none() || zeros, "{:?}", end.invalid);
    out
}
