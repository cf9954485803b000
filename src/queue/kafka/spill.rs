//! The spill log: accepted batches that could not reach Kafka yet, kept on
//! disk in `<data-dir>/spill/` until the re-sender (`resend.rs`) has
//! delivered them.
//!
//! - `spill/log/` is an embedded [`PartitionLog`] (CRC'd records, offsets,
//!   crash recovery), owned by one writer thread that group-commits like the
//!   file backend.
//! - `spill/progress` holds the offset up to which every record has been
//!   delivered, replaced atomically (write, fsync, rename, fsync dir), so a
//!   restart neither loses nor re-sends more than the last unconfirmed chunk.
//! - Once everything is delivered and nothing more is coming, the log is
//!   deleted and started afresh ([`Spill::reset`]): the disk is given back
//!   and offsets restart at 0.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use crate::data_dir::{
    spill_dir, spill_log_dir, spill_progress, SPILL_PROGRESS, SPILL_PROGRESS_TMP,
};
use crate::log::{replace_durably, LogConfig, LogReader, NewRecord, PartitionLog, RECORD_OVERHEAD};
use crate::queue::group_commit::{next_group, Took, RETRY_PAUSE};
use crate::telemetry::Telemetry;

const SEGMENT_BYTES: u64 = 16 << 20;

/// One batch on its way into the spill log.
#[derive(Debug)]
pub struct SpillItem {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub timestamp_ms: i64,
}

impl SpillItem {
    /// Bytes it takes in the log.
    pub fn size(&self) -> u64 {
        (RECORD_OVERHEAD + self.key.len() + self.value.len()) as u64
    }
}

#[derive(Debug)]
pub enum PushError {
    /// The writer's queue is full right now: try again shortly.
    Busy(SpillItem),
    /// `--spill-max-bytes` reached.
    OverLimit,
    Closed,
}

enum Cmd {
    Append(SpillItem),
    Commit(u64),
    Reset {
        expected: u64,
        reply: oneshot::Sender<bool>,
    },
    Close,
}

/// Figures the writer publishes, read by senders and the re-sender.
#[derive(Default)]
struct State {
    /// Items handed to the writer, ever; and items it has finished with
    /// (written or given up). Equal means nothing is on its way.
    enqueued: AtomicU64,
    finished: AtomicU64,
    /// Bytes handed to the writer and not yet written.
    reserved: AtomicU64,
    /// Bytes of the log on disk.
    disk: AtomicU64,
    /// One past the last record readers can see.
    end: AtomicU64,
    /// Bumped by every reset: readers must reopen and start at 0.
    generation: AtomicU64,
    /// Items neither written nor kept: write errors at shutdown.
    lost: AtomicU64,
    written: AtomicU64,
    healthy: AtomicBool,
    closing: AtomicBool,
}

pub struct Spill {
    tx: mpsc::Sender<Cmd>,
    state: Arc<State>,
    log_dir: PathBuf,
    max_bytes: u64,
    telemetry: Arc<Telemetry>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// What was in the spill log at start.
#[derive(Debug, Clone, Copy)]
pub struct Opened {
    /// Every record before this offset was delivered.
    pub committed: u64,
    /// One past the last record.
    pub end: u64,
}

impl Spill {
    /// Opens (recovering) `<data_dir>/spill` and starts its writer thread.
    pub fn open(
        data_dir: &Path,
        max_bytes: u64,
        capacity: usize,
        telemetry: Arc<Telemetry>,
    ) -> anyhow::Result<(Spill, Opened)> {
        use anyhow::Context;
        let dir = spill_dir(data_dir);
        let log_dir = spill_log_dir(data_dir);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let (log, recovery) = PartitionLog::open(&log_dir, log_config())
            .with_context(|| format!("opening the spill log {}", log_dir.display()))?;
        if let Some(cut) = &recovery.cut {
            tracing::warn!(
                cut_bytes = recovery.truncated_bytes,
                "recovery cut the spill log: {cut}"
            );
        }
        let end = log.next_offset();
        let mut committed = read_progress(&dir)?;
        if committed > end {
            // Only after a crash in the middle of a reset: nothing is left.
            committed = end;
            write_progress(&dir, committed)?;
        }
        let state = Arc::new(State {
            disk: AtomicU64::new(log.size_bytes()),
            end: AtomicU64::new(end),
            healthy: AtomicBool::new(true),
            ..State::default()
        });
        telemetry.spill_bytes.set(log.size_bytes() as i64);
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let writer = SpillWriter {
            log: Some(log),
            dir,
            log_dir: log_dir.clone(),
            rx,
            state: state.clone(),
            telemetry: telemetry.clone(),
            committed,
        };
        let handle = std::thread::Builder::new()
            .name("spill-writer".into())
            .spawn(move || writer.run())?;
        Ok((
            Spill {
                tx,
                state,
                log_dir,
                max_bytes,
                telemetry,
                writer: Mutex::new(Some(handle)),
            },
            Opened { committed, end },
        ))
    }

    /// A batch a request wants spilled: refused past `--spill-max-bytes`.
    pub fn try_push(&self, item: SpillItem) -> Result<(), PushError> {
        let size = item.size();
        let used =
            self.state.disk.load(Ordering::Acquire) + self.state.reserved.load(Ordering::Acquire);
        if used + size > self.max_bytes {
            return Err(PushError::OverLimit);
        }
        self.reserve(size);
        match self.tx.try_send(Cmd::Append(item)) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.unreserve(size);
                match e {
                    mpsc::error::TrySendError::Full(Cmd::Append(item)) => {
                        Err(PushError::Busy(item))
                    }
                    _ => Err(PushError::Closed),
                }
            }
        }
    }

    /// A batch that was already answered 200 and failed to reach Kafka:
    /// kept whatever the size limit says (giving it up would lose it).
    /// False if the writer is gone (shutdown ran out of time).
    pub async fn push(&self, item: SpillItem) -> bool {
        let size = item.size();
        self.reserve(size);
        let sent = self.tx.send(Cmd::Append(item)).await.is_ok();
        if !sent {
            self.unreserve(size);
        }
        sent
    }

    fn reserve(&self, size: u64) {
        self.state.enqueued.fetch_add(1, Ordering::AcqRel);
        self.state.reserved.fetch_add(size, Ordering::AcqRel);
        self.telemetry.spill_bytes.add(size as i64);
    }

    fn unreserve(&self, size: u64) {
        self.state.enqueued.fetch_sub(1, Ordering::AcqRel);
        self.state.reserved.fetch_sub(size, Ordering::AcqRel);
        self.telemetry.spill_bytes.sub(size as i64);
    }

    /// Records durably that every record before `next` was delivered.
    pub async fn commit(&self, next: u64) {
        let _ = self.tx.send(Cmd::Commit(next)).await;
    }

    /// Empties the log if it ends at `expected` and everything up to there
    /// is committed; false if something was appended meanwhile.
    pub async fn reset(&self, expected: u64) -> bool {
        let (reply, answer) = oneshot::channel();
        if self.tx.send(Cmd::Reset { expected, reply }).await.is_err() {
            return false;
        }
        answer.await.unwrap_or(false)
    }

    /// Nothing is on its way to the log and it ends at `committed`.
    pub fn drained(&self, committed: u64) -> bool {
        self.state.enqueued.load(Ordering::Acquire) == self.state.finished.load(Ordering::Acquire)
            && self.state.end.load(Ordering::Acquire) == committed
    }

    /// One past the last record a reader can see.
    pub fn end(&self) -> u64 {
        self.state.end.load(Ordering::Acquire)
    }

    pub fn generation(&self) -> u64 {
        self.state.generation.load(Ordering::Acquire)
    }

    pub fn reader(&self) -> io::Result<LogReader> {
        LogReader::open(&self.log_dir)
    }

    /// The last write worked (or nothing failed yet).
    pub fn healthy(&self) -> bool {
        self.state.healthy.load(Ordering::Acquire)
    }

    /// True when a request-sized batch would be refused for size.
    pub fn full(&self) -> bool {
        self.state.disk.load(Ordering::Acquire) + self.state.reserved.load(Ordering::Acquire)
            >= self.max_bytes
    }

    /// Batches written to the spill log by this process.
    pub fn written(&self) -> u64 {
        self.state.written.load(Ordering::Acquire)
    }

    /// Writes what is queued, closes the log; returns the batches lost
    /// (write errors, or still queued at the deadline).
    pub async fn close(&self, deadline: tokio::time::Instant) -> u64 {
        self.state.closing.store(true, Ordering::Release);
        let _ = tokio::time::timeout_at(deadline, self.tx.send(Cmd::Close)).await;
        let handle = crate::sync::lock(&self.writer).take();
        if let Some(handle) = handle {
            let joined = tokio::task::spawn_blocking(move || handle.join());
            if tokio::time::timeout_at(deadline, joined).await.is_err() {
                tracing::error!("the spill writer did not finish in time");
            }
        }
        let s = &self.state;
        let unfinished = s
            .enqueued
            .load(Ordering::Acquire)
            .saturating_sub(s.finished.load(Ordering::Acquire));
        s.lost.load(Ordering::Acquire) + unfinished
    }
}

fn log_config() -> LogConfig {
    LogConfig {
        segment_bytes: SEGMENT_BYTES,
        ..LogConfig::default()
    }
}

fn read_progress(dir: &Path) -> io::Result<u64> {
    match fs::read_to_string(spill_progress(dir)) {
        Ok(s) => s.trim().parse().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: bad progress file", dir.display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

fn write_progress(dir: &Path, next: u64) -> io::Result<()> {
    replace_durably(
        dir,
        SPILL_PROGRESS,
        SPILL_PROGRESS_TMP,
        next.to_string().as_bytes(),
    )
}

struct SpillWriter {
    log: Option<PartitionLog>,
    dir: PathBuf,
    log_dir: PathBuf,
    rx: mpsc::Receiver<Cmd>,
    state: Arc<State>,
    telemetry: Arc<Telemetry>,
    committed: u64,
}

impl SpillWriter {
    fn run(mut self) {
        let mut group: Vec<SpillItem> = Vec::with_capacity(64);
        loop {
            // Commit, reset and close act on what was appended before them.
            let mut after = None;
            let taken = next_group(&mut self.rx, |_, cmd| match cmd {
                Cmd::Append(item) => {
                    let size = item.value.len();
                    group.push(item);
                    Took::Batch(size)
                }
                other => {
                    after = Some(other);
                    Took::Last
                }
            });
            if taken.is_none() {
                break;
            }
            if !group.is_empty() {
                self.write(&mut group);
            }
            match after {
                Some(Cmd::Commit(n)) => self.commit(n),
                Some(Cmd::Reset { expected, reply }) => {
                    let _ = reply.send(self.reset(expected));
                }
                // Whatever is already queued is still written.
                Some(Cmd::Close) => self.rx.close(),
                Some(Cmd::Append(_)) | None => {}
            }
        }
        if let Some(log) = self.log.take() {
            if let Err(e) = log.close() {
                tracing::error!("closing the spill log: {e}");
            }
        }
    }

    fn write(&mut self, group: &mut Vec<SpillItem>) {
        let n = group.len() as u64;
        let bytes: u64 = group.iter().map(SpillItem::size).sum();
        loop {
            match self.append(group) {
                Ok(()) => {
                    self.state.healthy.store(true, Ordering::Release);
                    self.state.written.fetch_add(n, Ordering::AcqRel);
                    self.telemetry.spilled.inc_by(n);
                    break;
                }
                Err(e) => {
                    self.state.healthy.store(false, Ordering::Release);
                    tracing::error!(batches = n, "writing the spill log failed: {e}");
                    if self.state.closing.load(Ordering::Acquire) {
                        tracing::error!(batches = n, "giving up on them at shutdown");
                        self.state.lost.fetch_add(n, Ordering::AcqRel);
                        break;
                    }
                    std::thread::sleep(RETRY_PAUSE);
                    // A failed fsync leaves the log refusing writes: reopen
                    // it, which recovers it like after a crash.
                    self.log = None;
                    self.reopen();
                }
            }
        }
        group.clear();
        self.state.reserved.fetch_sub(bytes, Ordering::AcqRel);
        self.publish();
        self.telemetry.spill_bytes.sub(bytes as i64);
        self.state.finished.fetch_add(n, Ordering::AcqRel);
    }

    fn append(&mut self, group: &[SpillItem]) -> io::Result<()> {
        let Some(log) = self.log.as_mut() else {
            return Err(io::Error::other("the spill log is not open"));
        };
        let records: Vec<NewRecord<'_>> = group
            .iter()
            .map(|i| NewRecord {
                timestamp_ms: i.timestamp_ms,
                key: &i.key,
                value: &i.value,
            })
            .collect();
        log.append(&records)?;
        log.sync()
    }

    /// Makes the log's size and end visible to the others.
    fn publish(&self) {
        let (disk, end) = self
            .log
            .as_ref()
            .map_or((0, 0), |l| (l.size_bytes(), l.high_watermark()));
        let before = self.state.disk.swap(disk, Ordering::AcqRel);
        self.telemetry.spill_bytes.add(disk as i64 - before as i64);
        self.state.end.store(end, Ordering::Release);
    }

    fn reopen(&mut self) {
        match PartitionLog::open(&self.log_dir, log_config()) {
            Ok((log, _)) => self.log = Some(log),
            Err(e) => tracing::error!("reopening the spill log: {e}"),
        }
    }

    fn commit(&mut self, next: u64) {
        if next <= self.committed {
            return;
        }
        match write_progress(&self.dir, next) {
            Ok(()) => self.committed = next,
            Err(e) => tracing::error!("recording spill progress: {e}"),
        }
    }

    fn reset(&mut self, expected: u64) -> bool {
        let next = self.log.as_ref().map(PartitionLog::next_offset);
        if next != Some(expected) || self.committed != expected {
            return false;
        }
        if let Some(log) = self.log.take() {
            if let Err(e) = log.close() {
                tracing::warn!("closing the spill log for its reset: {e}");
            }
        }
        // Delete first, then reset the progress: a crash in between leaves
        // progress past the end of an empty log, which open() clamps.
        if let Err(e) = fs::remove_dir_all(&self.log_dir) {
            tracing::error!("deleting the drained spill log: {e}");
        }
        match write_progress(&self.dir, 0) {
            Ok(()) => self.committed = 0,
            Err(e) => tracing::error!("resetting spill progress: {e}"),
        }
        self.reopen();
        self.state.generation.fetch_add(1, Ordering::AcqRel);
        self.publish();
        tracing::info!(batches = expected, "spill log drained and emptied");
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn item(v: &str) -> SpillItem {
        SpillItem {
            key: b"k".to_vec(),
            value: v.as_bytes().to_vec(),
            timestamp_ms: 1,
        }
    }

    async fn wait_end(s: &Spill, end: u64) {
        for _ in 0..200 {
            if s.end() == end {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("spill log did not reach {end}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spills_commits_resets_and_survives_restart() {
        let dir = tempfile::tempdir().unwrap();
        let t = Arc::new(Telemetry::new().unwrap());
        let (s, opened) = Spill::open(dir.path(), 1 << 20, 16, t.clone()).unwrap();
        assert_eq!((opened.committed, opened.end), (0, 0));
        s.try_push(item("a")).unwrap();
        assert!(s.push(item("b")).await);
        wait_end(&s, 2).await;
        let mut r = s.reader().unwrap();
        let recs = r.read(0, 1 << 20).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].value[..], b"b"[..]);
        s.commit(1).await;
        // Not everything committed: no reset.
        assert!(!s.reset(2).await);
        let end = tokio::time::Instant::now() + Duration::from_secs(5);
        assert_eq!(s.close(end).await, 0);
        assert_eq!(t.spilled.get(), 2);

        // Restart: record 1 is still to be re-sent.
        let (s, opened) = Spill::open(dir.path(), 1 << 20, 16, t.clone()).unwrap();
        assert_eq!((opened.committed, opened.end), (1, 2));
        s.commit(2).await;
        assert!(s.drained(2));
        assert!(s.reset(2).await);
        assert_eq!(s.generation(), 1);
        assert_eq!(s.end(), 0);
        s.try_push(item("c")).unwrap();
        wait_end(&s, 1).await;
        let recs = s.reader().unwrap().read(0, 1 << 20).unwrap();
        assert_eq!(recs[0].value[..], b"c"[..]);
        s.close(tokio::time::Instant::now() + Duration::from_secs(5))
            .await;
        let (_s, opened) = Spill::open(dir.path(), 1 << 20, 16, t).unwrap();
        assert_eq!((opened.committed, opened.end), (0, 1));
    }

    #[tokio::test]
    async fn refuses_past_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let t = Arc::new(Telemetry::new().unwrap());
        let (s, _) = Spill::open(dir.path(), 100, 16, t).unwrap();
        assert!(s.try_push(item("small")).is_ok());
        assert!(matches!(
            s.try_push(item(&"x".repeat(100))),
            Err(PushError::OverLimit)
        ));
        s.close(tokio::time::Instant::now() + Duration::from_secs(5))
            .await;
    }
}
