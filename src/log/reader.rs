//! Read-only access to a partition log for consumers, possibly in another
//! process while the writer appends, rolls and deletes segments.
//!
//! Nothing here trusts the directory to stay still: the segment list is a
//! cache refreshed on a miss, a deleted segment is noticed through its link
//! count, and every record is CRC-checked and bounded by `hwm`.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::files;
use super::index;
use super::record::Record;
use super::segment::{self, Window};

/// Read-only access for consumers.
#[derive(Debug)]
pub struct LogReader {
    dir: PathBuf,
    /// Segment base offsets as last listed.
    bases: Vec<u64>,
    cur: Option<OpenSegment>,
    window: Window,
}

#[derive(Debug)]
struct OpenSegment {
    base: u64,
    log: File,
    /// File length as of the current read.
    len: u64,
    /// Where the previous read stopped, `(offset, position)`: sequential
    /// consumers continue from there without an index lookup.
    resume: Option<(u64, u64)>,
}

enum Step {
    Stop,
    /// The segment ended at this offset; continue in the segment based there.
    EndOfSegment(u64),
}

/// `max_bytes` of frames, except that the first record always fits.
struct Budget {
    max: usize,
    used: usize,
}

impl Budget {
    fn exhausted(&self, returned: usize) -> bool {
        returned > 0 && self.used >= self.max
    }

    fn take(&mut self, size: usize, first: bool) -> bool {
        if !first && self.used.saturating_add(size) > self.max {
            return false;
        }
        self.used = self.used.saturating_add(size);
        true
    }

    /// Read-ahead per syscall: what the caller wants plus room for an index gap.
    fn chunk(&self) -> usize {
        self.max.saturating_add(4096).clamp(16 << 10, 8 << 20)
    }
}

impl LogReader {
    /// Opens the log in `dir`, which must exist.
    pub fn open(dir: &Path) -> io::Result<LogReader> {
        if !fs::metadata(dir)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", dir.display()),
            ));
        }
        let mut reader = LogReader {
            dir: dir.to_path_buf(),
            bases: Vec::new(),
            cur: None,
            window: Window::default(),
        };
        reader.relist()?;
        Ok(reader)
    }

    /// One past the last durable record; 0 if the writer never synced.
    pub fn high_watermark(&self) -> io::Result<u64> {
        files::read_hwm(&self.dir)
    }

    /// Base offset of the oldest segment (re-lists the directory).
    pub fn start_offset(&mut self) -> io::Result<u64> {
        self.relist()?;
        Ok(self.bases.first().copied().unwrap_or(0))
    }

    /// Records with offset >= `from` and < the high watermark, in order,
    /// stopping before `max_bytes` of frames (on-disk size) would be exceeded,
    /// but returning at least one record if one is available.
    ///
    /// If `from` was deleted by retention, reads from the start offset instead
    /// (the first record's offset tells). One call never returns a gap.
    pub fn read(&mut self, from: u64, max_bytes: usize) -> io::Result<Vec<Record>> {
        // hwm first: records below it were written before it, so the segment
        // lengths taken afterwards cover them.
        let hwm = self.high_watermark()?;
        let mut out = Vec::new();
        let mut budget = Budget {
            max: max_bytes,
            used: 0,
        };
        let mut next = from;
        let mut locate = (from, false);
        let mut prev_base = None;
        while next < hwm {
            let Some(base) = self.open_for(locate.0, locate.1)? else {
                break;
            };
            if prev_base == Some(base) {
                break;
            }
            if base > next {
                if !out.is_empty() {
                    break;
                }
                next = base;
                if next >= hwm {
                    break;
                }
            }
            prev_base = Some(base);
            match self.read_segment(next, hwm, &mut budget, &mut out)? {
                Step::Stop => break,
                Step::EndOfSegment(end) => {
                    next = next.max(end);
                    locate = (end, true);
                }
            }
        }
        Ok(out)
    }

    fn relist(&mut self) -> io::Result<()> {
        self.bases = files::list(&self.dir)?.logs;
        Ok(())
    }

    /// Opens the segment holding `offset` (or based exactly at it), re-listing
    /// the directory once on a miss. Returns its base, which is above `offset`
    /// when the records there were deleted.
    fn open_for(&mut self, offset: u64, exact: bool) -> io::Result<Option<u64>> {
        for attempt in 0..2 {
            if attempt > 0 {
                self.relist()?;
            }
            let Some(base) = pick(&self.bases, offset, exact) else {
                continue;
            };
            if self.ensure_open(base)? {
                return Ok(Some(base));
            }
        }
        Ok(None)
    }

    /// Makes `base` the current segment; false if it no longer exists.
    fn ensure_open(&mut self, base: u64) -> io::Result<bool> {
        if let Some(cur) = self.cur.as_mut().filter(|c| c.base == base) {
            let meta = cur.log.metadata()?;
            // Unlinked by retention: its records are gone for new reads.
            if meta.nlink() > 0 {
                cur.len = meta.len();
                return Ok(true);
            }
            self.cur = None;
            return Ok(false);
        }
        match File::open(files::log_path(&self.dir, base)) {
            Ok(log) => {
                let len = log.metadata()?.len();
                self.cur = Some(OpenSegment {
                    base,
                    log,
                    len,
                    resume: None,
                });
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn read_segment(
        &mut self,
        next: u64,
        hwm: u64,
        budget: &mut Budget,
        out: &mut Vec<Record>,
    ) -> io::Result<Step> {
        let Some(seg) = self.cur.as_mut() else {
            return Ok(Step::Stop);
        };
        let (mut pos, mut offset, mut hinted) = seg.start_for(next, &self.dir)?;
        let chunk = budget.chunk();
        self.window.reset();
        loop {
            if offset >= hwm || budget.exhausted(out.len()) {
                seg.resume = Some((offset, pos));
                return Ok(Step::Stop);
            }
            if pos >= seg.len {
                seg.resume = Some((offset, pos));
                return Ok(Step::EndOfSegment(offset));
            }
            let loaded = segment::load_frame(&mut self.window, &seg.log, seg.len, pos, chunk)?;
            let frame = match loaded.and_then(|()| self.window.frame(pos, offset)) {
                Ok(frame) => frame,
                Err(_) if hinted => {
                    // A stale hint (the segment was rewritten): scan from the start.
                    (pos, offset, hinted) = (0, seg.base, false);
                    continue;
                }
                Err(invalid) => {
                    seg.resume = None;
                    // Return what came before; the next read reports it.
                    if !out.is_empty() {
                        return Ok(Step::Stop);
                    }
                    // Everything below hwm was fsync'd before hwm moved,
                    // so bad or missing bytes there are damage, not a
                    // write in progress: say so rather than stall.
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: {invalid} at byte {pos}", files::log_name(seg.base)),
                    ));
                }
            };
            hinted = false;
            if frame.offset >= next {
                if !budget.take(frame.size, out.is_empty()) {
                    seg.resume = Some((offset, pos));
                    return Ok(Step::Stop);
                }
                out.push(self.window.record(&frame));
            }
            pos += frame.size as u64;
            offset += 1;
        }
    }
}

impl OpenSegment {
    /// Where to start scanning for `next`: `(position, offset there, is_hint)`.
    fn start_for(&self, next: u64, dir: &Path) -> io::Result<(u64, u64, bool)> {
        if let Some((offset, pos)) = self.resume {
            if offset == next && pos <= self.len {
                return Ok((pos, offset, true));
            }
        }
        if next <= self.base {
            return Ok((0, self.base, false));
        }
        let (entries, _) = index::load(&files::index_path(dir, self.base), self.len)?;
        let rel = u32::try_from(next - self.base).unwrap_or(u32::MAX);
        Ok(match index::lookup(&entries, rel) {
            Some(e) => (
                u64::from(e.position),
                self.base + u64::from(e.rel_offset),
                true,
            ),
            None => (0, self.base, false),
        })
    }
}

/// The listed segment to read `offset` from: the one holding it, or with
/// `exact` the one based at it; the oldest if `offset` is below them all.
fn pick(bases: &[u64], offset: u64, exact: bool) -> Option<u64> {
    let first = *bases.first()?;
    if offset < first {
        return Some(first);
    }
    let i = bases.partition_point(|&b| b <= offset) - 1;
    (!exact || bases[i] == offset).then_some(bases[i])
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::log::testutil::{append, config, fill, frames, read_all, records, segment_bases};
    use crate::log::{LogConfig, PartitionLog};

    #[test]
    fn open_requires_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let err = LogReader::open(&dir.path().join("missing")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        // An existing but unwritten directory is an empty log.
        let mut reader = LogReader::open(dir.path()).unwrap();
        assert_eq!(reader.high_watermark().unwrap(), 0);
        assert_eq!(reader.start_offset().unwrap(), 0);
        assert!(reader.read(0, 1000).unwrap().is_empty());
    }

    #[test]
    fn records_share_reused_buffers_safely() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
        fill(&mut log, 400, 10);
        let all = records(0..400);
        let mut reader = LogReader::open(dir.path()).unwrap();
        // Records held while later reads refill: their bytes stay theirs.
        let mut held = Vec::new();
        while (held.len() as u64) < 400 {
            held.extend(reader.read(held.len() as u64, 300).unwrap());
        }
        assert_eq!(held, all);
        // Dropped records give their buffer back: the same read lands in
        // the same memory.
        let first = reader.read(0, 300).unwrap();
        let at = first[0].value.as_ptr();
        drop(first);
        drop(held);
        let again = reader.read(0, 300).unwrap();
        assert_eq!(again[0].value.as_ptr(), at);
        assert_eq!(again[..], all[..again.len()]);
        // Held, it is not reused.
        let other = reader.read(0, 300).unwrap();
        assert_ne!(other[0].value.as_ptr(), at);
        assert_eq!(other, again);
    }

    #[test]
    fn reads_from_any_offset() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path(), config(800)).unwrap();
        fill(&mut log, 120, 4);
        let bases = segment_bases(dir.path());
        assert!(bases.len() > 3);
        // The test needs offsets that are reached through an index entry.
        let idx = fs::metadata(files::index_path(dir.path(), bases[1])).unwrap();
        assert!(idx.len() >= 16);

        let all = records(0..120);
        let mut reader = LogReader::open(dir.path()).unwrap();
        for from in (0..120).rev().chain(0..120) {
            let got = reader.read(from, 250).unwrap();
            assert!(!got.is_empty(), "from {from}");
            assert_eq!(got[..], all[from as usize..from as usize + got.len()]);
        }
        for from in [120, 121, 10_000, u64::MAX] {
            assert!(reader.read(from, 1 << 20).unwrap().is_empty());
        }
        // Everything in one call when the budget allows, across segments.
        assert_eq!(reader.read(0, usize::MAX).unwrap(), all);
        assert_eq!(read_all(dir.path(), 37), all[37..]);
    }

    #[test]
    fn budget_is_respected_but_one_record_always_returned() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path(), config(100_000)).unwrap();
        fill(&mut log, 50, 50);
        let sizes: Vec<u64> = frames(dir.path(), 0).iter().map(|f| f.2).collect();
        let mut reader = LogReader::open(dir.path()).unwrap();
        assert_eq!(reader.read(3, 0).unwrap(), records(3..4));
        assert_eq!(reader.read(3, 1).unwrap(), records(3..4));
        let three = (sizes[3] + sizes[4] + sizes[5]) as usize;
        assert_eq!(reader.read(3, three).unwrap(), records(3..6));
        assert_eq!(
            reader.read(3, three + sizes[6] as usize - 1).unwrap(),
            records(3..6)
        );
    }

    #[test]
    fn never_reads_past_the_high_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path(), config(600)).unwrap();
        fill(&mut log, 10, 5);
        let mut reader = LogReader::open(dir.path()).unwrap();
        assert_eq!(reader.read(0, usize::MAX).unwrap(), records(0..10));
        // Written, rolled even, but not synced: invisible.
        append(&mut log, 10..30);
        assert_eq!(reader.high_watermark().unwrap(), 10);
        assert!(reader.read(10, usize::MAX).unwrap().is_empty());
        assert_eq!(reader.read(5, usize::MAX).unwrap(), records(5..10));
        log.sync().unwrap();
        assert_eq!(reader.read(10, usize::MAX).unwrap(), records(10..30));
    }

    #[test]
    fn follows_the_writer_across_rolls() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path(), config(400)).unwrap();
        let mut reader = LogReader::open(dir.path()).unwrap();
        let mut next = 0;
        let mut seen = Vec::new();
        for end in (3..=90).step_by(3) {
            append(&mut log, end - 3..end);
            log.sync().unwrap();
            loop {
                let got = reader.read(next, 200).unwrap();
                let Some(last) = got.last() else { break };
                next = last.offset + 1;
                seen.extend(got);
            }
        }
        assert!(segment_bases(dir.path()).len() > 5);
        assert_eq!(seen, records(0..90));
    }

    #[test]
    fn skips_to_the_start_after_retention_deleted_its_segment() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig {
            retention_bytes: Some(1000),
            ..config(400)
        };
        let (mut log, _) = PartitionLog::open(dir.path(), cfg).unwrap();
        fill(&mut log, 60, 2);
        let mut reader = LogReader::open(dir.path()).unwrap();
        // Park the reader in the middle of the first segment.
        assert_eq!(reader.read(0, 1).unwrap(), records(0..1));
        assert!(log.apply_retention(SystemTime::now()).unwrap() > 0);
        let start = log.start_offset();
        assert!(start > 1);
        assert_eq!(reader.start_offset().unwrap(), start);
        assert_eq!(reader.read(1, 1).unwrap(), records(start..start + 1));
        assert_eq!(reader.read(0, usize::MAX).unwrap(), records(start..60));
    }

    #[test]
    fn deletion_mid_read_never_yields_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig {
            retention_bytes: Some(1000),
            ..config(400)
        };
        let (mut log, _) = PartitionLog::open(dir.path(), cfg).unwrap();
        fill(&mut log, 60, 2);
        let bases = segment_bases(dir.path());
        let mut reader = LogReader::open(dir.path()).unwrap();
        // Read to the end of the first segment (cached open), then lose the next ones.
        let first = reader.read(0, usize::MAX).unwrap();
        assert_eq!(first.len(), 60);
        let got = reader.read(bases[1] - 1, 1).unwrap();
        assert_eq!(got, records(bases[1] - 1..bases[1]));
        log.apply_retention(SystemTime::now()).unwrap();
        let start = log.start_offset();
        let got = reader.read(bases[1], usize::MAX).unwrap();
        assert_eq!(got, records(start..60));
    }

    #[test]
    fn index_is_only_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path(), config(100_000)).unwrap();
        fill(&mut log, 80, 4);
        let index = files::index_path(dir.path(), 0);
        let all = records(0..80);
        let check = |what: &str| {
            let mut reader = LogReader::open(dir.path()).unwrap();
            for from in [0, 1, 41, 79] {
                let got = reader.read(from, 1).unwrap();
                assert_eq!(got[..], all[from as usize..from as usize + 1], "{what}");
            }
        };
        check("good");
        let good = fs::read(&index).unwrap();
        // Entries pointing into the middle of records.
        let shifted: Vec<u8> = good
            .chunks(8)
            .flat_map(|e| {
                let pos = u32::from_le_bytes([e[4], e[5], e[6], e[7]]) + 3;
                [&e[..4], &pos.to_le_bytes()[..]].concat()
            })
            .collect();
        fs::write(&index, shifted).unwrap();
        check("shifted");
        // Entries pointing past the end of the file.
        let mut far = good.clone();
        far.extend_from_slice(&[200, 0, 0, 0, 0, 0, 0, 1]);
        fs::write(&index, far).unwrap();
        check("past end");
        fs::remove_file(&index).unwrap();
        check("missing");
    }

    #[test]
    fn corrupt_data_below_hwm_is_an_error_not_a_short_read() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path(), config(100_000)).unwrap();
        fill(&mut log, 10, 10);
        let (_, pos, _) = frames(dir.path(), 0)[4];
        let path = files::log_path(dir.path(), 0);
        let mut bytes = fs::read(&path).unwrap();
        bytes[pos as usize + 20] ^= 1;
        fs::write(&path, bytes).unwrap();
        let mut reader = LogReader::open(dir.path()).unwrap();
        assert_eq!(reader.read(0, usize::MAX).unwrap(), records(0..4));
        let err = reader.read(4, usize::MAX).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(
            err.to_string().contains("crc mismatch at offset 4"),
            "{err}"
        );
    }

    #[test]
    fn a_short_segment_below_hwm_is_an_error_not_a_stall() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path(), config(100_000)).unwrap();
        fill(&mut log, 10, 10);
        let (_, pos, _) = frames(dir.path(), 0)[6];
        let path = files::log_path(dir.path(), 0);
        let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(pos + 5).unwrap();
        let mut reader = LogReader::open(dir.path()).unwrap();
        assert_eq!(reader.read(0, usize::MAX).unwrap(), records(0..6));
        let err = reader.read(6, usize::MAX).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains(&format!("at byte {pos}")), "{err}");
    }

    #[test]
    fn concurrent_writer_rolling_and_deleting() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig {
            retention_bytes: Some(3000),
            ..config(700)
        };
        let (mut log, _) = PartitionLog::open(dir.path(), cfg).unwrap();
        const N: u64 = 1000;
        let writer = std::thread::spawn(move || {
            let mut at = 0;
            while at < N {
                let end = (at + 1 + at % 5).min(N);
                append(&mut log, at..end);
                log.sync().unwrap();
                log.apply_retention(SystemTime::now()).unwrap();
                at = end;
            }
        });
        let mut reader = LogReader::open(dir.path()).unwrap();
        let (mut next, mut seen, mut skipped) = (0, 0, 0);
        while next < N {
            let got = reader.read(next, 400).unwrap();
            let Some(first) = got.first() else {
                std::thread::yield_now();
                continue;
            };
            // Only deleted records are ever skipped, and never inside a batch.
            assert!(first.offset >= next);
            skipped += first.offset - next;
            assert_eq!(got, records(first.offset..first.offset + got.len() as u64));
            next = first.offset + got.len() as u64;
            // hwm only grows, so reading it afterwards bounds what was returned.
            assert!(next <= reader.high_watermark().unwrap());
            seen += got.len() as u64;
        }
        writer.join().unwrap();
        assert_eq!(seen + skipped, N);
    }

    #[test]
    fn pick_chooses_the_holding_segment() {
        let bases = [10, 20, 30];
        assert_eq!(pick(&[], 5, false), None);
        assert_eq!(pick(&bases, 5, false), Some(10));
        assert_eq!(pick(&bases, 25, false), Some(20));
        assert_eq!(pick(&bases, 99, false), Some(30));
        assert_eq!(pick(&bases, 20, true), Some(20));
        assert_eq!(pick(&bases, 25, true), None);
        assert_eq!(pick(&bases, 5, true), Some(10));
    }
}
