//! The single writer of one partition.

use std::collections::VecDeque;
use std::fs::{self, File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use tracing::{info, warn};

use super::config::{LogConfig, SyncMode};
use super::files::{self, CLEAN_SHUTDOWN};
use super::record::{self, NewRecord};
use super::recovery::{self, Recovery};
use super::segment::{self, ActiveSegment, ClosedSegment};

/// The append buffer is kept between appends, unless one huge batch grew it past this.
const MAX_RETAINED_BUF: usize = 16 << 20;
/// How often a failed log retries getting back to its durable prefix.
const REWIND_RETRY: Duration = Duration::from_secs(1);

/// Why a log refuses writes until it is rewound.
#[derive(Debug)]
struct Failure {
    kind: io::ErrorKind,
    why: String,
    /// No rewind attempt before this.
    retry_at: Option<Instant>,
}

/// Single writer of one partition (the server owns one per partition, on its own thread).
///
/// Holds an exclusive lock on the directory while open. Dropping it without
/// [`close`](Self::close) is treated like a crash: the next open scans everything.
#[derive(Debug)]
pub struct PartitionLog {
    dir: PathBuf,
    /// Held open for the lock, and fsynced after files are created.
    dir_file: File,
    config: LogConfig,
    closed: VecDeque<ClosedSegment>,
    closed_bytes: u64,
    active: ActiveSegment,
    next_offset: u64,
    hwm: files::HwmFile,
    /// One past the last record made durable by a sync.
    synced_offset: u64,
    /// Where `synced_offset` is: (segment base, bytes). A failed sync cuts back to here.
    durable: (u64, u64),
    /// The last `hwm` write failed (the data is durable; readers lag until it is redone).
    hwm_stale: bool,
    /// Files of segments closed since the last sync; they still need an fsync.
    unsynced: Vec<File>,
    dir_dirty: bool,
    /// A failed append could not truncate its partial write; redo before writing again.
    dirty_tail: bool,
    /// A sync failed. The kernel may have dropped the dirty pages, so a
    /// retry could "succeed" without the data: refuse writes until
    /// everything after the last good sync is cut off and the log recovered
    /// again (`rewind`).
    failed: Option<Failure>,
    buf: Vec<u8>,
    #[cfg(test)]
    fail_next_write: bool,
    #[cfg(test)]
    fail_next_sync: bool,
}

impl PartitionLog {
    /// Opens (creating `dir` if needed) and recovers the partition log.
    pub fn open(dir: &Path, config: LogConfig) -> io::Result<(PartitionLog, Recovery)> {
        fs::create_dir_all(dir)?;
        let dir_file = File::open(dir)?;
        lock(&dir_file, dir)?;
        let recovered = recovery::recover(dir, &dir_file, &config)?;
        let closed: VecDeque<ClosedSegment> = recovered.closed.into();
        let log = PartitionLog {
            dir: dir.to_path_buf(),
            hwm: files::HwmFile::open(dir)?,
            dir_file,
            closed_bytes: closed.iter().map(|s| s.size).sum(),
            closed,
            config,
            durable: (recovered.active.base, recovered.active.size),
            active: recovered.active,
            next_offset: recovered.next_offset,
            synced_offset: recovered.next_offset,
            hwm_stale: false,
            unsynced: Vec::new(),
            dir_dirty: false,
            dirty_tail: false,
            failed: None,
            buf: Vec::new(),
            #[cfg(test)]
            fail_next_write: false,
            #[cfg(test)]
            fail_next_sync: false,
        };
        Ok((log, recovered.report))
    }

    /// Writes all records with one write to the active segment (rolling first
    /// if needed) and returns the offset of the first.
    ///
    /// All or nothing: on error the segment is cut back to its previous length
    /// and `next_offset` is unchanged. A batch larger than `segment_bytes`
    /// still goes into one (fresh) segment.
    pub fn append(&mut self, records: &[NewRecord<'_>]) -> io::Result<u64> {
        self.check_failed()?;
        let first = self.next_offset;
        if records.is_empty() {
            return Ok(first);
        }
        self.fix_tail()?;
        self.buf.clear();
        if self.buf.capacity() > MAX_RETAINED_BUF {
            self.buf.shrink_to(MAX_RETAINED_BUF);
        }
        for (i, rec) in records.iter().enumerate() {
            record::encode(&mut self.buf, first + i as u64, rec)?;
        }
        let batch = self.buf.len() as u64;
        if batch > u64::from(u32::MAX) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "batch larger than 4 GiB",
            ));
        }
        let count = records.len() as u64;
        if self.would_roll(batch, count) {
            self.roll()?;
        }

        let pos = self.active.size;
        self.active
            .reserve(pos + batch, self.config.segment_limit())?;
        let mark = self.active.index.mark();
        let mut at = pos;
        for (i, rec) in records.iter().enumerate() {
            let size = rec.encoded_len() as u64;
            self.active.observe(first + i as u64, at, size);
            at += size;
        }
        match self.write_batch(pos) {
            Ok(()) => {
                self.active.size += batch;
                self.next_offset += count;
                Ok(first)
            }
            Err(e) => {
                self.active.index.rollback(mark);
                // The records end at `pos`: cut what the write left.
                if let Err(te) = self.active.trim() {
                    warn!(dir = %self.dir.display(), error = %te, "cannot truncate failed append");
                    self.dirty_tail = true;
                }
                Err(e)
            }
        }
    }

    /// Whether appending `count` records of `bytes` (framed) would start a
    /// new segment first (the records of one append share a segment).
    pub fn would_roll(&self, bytes: u64, count: u64) -> bool {
        // Index entries hold u32 positions and offsets relative to the base.
        let too_big = self.active.size + bytes > self.config.segment_limit();
        let too_many = self.next_offset + count - self.active.base > u64::from(u32::MAX);
        self.active.size > 0 && (too_big || too_many)
    }

    fn write_batch(&mut self, pos: u64) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        #[cfg(test)]
        if std::mem::take(&mut self.fail_next_write) {
            let half = &self.buf[..self.buf.len() / 2];
            self.active.log.write_all_at(half, pos)?;
            return Err(io::Error::other("injected write failure"));
        }
        // Positioned, so a truncation after a failure needs no seek to undo.
        self.active.log.write_all_at(&self.buf, pos)
    }

    fn roll(&mut self) -> io::Result<()> {
        // Before the next segment exists: a reader that finds it takes the
        // old one's length as its end.
        self.active.trim()?;
        self.active.index.flush()?;
        let fresh = ActiveSegment::create(
            &self.dir,
            self.next_offset,
            self.config.index_interval_bytes,
        )?;
        let old = std::mem::replace(&mut self.active, fresh);
        self.closed.push_back(ClosedSegment {
            base: old.base,
            size: old.size,
        });
        self.closed_bytes += old.size;
        // Their fsync waits for the next sync, keeping appends free of fsyncs.
        self.unsynced.push(old.log);
        self.unsynced.push(old.index.into_file());
        self.dir_dirty = true;
        Ok(())
    }

    /// Makes everything appended so far durable, then publishes it to readers
    /// by advancing `hwm`.
    ///
    /// On error, whatever was appended since the last good sync is cut off
    /// again (its callers get the error), now or before the next append.
    pub fn sync(&mut self) -> io::Result<()> {
        if !self.prepare_sync()? {
            return Ok(());
        }
        if let Err(e) = self.sync_data() {
            return Err(self.fail(e));
        }
        self.finish_sync();
        Ok(())
    }

    /// Makes several logs durable, by one fdatasync each or by one `syncfs`.
    ///
    /// Each fdatasync ends in its own device cache flush; `syncfs` commits
    /// the journal and flushes once for all of them (measured here: 4 files
    /// fdatasync'd 1.3 ms, syncfs'd 0.3 ms). Linux's syncfs waits for the
    /// writes and (since 5.8) reports writeback errors, so it promises what
    /// an fsync of every file would. But it also writes out every other
    /// dirty file of the file system: behind a big unrelated write (a build,
    /// a copy) one commit can take tens of milliseconds.
    ///
    /// Every log is tried; the first error is returned. Which logs made it
    /// is told by their [`high_watermark`](Self::high_watermark).
    pub fn sync_many(logs: &mut [&mut PartitionLog], mode: SyncMode) -> io::Result<()> {
        let mut first_err = None;
        if logs.len() == 1 || mode == SyncMode::Fdatasync {
            for log in logs.iter_mut() {
                if let Err(e) = log.sync() {
                    first_err.get_or_insert(e);
                }
            }
            return first_err.map_or(Ok(()), Err);
        }
        let mut prepared = vec![false; logs.len()];
        for (log, prepared) in logs.iter_mut().zip(prepared.iter_mut()) {
            match log.prepare_sync() {
                Ok(p) => *prepared = p,
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        // Every log is on the data directory's file system: any prepared
        // one's directory names it.
        let Some(on) = prepared.iter().rposition(|p| *p) else {
            return first_err.map_or(Ok(()), Err);
        };
        let result = rustix::fs::syncfs(&logs[on].dir_file).map_err(io::Error::from);
        #[cfg(test)]
        let result = match logs
            .iter_mut()
            .any(|l| std::mem::take(&mut l.fail_next_sync))
        {
            true => Err(rustix::io::Errno::IO.into()),
            false => result,
        };
        if let Err(e) = result {
            for (log, _) in logs.iter_mut().zip(&prepared).filter(|(_, p)| **p) {
                log.fail(io::Error::new(e.kind(), e.to_string()));
            }
            return Err(e);
        }
        for (log, _) in logs.iter_mut().zip(&prepared).filter(|(_, p)| **p) {
            log.unsynced.clear();
            log.dir_dirty = false;
            log.finish_sync();
        }
        first_err.map_or(Ok(()), Err)
    }

    /// False when there is nothing to sync.
    fn prepare_sync(&mut self) -> io::Result<bool> {
        self.check_failed()?;
        if self.synced_offset == self.next_offset
            && self.unsynced.is_empty()
            && !self.dir_dirty
            && !self.hwm_stale
        {
            return Ok(false);
        }
        if let Err(e) = self.fix_tail() {
            return Err(self.fail(e));
        }
        Ok(true)
    }

    /// After the data is durable: the batches are safe whatever happens
    /// here, so a failed index or `hwm` write (e.g. ENOSPC) is only retried
    /// at the next sync. The index is a hint, and recovery rebuilds `hwm`.
    fn finish_sync(&mut self) {
        self.synced_offset = self.next_offset;
        self.durable = (self.active.base, self.active.size);
        if let Err(e) = self.active.index.flush_if_due() {
            warn!(dir = %self.dir.display(), error = %e, "cannot write the offset index; retrying at the next sync");
        }
        match self.hwm.set(self.next_offset) {
            Ok(()) => self.hwm_stale = false,
            Err(e) => {
                warn!(dir = %self.dir.display(), error = %e, "cannot update hwm; readers lag until the next sync");
                self.hwm_stale = true;
            }
        }
    }

    fn sync_data(&mut self) -> io::Result<()> {
        #[cfg(test)]
        if std::mem::take(&mut self.fail_next_sync) {
            return Err(rustix::io::Errno::IO.into());
        }
        for file in &self.unsynced {
            file.sync_data()?;
        }
        self.unsynced.clear();
        self.active.log.sync_data()?;
        if self.dir_dirty {
            self.dir_file.sync_all()?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// Records a failed sync and tries to rewind at once; returns `e`.
    fn fail(&mut self, e: io::Error) -> io::Error {
        warn!(dir = %self.dir.display(), error = %e, "sync failed; cutting the log back to its last durable record");
        self.failed = Some(Failure {
            kind: e.kind(),
            why: e.to_string(),
            retry_at: None,
        });
        let _ = self.check_failed();
        e
    }

    /// Ok once the log is usable: not failed, or rewound just now.
    fn check_failed(&mut self) -> io::Result<()> {
        let Some(f) = &self.failed else {
            return Ok(());
        };
        if f.retry_at.is_none_or(|t| Instant::now() >= t) {
            match self.rewind() {
                Ok(()) => {
                    self.failed = None;
                    return Ok(());
                }
                Err(e) => {
                    warn!(dir = %self.dir.display(), error = %e, "cannot cut the log back yet; retrying");
                }
            }
        }
        let Some(f) = &mut self.failed else {
            return Ok(());
        };
        f.retry_at = Some(Instant::now() + REWIND_RETRY);
        Err(io::Error::new(
            f.kind,
            format!(
                "{}: an earlier sync failed ({}); the log takes writes again once it is cut back to its last durable record",
                self.dir.display(),
                f.why
            ),
        ))
    }

    /// Cuts off everything after the last good sync (those batches got an
    /// error) and recovers the directory as after a crash. After a failed
    /// fsync the page cache may hold bytes the disk lacks, so nothing
    /// written since is trusted; the durable prefix is.
    fn rewind(&mut self) -> io::Result<()> {
        let (base, size) = self.durable;
        self.unsynced.clear();
        let later: Vec<u64> = self
            .closed
            .iter()
            .map(|s| s.base)
            .chain([self.active.base])
            .filter(|&b| b > base)
            .collect();
        for b in later {
            segment::delete_segment(&self.dir, b)?;
        }
        match fs::OpenOptions::new()
            .write(true)
            .open(files::log_path(&self.dir, base))
        {
            Ok(file) => {
                if file.metadata()?.len() > size {
                    file.set_len(size)?;
                }
                file.sync_all()?;
            }
            // Retention took it: nothing to cut.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.dir_file.sync_all()?;
        let recovered = recovery::recover(&self.dir, &self.dir_file, &self.config)?;
        self.hwm = files::HwmFile::open(&self.dir)?;
        self.closed = recovered.closed.into();
        self.closed_bytes = self.closed.iter().map(|s| s.size).sum();
        self.durable = (recovered.active.base, recovered.active.size);
        self.active = recovered.active;
        self.next_offset = recovered.next_offset;
        self.synced_offset = recovered.next_offset;
        self.hwm_stale = false;
        self.dir_dirty = false;
        self.dirty_tail = false;
        info!(
            dir = %self.dir.display(),
            next_offset = self.next_offset,
            cut = recovered.report.cut.as_deref().unwrap_or("nothing"),
            "log cut back to its last durable record; taking writes again"
        );
        Ok(())
    }

    fn fix_tail(&mut self) -> io::Result<()> {
        if self.dirty_tail {
            self.active.trim()?;
            self.dirty_tail = false;
        }
        Ok(())
    }

    /// The offset the next appended record will get.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// The `hwm` readers see: one past the last record made durable by `sync`.
    pub fn high_watermark(&self) -> u64 {
        self.synced_offset
    }

    /// Base offset of the oldest segment.
    pub fn start_offset(&self) -> u64 {
        self.closed.front().map_or(self.active.base, |s| s.base)
    }

    /// Bytes of all segments (indexes excluded).
    pub fn size_bytes(&self) -> u64 {
        self.closed_bytes + self.active.size
    }

    /// Number of segments, the active one included.
    pub fn segment_count(&self) -> usize {
        self.closed.len() + 1
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Deletes whole closed segments, oldest first, while the log is larger than
    /// `retention_bytes` or the oldest is older than `retention`; returns how many.
    /// The active segment is never deleted, and only a prefix of the log goes,
    /// so the remaining offsets stay contiguous.
    pub fn apply_retention(&mut self, now: SystemTime) -> io::Result<usize> {
        let mut deleted = 0;
        while let Some(&seg) = self.closed.front() {
            let over_size = self
                .config
                .retention_bytes
                .is_some_and(|limit| self.size_bytes() > limit);
            let expired = match self.config.retention {
                Some(max_age) if !over_size => self.expired(seg.base, now, max_age)?,
                _ => false,
            };
            if !over_size && !expired {
                break;
            }
            segment::delete_segment(&self.dir, seg.base)?;
            self.closed.pop_front();
            self.closed_bytes -= seg.size;
            deleted += 1;
        }
        if deleted > 0 {
            info!(
                dir = %self.dir.display(),
                deleted,
                start_offset = self.start_offset(),
                "retention deleted segments"
            );
        }
        Ok(deleted)
    }

    fn expired(&self, base: u64, now: SystemTime, max_age: Duration) -> io::Result<bool> {
        match fs::metadata(files::log_path(&self.dir, base)) {
            // An mtime in the future is not expired.
            Ok(meta) => Ok(now
                .duration_since(meta.modified()?)
                .is_ok_and(|age| age > max_age)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Syncs and writes the clean-shutdown marker, so the next open can skip
    /// the full scan.
    pub fn close(mut self) -> io::Result<()> {
        self.sync()?;
        self.active.trim()?;
        self.active.log.sync_data()?;
        self.active.index.sync()?;
        File::create(self.dir.join(CLEAN_SHUTDOWN))?;
        self.dir_file.sync_all()
    }

    #[cfg(test)]
    pub(crate) fn fail_next_write(&mut self) {
        self.fail_next_write = true;
    }

    #[cfg(test)]
    pub(crate) fn fail_next_sync(&mut self) {
        self.fail_next_sync = true;
    }
}

/// Takes the exclusive writer lock on the directory (flock, released on close or crash).
fn lock(dir_file: &File, dir: &Path) -> io::Result<()> {
    match dir_file.try_lock() {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!("{}: log already open by another writer", dir.display()),
        )),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::log::testutil::{
        append, config, fill, frames, read_all, record, records, segment_bases,
    };

    #[test]
    fn append_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, rec) = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
        assert_eq!((rec.next_offset, rec.segments, rec.clean), (0, 1, false));
        assert_eq!(append(&mut log, 0..3), 0);
        assert_eq!(append(&mut log, 3..4), 3);
        assert_eq!(log.append(&[]).unwrap(), 4);
        log.sync().unwrap();
        assert_eq!(log.next_offset(), 4);
        assert_eq!(log.high_watermark(), 4);
        assert_eq!(read_all(dir.path(), 0), records(0..4));
        let expected: u64 = (0..4).map(frame_len).sum();
        assert_eq!(log.size_bytes(), expected);
    }

    fn frame_len(offset: u64) -> u64 {
        let r = record(offset);
        NewRecord {
            timestamp_ms: r.timestamp_ms,
            key: &r.key,
            value: &r.value,
        }
        .encoded_len() as u64
    }

    #[test]
    fn rolls_by_size_and_names_segments_by_base_offset() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path(), config(500)).unwrap();
        fill(&mut log, 100, 2);
        let bases = segment_bases(dir.path());
        assert!(bases.len() > 5, "{bases:?}");
        assert_eq!(log.segment_count(), bases.len());
        assert_eq!(log.start_offset(), 0);
        for (i, &base) in bases.iter().enumerate() {
            let frames = frames(dir.path(), base);
            assert_eq!(frames.first().map(|f| f.0), Some(base));
            let next = bases.get(i + 1).copied().unwrap_or(100);
            assert_eq!(frames.last().map(|f| f.0 + 1), Some(next));
            let size: u64 = frames.iter().map(|f| f.2).sum();
            assert!(size <= 500, "segment {base} has {size} bytes");
            assert!(files::index_path(dir.path(), base).exists());
        }
        assert_eq!(read_all(dir.path(), 0), records(0..100));
    }

    #[test]
    fn oversized_batch_gets_a_fresh_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path(), config(300)).unwrap();
        append(&mut log, 0..2);
        append(&mut log, 2..20);
        append(&mut log, 20..21);
        log.sync().unwrap();
        assert_eq!(segment_bases(dir.path()), vec![0, 2, 20]);
        assert_eq!(read_all(dir.path(), 0), records(0..21));
    }

    #[test]
    fn append_is_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path(), config(100_000)).unwrap();
        fill(&mut log, 10, 3);
        let size = log.size_bytes();
        log.fail_next_write();
        let owned = records(10..20);
        let batch: Vec<NewRecord<'_>> = owned
            .iter()
            .map(|r| NewRecord {
                timestamp_ms: r.timestamp_ms,
                key: &r.key,
                value: &r.value,
            })
            .collect();
        assert!(log.append(&batch).is_err());
        assert_eq!(log.next_offset(), 10);
        assert_eq!(log.size_bytes(), size);
        let file_len = fs::metadata(files::log_path(dir.path(), 0)).unwrap().len();
        assert_eq!(file_len, size, "partial write not truncated");
        // The same batch goes through afterwards, at the same offsets.
        assert_eq!(log.append(&batch).unwrap(), 10);
        log.sync().unwrap();
        assert_eq!(read_all(dir.path(), 0), records(0..20));
        drop(log);
        let (log, rec) = PartitionLog::open(dir.path(), config(100_000)).unwrap();
        assert_eq!((rec.next_offset, rec.truncated_bytes), (20, 0));
        assert_eq!(log.next_offset(), 20);
    }

    #[test]
    fn failed_sync_cuts_back_to_the_durable_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path(), config(500)).unwrap();
        fill(&mut log, 20, 3);
        let durable_segments = segment_bases(dir.path());
        // Enough to roll into new segments, then the fsync fails.
        append(&mut log, 20..40);
        append(&mut log, 40..60);
        assert!(segment_bases(dir.path()).len() > durable_segments.len());
        log.fail_next_sync();
        let err = log.sync().unwrap_err();
        assert_eq!(
            err.raw_os_error(),
            Some(rustix::io::Errno::IO.raw_os_error())
        );
        // Cut back at once: the failed records are gone from memory and disk.
        assert_eq!((log.next_offset(), log.high_watermark()), (20, 20));
        assert_eq!(segment_bases(dir.path()), durable_segments);
        assert_eq!(read_all(dir.path(), 0), records(0..20));
        // And it takes writes again, at the same offsets.
        append(&mut log, 20..25);
        log.sync().unwrap();
        assert_eq!(read_all(dir.path(), 0), records(0..25));

        // The same through syncfs, with a second log that syncs fine.
        let other_dir = tempfile::tempdir_in(dir.path().parent().unwrap()).unwrap();
        let (mut other, _) = PartitionLog::open(other_dir.path(), config(500)).unwrap();
        append(&mut log, 25..30);
        append(&mut other, 0..5);
        log.fail_next_sync();
        let mut both = [&mut log, &mut other];
        assert!(PartitionLog::sync_many(&mut both, SyncMode::Syncfs).is_err());
        assert_eq!(log.high_watermark(), 25);
        assert_eq!(other.high_watermark(), 0, "a failed syncfs proves nothing");
        append(&mut log, 25..30);
        append(&mut other, 0..5);
        let mut both = [&mut log, &mut other];
        PartitionLog::sync_many(&mut both, SyncMode::Syncfs).unwrap();
        assert_eq!(read_all(dir.path(), 0), records(0..30));
        assert_eq!(read_all(other_dir.path(), 0), records(0..5));
        drop(log);
        let (_, rec) = PartitionLog::open(dir.path(), config(500)).unwrap();
        assert_eq!((rec.next_offset, rec.truncated_bytes), (30, 0));
    }

    #[test]
    fn second_writer_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = PartitionLog::open(dir.path(), config(1000)).unwrap();
        let err = PartitionLog::open(dir.path(), config(1000)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        log.close().unwrap();
        PartitionLog::open(dir.path(), config(1000)).unwrap();
    }

    #[test]
    fn retention_by_size_deletes_oldest_closed_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(500);
        cfg.retention_bytes = Some(1200);
        let (mut log, _) = PartitionLog::open(dir.path(), cfg).unwrap();
        fill(&mut log, 100, 2);
        let before = segment_bases(dir.path());
        let deleted = log.apply_retention(SystemTime::now()).unwrap();
        let after = segment_bases(dir.path());
        assert!(deleted > 0);
        assert_eq!(after, before[deleted..]);
        assert!(log.size_bytes() <= 1200);
        // Closed segments are trimmed to their records; the active one may
        // run on into preallocated zeros.
        let (active, closed) = after.split_last().unwrap();
        let on_disk: u64 = closed
            .iter()
            .map(|&b| fs::metadata(files::log_path(dir.path(), b)).unwrap().len())
            .sum();
        assert_eq!(log.size_bytes(), on_disk + log.active.size);
        let active_len = fs::metadata(files::log_path(dir.path(), *active))
            .unwrap()
            .len();
        assert!(active_len >= log.active.size);
        assert_eq!(log.start_offset(), after[0]);
        assert!(!files::index_path(dir.path(), before[0]).exists());
        // Deleted offsets read from the start offset.
        assert_eq!(read_all(dir.path(), 0), records(after[0]..100));
        assert_eq!(log.apply_retention(SystemTime::now()).unwrap(), 0);
    }

    #[test]
    fn retention_never_deletes_the_active_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(500);
        cfg.retention_bytes = Some(0);
        cfg.retention = Some(Duration::ZERO);
        let (mut log, _) = PartitionLog::open(dir.path(), cfg).unwrap();
        fill(&mut log, 50, 2);
        let active = *segment_bases(dir.path()).last().unwrap();
        let later = SystemTime::now() + Duration::from_secs(3600);
        assert!(log.apply_retention(later).unwrap() > 0);
        assert_eq!(segment_bases(dir.path()), vec![active]);
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.start_offset(), active);
        append(&mut log, 50..51);
    }

    #[test]
    fn retention_by_age_uses_file_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(500);
        cfg.retention = Some(Duration::from_secs(3600));
        let (mut log, _) = PartitionLog::open(dir.path(), cfg.clone()).unwrap();
        fill(&mut log, 100, 2);
        let bases = segment_bases(dir.path());
        let now = SystemTime::now();
        let old = now - Duration::from_secs(7200);
        // Two old segments at the front, one in the middle (not a prefix: kept),
        // and the active one (never deleted).
        for &b in [bases[0], bases[1], bases[3], *bases.last().unwrap()].iter() {
            let f = File::options()
                .write(true)
                .open(files::log_path(dir.path(), b))
                .unwrap();
            f.set_modified(old).unwrap();
        }
        assert_eq!(log.apply_retention(now).unwrap(), 2);
        assert_eq!(segment_bases(dir.path()), bases[2..]);
        assert_eq!(log.start_offset(), bases[2]);
        // Retention survives a restart.
        log.close().unwrap();
        let (log, rec) = PartitionLog::open(dir.path(), cfg).unwrap();
        assert!(rec.clean);
        assert_eq!(log.start_offset(), bases[2]);
        assert_eq!(read_all(dir.path(), 0), records(bases[2]..100));
    }
}
