//! One segment file: reading its frames in large chunks, and the writer's
//! handle on the active segment.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use bytes::{Bytes, BytesMut};

use super::files;
use super::index::{IndexPolicy, IndexWriter};
use super::record::{self, Frame, Invalid, Record, LEN_SIZE};

/// How much a segment file grows at a time when appends reach its end.
pub(crate) const PREALLOC_CHUNK: u64 = 1 << 20;

/// Asks the kernel to start writing `len` bytes at `offset` back to disk,
/// without waiting and without touching metadata (`sync_file_range` with
/// `SYNC_FILE_RANGE_WRITE`). A hint: failures are ignored, the commit's
/// fdatasync still writes whatever is left.
///
/// The crate's one `unsafe`: rustix, through which every other system call
/// here goes, has no `sync_file_range`, so it is called through libc.
#[allow(unsafe_code)]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: plain syscall on a file descriptor `file` keeps open; no
    // memory is passed.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

/// Chunk size for sequential scans (recovery, index rebuilds).
pub(crate) const SCAN_CHUNK: usize = 1 << 20;

/// A byte range of a file read with positioned reads, so walking records
/// costs one syscall per chunk instead of one per record.
///
/// Records taken from it are slices of its buffer ([`Bytes`]), not copies.
/// A buffer is taken again for a later read once no record holds a slice
/// of it: a steady reader keeps touching the same few buffers, where a
/// fresh one per read costs the kernel's zeroing of new pages.
///
/// Only valid for bytes that do not change while it is held: callers `reset`
/// it whenever they switch files or come back later.
#[derive(Debug, Default)]
pub(crate) struct Window {
    buf: Bytes,
    start: u64,
    /// Earlier buffers, oldest first; records may still hold them.
    spare: Vec<Bytes>,
}

/// Earlier buffers kept for reuse, at most.
const SPARE_BUFFERS: usize = 8;

impl Window {
    pub(crate) fn reset(&mut self) {
        self.retire();
        self.start = 0;
    }

    fn retire(&mut self) {
        let old = std::mem::take(&mut self.buf);
        if !old.is_empty() {
            if self.spare.len() >= SPARE_BUFFERS {
                self.spare.remove(0);
            }
            self.spare.push(old);
        }
    }

    /// A buffer of `len` bytes: the newest spare nobody holds any more
    /// (the likeliest still in cache), else a new one.
    fn buffer(&mut self, len: usize) -> BytesMut {
        for i in (0..self.spare.len()).rev() {
            if self.spare[i].is_unique() {
                if let Ok(mut b) = self.spare.remove(i).try_into_mut() {
                    // Zero-fills only what the buffer did not have.
                    b.resize(len, 0);
                    return b;
                }
            }
        }
        BytesMut::zeroed(len)
    }

    /// Makes the bytes from `pos` on available: at least `need` of them
    /// unless the file ends (at `file_len`, or earlier if it shrank under
    /// us); how many there are.
    fn fill(
        &mut self,
        file: &File,
        pos: u64,
        need: usize,
        file_len: u64,
        chunk: usize,
    ) -> io::Result<usize> {
        let end = self.start + self.buf.len() as u64;
        if pos < self.start || pos.saturating_add(need as u64) > end {
            let left = file_len.saturating_sub(pos);
            let want = need
                .max(chunk)
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            self.retire();
            let mut buf = self.buffer(want);
            let mut got = 0;
            while got < want {
                match file.read_at(&mut buf[got..], pos + got as u64) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            buf.truncate(got);
            self.buf = buf.freeze();
            self.start = pos;
        }
        Ok(self.at(pos).len())
    }

    /// The bytes held from `pos` on.
    fn at(&self, pos: u64) -> &[u8] {
        let from = pos
            .checked_sub(self.start)
            .and_then(|d| usize::try_from(d).ok())
            .unwrap_or(usize::MAX);
        self.buf.get(from..).unwrap_or(&[])
    }

    /// The frame at `pos`, after [`load_frame`] brought it in.
    pub(crate) fn frame(&self, pos: u64, expected_offset: u64) -> Result<Frame<'_>, Invalid> {
        record::decode(self.at(pos), expected_offset)
    }

    /// `frame` (read from this window) as a record sharing its buffer.
    pub(crate) fn record(&self, frame: &Frame<'_>) -> Record {
        Record {
            offset: frame.offset,
            timestamp_ms: frame.timestamp_ms,
            key: self.buf.slice_ref(frame.key),
            value: self.buf.slice_ref(frame.value),
        }
    }
}

/// Brings the whole frame at `pos` into `window` (then [`Window::frame`]
/// reads it), or says why the file cannot hold one there.
pub(crate) fn load_frame(
    window: &mut Window,
    file: &File,
    file_len: u64,
    pos: u64,
    chunk: usize,
) -> io::Result<Result<(), Invalid>> {
    let available = file_len.saturating_sub(pos);
    let head = window.fill(file, pos, LEN_SIZE, file_len, chunk)?;
    if head < LEN_SIZE {
        return Ok(Err(Invalid::TornLength {
            available: head as u64,
        }));
    }
    let size = match record::frame_size(window.at(pos)) {
        Ok(size) => size,
        Err(invalid) => return Ok(Err(invalid)),
    };
    if size as u64 > available {
        return Ok(Err(Invalid::PastEnd {
            len: (size - LEN_SIZE) as u32,
            available: available - LEN_SIZE as u64,
        }));
    }
    window.fill(file, pos, size, file_len, chunk)?;
    Ok(Ok(()))
}

/// Reads and verifies the frame at `pos`, which should hold `expected_offset`.
/// `Ok(Err(_))` means the valid data ends at `pos`.
pub(crate) fn next_frame<'w>(
    window: &'w mut Window,
    file: &File,
    file_len: u64,
    pos: u64,
    expected_offset: u64,
    chunk: usize,
) -> io::Result<Result<Frame<'w>, Invalid>> {
    if let Err(invalid) = load_frame(window, file, file_len, pos, chunk)? {
        return Ok(Err(invalid));
    }
    Ok(window.frame(pos, expected_offset))
}

/// Where a scan of a segment stopped.
#[derive(Debug)]
pub(crate) struct ScanEnd {
    /// One past the last valid record.
    pub position: u64,
    pub next_offset: u64,
    /// Why it stopped before the end of the file, if it did.
    pub invalid: Option<Invalid>,
}

/// Verifies records from `pos` (which holds `offset`) to the end of the file,
/// calling `on_record(offset, position, size)` for each valid one.
pub(crate) fn scan(
    file: &File,
    file_len: u64,
    mut pos: u64,
    mut offset: u64,
    mut on_record: impl FnMut(u64, u64, u64),
) -> io::Result<ScanEnd> {
    let mut window = Window::default();
    while pos < file_len {
        match next_frame(&mut window, file, file_len, pos, offset, SCAN_CHUNK)? {
            Ok(frame) => {
                let size = frame.size as u64;
                on_record(offset, pos, size);
                pos += size;
                offset += 1;
            }
            Err(invalid) => {
                return Ok(ScanEnd {
                    position: pos,
                    next_offset: offset,
                    invalid: Some(invalid),
                })
            }
        }
    }
    Ok(ScanEnd {
        position: pos,
        next_offset: offset,
        invalid: None,
    })
}

/// A segment that no longer takes appends.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClosedSegment {
    pub base: u64,
    pub size: u64,
}

/// The segment appends go to.
#[derive(Debug)]
pub(crate) struct ActiveSegment {
    pub base: u64,
    pub log: File,
    /// Bytes of valid records; writes go here, never to the file end.
    pub size: u64,
    /// The file's length: past `size` it is preallocated zeros (see `reserve`).
    pub allocated: u64,
    pub index: IndexWriter,
}

impl ActiveSegment {
    /// Starts a fresh, empty segment at `base`, replacing leftovers of a failed roll.
    pub(crate) fn create(dir: &Path, base: u64, index_interval: u32) -> io::Result<Self> {
        let log_path = files::log_path(dir, base);
        let log = open_rw(&log_path, true)?;
        let index = IndexWriter::open(
            &files::index_path(dir, base),
            0,
            IndexPolicy::new(index_interval, 0),
        );
        match index {
            Ok(index) => Ok(ActiveSegment {
                base,
                log,
                size: 0,
                allocated: 0,
                index,
            }),
            Err(e) => {
                // A stray segment at `base` would claim offsets that keep going to the old one.
                let _ = std::fs::remove_file(&log_path);
                Err(e)
            }
        }
    }

    /// Reopens a recovered segment whose valid data is `size` bytes and whose
    /// index file holds `entries` good entries, the last at `last_entry_pos`.
    pub(crate) fn reopen(
        dir: &Path,
        base: u64,
        log: File,
        size: u64,
        entries: usize,
        last_entry_pos: Option<u64>,
        index_interval: u32,
    ) -> io::Result<Self> {
        let since_last = size - last_entry_pos.unwrap_or(0).min(size);
        let index = IndexWriter::open(
            &files::index_path(dir, base),
            entries,
            IndexPolicy::new(index_interval, since_last),
        )?;
        let allocated = log.metadata()?.len().max(size);
        Ok(ActiveSegment {
            base,
            log,
            size,
            allocated,
            index,
        })
    }

    /// Makes sure the file is at least `end` bytes long, growing it by a
    /// chunk of zeros at a time (never past `limit` unless `end` is). An
    /// append then overwrites blocks the file system has already allocated
    /// and recorded, so a commit's fdatasync writes the data and nothing
    /// else: no inode, no block bitmap, one I/O and one wait less per commit
    /// (docs/durable-path.md has the figures). Zeros, not `fallocate`: an
    /// unwritten extent is metadata again on its first write.
    pub(crate) fn reserve(&mut self, end: u64, limit: u64) -> io::Result<()> {
        if end <= self.allocated {
            return Ok(());
        }
        let from = self.allocated.max(self.size);
        let target = end.next_multiple_of(PREALLOC_CHUNK).min(limit.max(end));
        let zeros = vec![0u8; (target - from) as usize];
        match self.log.write_all_at(&zeros, from) {
            Ok(()) => {
                self.allocated = target;
                // Start writing the zeros out now, so that the next commit's
                // fdatasync does not wait for a whole chunk.
                start_writeback(&self.log, from, target - from);
                Ok(())
            }
            // Only an optimisation: on a nearly full disk the append itself
            // may still fit, so it goes ahead and decides.
            Err(_) => self.log.set_len(from),
        }
    }

    /// Cuts the file back to exactly its records (preallocated zeros, or a
    /// failed append): a closed segment's length is its size.
    pub(crate) fn trim(&mut self) -> io::Result<()> {
        self.log.set_len(self.size)?;
        self.allocated = self.size;
        Ok(())
    }

    /// Feeds one appended record to the index policy.
    pub(crate) fn observe(&mut self, offset: u64, pos: u64, size: u64) {
        // Always in range given the roll rules; the index is only a hint anyway.
        if let (Ok(rel), Ok(pos)) = (u32::try_from(offset - self.base), u32::try_from(pos)) {
            self.index.observe(rel, pos, size);
        }
    }
}

/// Whether bytes `from..to` of `file` are all zero: the preallocated tail
/// of an active segment after a crash.
pub(crate) fn is_zeros(file: &File, from: u64, to: u64) -> io::Result<bool> {
    let mut buf = vec![0u8; SCAN_CHUNK.min(to.saturating_sub(from) as usize)];
    let mut at = from;
    while at < to {
        let n = buf.len().min((to - at) as usize);
        file.read_exact_at(&mut buf[..n], at)?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

pub(crate) fn open_rw(path: &Path, truncate: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(truncate)
        .open(path)
}

/// Removes a segment and its index; returns the log bytes removed.
pub(crate) fn delete_segment(dir: &Path, base: u64) -> io::Result<u64> {
    let log = files::log_path(dir, base);
    let bytes = match std::fs::metadata(&log) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    // The log goes first: a segment exists for readers as long as its log does.
    files::remove_if_exists(&log)?;
    files::remove_if_exists(&files::index_path(dir, base))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::record::{encode, NewRecord};

    fn write_records(path: &Path, offsets: std::ops::Range<u64>, value_len: usize) -> u64 {
        let mut buf = Vec::new();
        for o in offsets {
            let value = vec![o as u8; value_len];
            let rec = NewRecord {
                timestamp_ms: o as i64,
                key: b"k",
                value: &value,
            };
            encode(&mut buf, o, &rec).unwrap();
        }
        std::fs::write(path, &buf).unwrap();
        buf.len() as u64
    }

    #[test]
    fn scan_visits_every_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let len = write_records(&path, 10..30, 100_000);
        let file = File::open(&path).unwrap();
        let mut seen = Vec::new();
        let end = scan(&file, len, 0, 10, |o, p, s| seen.push((o, p, s))).unwrap();
        assert_eq!(end.position, len);
        assert_eq!(end.next_offset, 30);
        assert!(end.invalid.is_none());
        assert_eq!(seen.len(), 20);
        assert_eq!(seen[1], (11, 100_029, 100_029));
    }

    #[test]
    fn scan_stops_at_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let len = write_records(&path, 0..3, 10);
        let file = File::open(&path).unwrap();
        for cut in [len - 1, len - 20, 2 * 39 + 2] {
            let end = scan(&file, cut, 0, 0, |_, _, _| {}).unwrap();
            assert_eq!(end.position, 2 * 39);
            assert_eq!(end.next_offset, 2);
            assert!(end.invalid.unwrap().is_truncation());
        }
    }
}
