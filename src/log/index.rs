//! The sparse offset index of a segment: `(u32 offset - base, u32 byte position)`
//! pairs, little-endian, one every `index_interval_bytes` of log data.
//!
//! It is only a hint for where to start scanning: it may be short, missing or
//! stale, so readers validate what they find where it points and everyone
//! falls back to scanning from the segment start.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::record::le_u32;

pub(crate) const ENTRY_SIZE: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub rel_offset: u32,
    pub position: u32,
}

impl IndexEntry {
    fn to_bytes(self) -> [u8; ENTRY_SIZE] {
        let mut b = [0; ENTRY_SIZE];
        b[..4].copy_from_slice(&self.rel_offset.to_le_bytes());
        b[4..].copy_from_slice(&self.position.to_le_bytes());
        b
    }
}

/// Parses an index file's bytes against a log of `log_len` bytes.
///
/// Returns the longest prefix of entries that increase strictly in both
/// fields and point inside the log, and whether that prefix is the whole file.
pub(crate) fn parse(bytes: &[u8], log_len: u64) -> (Vec<IndexEntry>, bool) {
    let mut entries: Vec<IndexEntry> = Vec::with_capacity(bytes.len() / ENTRY_SIZE);
    for chunk in bytes.chunks(ENTRY_SIZE) {
        if chunk.len() < ENTRY_SIZE {
            return (entries, false);
        }
        let e = IndexEntry {
            rel_offset: le_u32(chunk, 0),
            position: le_u32(chunk, 4),
        };
        let increasing = entries
            .last()
            .is_none_or(|p| e.rel_offset > p.rel_offset && e.position > p.position);
        if !increasing || u64::from(e.position) >= log_len {
            return (entries, false);
        }
        entries.push(e);
    }
    (entries, true)
}

/// Reads and parses the index at `path`; a missing file is an empty, invalid index.
pub(crate) fn load(path: &Path, log_len: u64) -> io::Result<(Vec<IndexEntry>, bool)> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(parse(&bytes, log_len)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok((Vec::new(), false)),
        Err(e) => Err(e),
    }
}

/// The last entry at or before `rel_offset`.
pub(crate) fn lookup(entries: &[IndexEntry], rel_offset: u32) -> Option<IndexEntry> {
    let n = entries.partition_point(|e| e.rel_offset <= rel_offset);
    n.checked_sub(1).map(|i| entries[i])
}

/// Decides where entries go. The writer and index rebuilds share it so a
/// rebuilt index is identical to the one the writer would have produced.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IndexPolicy {
    interval: u64,
    since_last: u64,
}

impl IndexPolicy {
    /// `since_last`: log bytes after the last entry (the whole log if none).
    pub(crate) fn new(interval: u32, since_last: u64) -> Self {
        IndexPolicy {
            interval: u64::from(interval),
            since_last,
        }
    }

    /// Called for every record in order; returns the entry to add before it, if any.
    pub(crate) fn observe(
        &mut self,
        rel_offset: u32,
        position: u32,
        size: u64,
    ) -> Option<IndexEntry> {
        let entry = (self.since_last >= self.interval).then(|| {
            self.since_last = 0;
            IndexEntry {
                rel_offset,
                position,
            }
        });
        self.since_last += size;
        entry
    }
}

/// The active segment's index: entries accumulate in memory and reach the
/// file on `flush` (at roll and close) or `flush_if_due` (at sync), never
/// per append.
#[derive(Debug)]
pub(crate) struct IndexWriter {
    file: File,
    flushed_len: u64,
    pending: Vec<u8>,
    policy: IndexPolicy,
    flushed_at: Instant,
}

/// How long index entries may wait in memory: the index is only a hint
/// (readers scan on from the last entry they find, recovery rebuilds it),
/// and writing it at every commit dirtied a page that a `syncfs` then wrote
/// out each time (docs/durable-path.md).
const INDEX_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Where to roll an [`IndexWriter`] back to when an append fails.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IndexMark {
    pending_len: usize,
    policy: IndexPolicy,
}

impl IndexWriter {
    /// Opens (or creates) the index at `path`, keeping its first `entries`
    /// entries and dropping anything after them.
    pub(crate) fn open(path: &Path, entries: usize, policy: IndexPolicy) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let flushed_len = (entries * ENTRY_SIZE) as u64;
        if file.metadata()?.len() != flushed_len {
            file.set_len(flushed_len)?;
        }
        Ok(IndexWriter {
            file,
            flushed_len,
            pending: Vec::new(),
            policy,
            flushed_at: Instant::now(),
        })
    }

    /// Replaces the file at `path` with exactly `entries`.
    pub(crate) fn rewrite(path: &Path, entries: &[IndexEntry]) -> io::Result<()> {
        let file = File::create(path)?;
        let bytes: Vec<u8> = entries.iter().flat_map(|e| e.to_bytes()).collect();
        file.write_all_at(&bytes, 0)?;
        file.sync_data()
    }

    pub(crate) fn observe(&mut self, rel_offset: u32, position: u32, size: u64) {
        if let Some(e) = self.policy.observe(rel_offset, position, size) {
            self.pending.extend_from_slice(&e.to_bytes());
        }
    }

    pub(crate) fn mark(&self) -> IndexMark {
        IndexMark {
            pending_len: self.pending.len(),
            policy: self.policy,
        }
    }

    pub(crate) fn rollback(&mut self, mark: IndexMark) {
        self.pending.truncate(mark.pending_len);
        self.policy = mark.policy;
    }

    /// `flush`, if entries have waited `INDEX_FLUSH_INTERVAL` or fill a page.
    pub(crate) fn flush_if_due(&mut self) -> io::Result<()> {
        if self.pending.len() >= 4096 || self.flushed_at.elapsed() >= INDEX_FLUSH_INTERVAL {
            return self.flush();
        }
        Ok(())
    }

    /// Writes pending entries; on error they stay pending and are retried.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.flushed_at = Instant::now();
        if self.pending.is_empty() {
            return Ok(());
        }
        self.file.write_all_at(&self.pending, self.flushed_len)?;
        self.flushed_len += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    pub(crate) fn sync(&mut self) -> io::Result<()> {
        self.flush()?;
        self.file.sync_data()
    }

    /// The file, for a final fsync once the segment is closed. Flush first.
    pub(crate) fn into_file(self) -> File {
        self.file
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(entries: &[(u32, u32)]) -> Vec<u8> {
        entries
            .iter()
            .flat_map(|&(rel_offset, position)| {
                IndexEntry {
                    rel_offset,
                    position,
                }
                .to_bytes()
            })
            .collect()
    }

    #[test]
    fn parse_keeps_valid_prefix() {
        let (e, ok) = parse(&bytes(&[(1, 10), (5, 50), (9, 90)]), 100);
        assert!(ok);
        assert_eq!(e.len(), 3);
        // Past the end of the log: ignored from there on.
        let (e, ok) = parse(&bytes(&[(1, 10), (5, 50), (9, 90)]), 60);
        assert!(!ok);
        assert_eq!(e.len(), 2);
        // Zero-filled tail, as after power loss.
        let mut b = bytes(&[(1, 10)]);
        b.extend_from_slice(&[0; 16]);
        let (e, ok) = parse(&b, 100);
        assert!(!ok);
        assert_eq!(e.len(), 1);
        // Partial trailing entry.
        let (e, ok) = parse(&bytes(&[(1, 10)])[..7], 100);
        assert!(!ok && e.is_empty());
    }

    #[test]
    fn lookup_is_floor() {
        let (e, _) = parse(&bytes(&[(2, 20), (5, 50), (9, 90)]), 100);
        assert_eq!(lookup(&e, 0), None);
        assert_eq!(lookup(&e, 2).map(|e| e.position), Some(20));
        assert_eq!(lookup(&e, 7).map(|e| e.position), Some(50));
        assert_eq!(lookup(&e, 1000).map(|e| e.position), Some(90));
    }

    #[test]
    fn policy_spaces_entries_by_interval() {
        let mut p = IndexPolicy::new(100, 0);
        let got: Vec<_> = (0..10u32)
            .filter_map(|i| p.observe(i, i * 40, 40))
            .map(|e| e.rel_offset)
            .collect();
        assert_eq!(got, vec![3, 6, 9]);
    }
}
