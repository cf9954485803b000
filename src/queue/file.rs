//! The embedded-log backend: one writer thread for all partitions, group commit.
//!
//! A request hands its batch to the writer through a bounded channel. The
//! writer takes everything waiting (up to a limit), appends each partition's
//! share with one `write`, fsyncs every partition it touched and then answers
//! every request in the group. While it fsyncs, new batches pile up for the
//! next group: the busier the server, the more requests share one fsync.
//!
//! Why one thread and not one per partition: each fsync ends in a device
//! cache flush, so a group that touched several partitions is made durable
//! with one `syncfs` (`PartitionLog::sync_many`); and one thread saves a
//! wake-up per partition (measured: a thread per partition spent a third of
//! its CPU switching threads).

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::group_commit::{next_group, next_group_paced, Took, MAX_GROUP, RETRY_PAUSE};
use super::{AckMode, BoxFuture, Message, Queue, QueueError, Receipt, ShutdownReport};
use crate::data_dir;
use crate::log::{LogConfig, NewRecord, PartitionLog, SyncMode};
use crate::record::epoch::SeriesIds;
use crate::record::Payload;
use crate::telemetry::Telemetry;

/// In accepted mode nobody waits for the fsync, so one covers this much
/// time of writes: readers see a batch at most this much later, and the
/// writer spends its CPU on batches instead of on device flushes.
const ACCEPTED_SYNC_INTERVAL: Duration = Duration::from_millis(5);

/// In accepted mode the writer looks for new batches this often rather
/// than being woken by each (a thread wake-up per request, measured as the
/// largest single cost of accepted mode on 2 cores).
const ACCEPTED_WRITE_PACE: Duration = Duration::from_millis(1);

/// A partition that hit a full disk counts as ready again once this much is free.
const READY_FREE_BYTES: u64 = 1 << 20;

/// Health of one partition's writer, for `/ready`.
const HEALTHY: u8 = 0;
const FAILED: u8 = 1;
const DISK_FULL: u8 = 2;

#[derive(Clone, Debug)]
pub struct FileQueueConfig {
    pub data_dir: PathBuf,
    pub partitions: u32,
    pub ack: AckMode,
    pub log: LogConfig,
    /// Bytes of batches that may wait in memory before senders have to wait.
    pub queue_bytes: usize,
    pub sync: SyncMode,
    /// How long a sender waits for room before the request gets a 503.
    pub enqueue_timeout: Duration,
    pub retention_check: Duration,
    /// Records are cut under this many bytes (before compression).
    pub max_record_bytes: usize,
}

struct Pending {
    partition: u32,
    key: String,
    /// Assembled into its record by the writer (see `LogWriter::write`).
    value: Payload,
    timestamp_ms: i64,
    enqueued: Instant,
    /// This batch's share of the memory budget, given back when it is written.
    _budget: OwnedSemaphorePermit,
    /// `None` in accepted mode: nobody waits for the answer.
    reply: Option<oneshot::Sender<Result<u64, QueueError>>>,
}

enum Command {
    Append(Pending),
    Retention,
    /// Accepted mode: make what was written durable now (sent by a ticker).
    Sync,
    Close,
}

/// State a writer shares with the queue.
struct WriterState {
    telemetry: Arc<Telemetry>,
    closing: AtomicBool,
    /// Per partition: HEALTHY, or how its last write failed.
    health: Vec<AtomicU8>,
    lost: AtomicU64,
    /// Accepted mode: batches are written but not yet fsync'd.
    unsynced: AtomicBool,
}

pub struct FileQueue {
    sender: mpsc::Sender<Command>,
    /// Bytes of batches in memory, waiting or being written: bounds memory
    /// by size, whatever the batch sizes.
    budget: Arc<Semaphore>,
    budget_max: usize,
    data_dir: PathBuf,
    partitions: u32,
    ack: AckMode,
    enqueue_timeout: Duration,
    max_record_bytes: usize,
    shared: Arc<WriterState>,
    writer: Mutex<Option<JoinHandle<()>>>,
    // Held for the life of the queue: one server per data directory.
    _lock: File,
}

impl FileQueue {
    /// Opens (recovering) every partition log and starts the writers.
    pub fn open(config: FileQueueConfig, telemetry: Arc<Telemetry>) -> anyhow::Result<FileQueue> {
        use anyhow::Context;
        let dir = &config.data_dir;
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let lock = File::create(data_dir::serve_lock(dir))?;
        if lock.try_lock().is_err() {
            anyhow::bail!("{} is in use by another metricstream server", dir.display());
        }
        match data_dir::stored_partitions(dir)? {
            Some(n) if n != config.partitions => anyhow::bail!(
                "{} holds {n} partitions but --partitions is {}; changing it would move \
                 clients to other partitions (use a new --data-dir)",
                dir.display(),
                config.partitions
            ),
            Some(_) => {}
            None => data_dir::store_partitions(dir, config.partitions)?,
        }

        let shared = Arc::new(WriterState {
            telemetry,
            closing: AtomicBool::new(false),
            health: (0..config.partitions)
                .map(|_| AtomicU8::new(HEALTHY))
                .collect(),
            lost: AtomicU64::new(0),
            unsynced: AtomicBool::new(false),
        });
        let mut logs = Vec::new();
        for p in 0..config.partitions {
            let pdir = data_dir::partition_dir(dir, p);
            let (log, recovery) = PartitionLog::open(&pdir, config.log.clone())
                .with_context(|| format!("opening {}", pdir.display()))?;
            if let Some(cut) = &recovery.cut {
                tracing::warn!(
                    partition = p,
                    kept_offsets = recovery.next_offset,
                    cut_bytes = recovery.truncated_bytes,
                    "recovery cut the log: {cut}"
                );
            }
            tracing::info!(
                partition = p,
                segments = recovery.segments,
                next_offset = recovery.next_offset,
                clean = recovery.clean,
                "partition log opened"
            );
            logs.push(log);
        }
        // The byte budget is the real bound; the channel only needs room
        // for as many batches as the budget can hold.
        let budget_max = config.queue_bytes.clamp(1 << 20, u32::MAX as usize);
        let (tx, rx) = mpsc::channel(MAX_GROUP * 8);
        let writer = LogWriter {
            sync: config.sync,
            ack: config.ack,
            last_sync: Instant::now(),
            groups: logs.iter().map(|_| Vec::new()).collect(),
            written: logs.iter().map(|_| (0, Vec::new())).collect(),
            ids: logs.iter().map(|_| SeriesIds::new()).collect(),
            logs,
            rx,
            shared: shared.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || {
                raise_priority();
                writer.run()
            })?;
        let queue = FileQueue {
            sender: tx,
            budget: Arc::new(Semaphore::new(budget_max)),
            budget_max,
            data_dir: config.data_dir.clone(),
            partitions: config.partitions,
            ack: config.ack,
            enqueue_timeout: config.enqueue_timeout,
            max_record_bytes: config.max_record_bytes,
            shared,
            writer: Mutex::new(Some(handle)),
            _lock: lock,
        };
        queue.start_ticker(config.retention_check, || Command::Retention, |_| true);
        if config.ack == AckMode::Accepted {
            // Accepted mode syncs at most every ACCEPTED_SYNC_INTERVAL; this
            // wakes the writer for the last sync when no new batch comes.
            queue.start_ticker(
                ACCEPTED_SYNC_INTERVAL,
                || Command::Sync,
                |shared| shared.unsynced.load(Ordering::Acquire),
            );
        }
        Ok(queue)
    }

    /// Sends `cmd()` to the writer every `every` while `due` says so. A
    /// full channel means a busy writer: that round is skipped.
    fn start_ticker(
        &self,
        every: Duration,
        cmd: fn() -> Command,
        due: impl Fn(&WriterState) -> bool + Send + 'static,
    ) {
        let tx = self.sender.clone();
        let shared = self.shared.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    if !due(&shared) {
                        continue;
                    }
                    if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(cmd()) {
                        return;
                    }
                }
            });
        }
    }
}

impl Queue for FileQueue {
    fn partitions(&self) -> u32 {
        self.partitions
    }

    fn max_record_bytes(&self) -> usize {
        self.max_record_bytes
    }

    fn send(&self, msg: Message) -> BoxFuture<'_, Result<Receipt, QueueError>> {
        Box::pin(async move {
            if self.shared.closing.load(Ordering::Acquire) {
                return Err(QueueError::Closed);
            }
            let partition = msg.partition;
            QueueError::check_partition(partition, self.partitions)?;
            let (reply, answer) = match self.ack {
                AckMode::Durable => {
                    let (tx, rx) = oneshot::channel();
                    (Some(tx), Some(rx))
                }
                AckMode::Accepted => (None, None),
            };
            // A batch bigger than the whole budget waits for all of it.
            let cost = msg.value.len().clamp(1, self.budget_max) as u32;
            // Room is usually there: take it without arming a timer.
            let budget = match self.budget.clone().try_acquire_many_owned(cost) {
                Ok(permit) => permit,
                Err(_) => {
                    let acquire = self.budget.clone().acquire_many_owned(cost);
                    bounded_wait(self.enqueue_timeout, acquire).await?
                }
            };
            let cmd = Command::Append(Pending {
                _budget: budget,
                partition,
                key: msg.key,
                value: msg.value,
                timestamp_ms: msg.timestamp_ms,
                enqueued: Instant::now(),
                reply,
            });
            let depth = &self.shared.telemetry.queue_depth;
            depth.inc();
            let sent = match self.sender.try_send(cmd) {
                Ok(()) => Ok(()),
                Err(mpsc::error::TrySendError::Full(cmd)) => {
                    bounded_wait(self.enqueue_timeout, self.sender.send(cmd)).await
                }
                Err(mpsc::error::TrySendError::Closed(_)) => Err(QueueError::Closed),
            };
            if let Err(e) = sent {
                depth.dec();
                return Err(e);
            }
            match answer {
                None => Ok(Receipt {
                    partition,
                    offset: None,
                }),
                Some(rx) => match rx.await {
                    Ok(Ok(offset)) => Ok(Receipt {
                        partition,
                        offset: Some(offset),
                    }),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(QueueError::Unavailable("the log writer stopped".into())),
                },
            }
        })
    }

    /// Not ready while a partition's writes fail; after a full disk, ready
    /// again as soon as space is back (the next write decides), so a load
    /// balancer that stopped sending sends again.
    fn ready(&self) -> bool {
        if self.shared.closing.load(Ordering::Acquire) {
            return false;
        }
        let mut full = false;
        for h in &self.shared.health {
            match h.load(Ordering::Acquire) {
                HEALTHY => {}
                DISK_FULL => full = true,
                _ => return false,
            }
        }
        !full || free_bytes(&self.data_dir).is_some_and(|b| b >= READY_FREE_BYTES)
    }

    fn shutdown(&self, timeout: Duration) -> BoxFuture<'_, ShutdownReport> {
        Box::pin(async move {
            self.shared.closing.store(true, Ordering::Release);
            let deadline = tokio::time::Instant::now() + timeout;
            // Close queues behind everything already accepted (FIFO).
            let _ = tokio::time::timeout_at(deadline, self.sender.send(Command::Close)).await;
            let handle = crate::sync::lock(&self.writer).take();
            let joined = tokio::task::spawn_blocking(move || {
                if let Some(h) = handle {
                    let _ = h.join();
                }
            });
            let t = &self.shared.telemetry;
            let finished = tokio::time::timeout_at(deadline, joined).await.is_ok();
            // Read once the writer is done: it counts what it gives up on
            // while it shuts down.
            let mut lost = self.shared.lost.load(Ordering::Acquire);
            if !finished {
                // Writers still busy at the deadline: whatever waits is not durable.
                tracing::error!("the log writer did not finish within {timeout:?}");
                lost += t.queue_depth.get().max(0) as u64;
            }
            ShutdownReport {
                delivered: t.delivered.get(),
                spilled: 0,
                lost,
            }
        })
    }
}

/// Waits at most `limit` for room (memory budget or channel): running out
/// of time means the queue is full, an error means it was closed.
async fn bounded_wait<T, E>(
    limit: Duration,
    wait: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, QueueError> {
    match tokio::time::timeout(limit, wait).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(_)) => Err(QueueError::Closed),
        Err(_) => Err(QueueError::Full),
    }
}

/// The writer: owns every partition's log, runs on its own thread because
/// file writes and fsync block.
struct LogWriter {
    sync: SyncMode,
    ack: AckMode,
    last_sync: Instant,
    logs: Vec<PartitionLog>,
    /// The current group, by partition (kept to reuse the allocations).
    groups: Vec<Vec<Pending>>,
    /// By partition: batches written but not yet durable, and the offset of
    /// the first. In durable mode only within one commit; in accepted mode
    /// until the next sync, so that a failed sync can write them again.
    written: Vec<(u64, Vec<Pending>)>,
    /// By partition: the series ids of its epoch (see `record::epoch`).
    ids: Vec<SeriesIds>,
    rx: mpsc::Receiver<Command>,
    shared: Arc<WriterState>,
}

impl LogWriter {
    fn run(mut self) {
        // Until the channel is closed (by Close) and empty: a batch queued
        // behind Close, past a full group, is still written, not dropped.
        loop {
            let mut retention = false;
            let mut sync_now = false;
            let groups = &mut self.groups;
            let take = |rx: &mut mpsc::Receiver<Command>, cmd| match cmd {
                Command::Append(p) => {
                    let size = p.value.len();
                    if let Some(g) = groups.get_mut(p.partition as usize) {
                        g.push(p);
                    }
                    Took::Batch(size)
                }
                Command::Retention => {
                    retention = true;
                    Took::Other
                }
                Command::Sync => {
                    sync_now = true;
                    Took::Other
                }
                Command::Close => {
                    sync_now = true;
                    // Nothing new can be sent once the receiver is
                    // closed; what is already queued still gets written.
                    rx.close();
                    Took::Other
                }
            };
            let taken = match self.ack {
                AckMode::Durable => next_group(&mut self.rx, take),
                AckMode::Accepted => next_group_paced(&mut self.rx, ACCEPTED_WRITE_PACE, take),
            };
            let Some(count) = taken else {
                break;
            };
            let sync_now = sync_now
                || self.ack == AckMode::Durable
                || self.last_sync.elapsed() >= ACCEPTED_SYNC_INTERVAL;
            if count > 0 || sync_now {
                self.commit(sync_now);
            }
            if retention {
                self.retain();
            }
        }
        // Whatever accepted mode wrote since its last sync.
        self.commit(true);
        for (partition, log) in self.logs.into_iter().enumerate() {
            match log.close() {
                Ok(()) => tracing::info!(partition, "partition log closed cleanly"),
                Err(e) => tracing::error!(partition, "closing partition log: {e}"),
            }
        }
    }

    /// Writes every partition's share of the group; then, if `sync`, makes
    /// every partition written durable and answers. Durable-mode senders get
    /// an error they can retry; accepted-mode batches were already answered
    /// 200, so they are written again here until durable or shut down.
    fn commit(&mut self, sync: bool) {
        let t = self.shared.telemetry.clone();
        let idle = |g: &Vec<Pending>| g.is_empty();
        if self.groups.iter().all(idle) && self.written.iter().all(|(_, w)| idle(w)) {
            return;
        }
        loop {
            let started = Instant::now();
            self.write();
            let written_at = Instant::now();
            // A write that failed leaves its batches in `groups`: go on to
            // the sync and the retry below, as in durable mode.
            if !sync && self.groups.iter().all(idle) {
                t.commit_write.observe((written_at - started).as_secs_f64());
                let unsynced = self.written.iter().any(|(_, w)| !w.is_empty());
                self.shared.unsynced.store(unsynced, Ordering::Release);
                return;
            }
            self.make_durable();
            let synced_at = Instant::now();
            self.publish();
            t.commit_write.observe((written_at - started).as_secs_f64());
            t.commit_sync
                .observe((synced_at - written_at).as_secs_f64());
            t.commit_publish.observe(synced_at.elapsed().as_secs_f64());
            let left: usize = self.groups.iter().map(Vec::len).sum();
            if left == 0 {
                return;
            }
            if self.shared.closing.load(Ordering::Acquire) {
                tracing::error!(lost = left, "giving up on accepted batches at shutdown");
                self.shared.lost.fetch_add(left as u64, Ordering::AcqRel);
                t.failed.inc_by(left as u64);
                t.queue_depth.sub(left as i64);
                self.groups.iter_mut().for_each(Vec::clear);
                return;
            }
            std::thread::sleep(RETRY_PAUSE);
        }
    }

    /// Appends each partition's group with one write; what was written moves
    /// to `written`.
    fn write(&mut self) {
        for (p, group) in self.groups.iter_mut().enumerate() {
            if group.is_empty() {
                continue;
            }
            let log = &mut self.logs[p];
            let ids = &mut self.ids[p];
            let assembled = match assemble(log, ids, group) {
                Ok(values) => values,
                Err(e) => {
                    // Not a write error: the batches cannot be stored at all.
                    let e = io::Error::new(io::ErrorKind::InvalidData, e.to_string());
                    fail_all(&self.shared, p, group, &e);
                    continue;
                }
            };
            let records: Vec<NewRecord<'_>> = group
                .iter()
                .zip(&assembled)
                .map(|(b, value)| NewRecord {
                    timestamp_ms: b.timestamp_ms,
                    key: b.key.as_bytes(),
                    value: value.as_deref().unwrap_or_else(|| ready(&b.value)),
                })
                .collect();
            match log.append(&records) {
                Ok(first) => {
                    let (start, written) = &mut self.written[p];
                    if written.is_empty() {
                        *start = first;
                    }
                    written.append(group);
                }
                Err(e) => {
                    // Ids the failed records defined are not in the log.
                    ids.reset();
                    fail(&self.shared, p, group, &e)
                }
            }
        }
    }

    /// Syncs every partition with writes; a log whose sync failed has cut
    /// them back off: only what the high watermark covers is durable, the
    /// rest fails (durable mode) or goes back to be written again (accepted).
    fn make_durable(&mut self) {
        let mut logs: Vec<&mut PartitionLog> = self
            .logs
            .iter_mut()
            .zip(&self.written)
            .filter(|(_, (_, w))| !w.is_empty())
            .map(|(log, _)| log)
            .collect();
        if logs.is_empty() {
            return;
        }
        let sync_err = PartitionLog::sync_many(&mut logs, self.sync).err();
        self.last_sync = Instant::now();
        self.shared.unsynced.store(false, Ordering::Release);
        for (p, (first, written)) in self.written.iter_mut().enumerate() {
            if written.is_empty() || self.logs[p].high_watermark() >= *first + written.len() as u64
            {
                continue;
            }
            // The log cut them off: so are the ids they defined.
            self.ids[p].reset();
            let e = sync_err
                .as_ref()
                .map_or_else(|| io::Error::other("not made durable"), clone_error);
            fail(&self.shared, p, written, &e);
            // Accepted batches go back before anything newer, in order.
            written.append(&mut self.groups[p]);
            std::mem::swap(written, &mut self.groups[p]);
        }
    }

    /// Answers every batch made durable.
    fn publish(&mut self) {
        let t = &self.shared.telemetry;
        if self.written.iter().any(|(_, w)| !w.is_empty()) {
            t.commits.inc();
        }
        for (p, (first, written)) in self.written.iter_mut().enumerate() {
            if written.is_empty() {
                continue;
            }
            set_health(&self.shared, p, HEALTHY);
            t.delivered.inc_by(written.len() as u64);
            t.queue_depth.sub(written.len() as i64);
            for (i, b) in written.drain(..).enumerate() {
                t.queue_latency.observe(b.enqueued.elapsed().as_secs_f64());
                if let Some(reply) = b.reply {
                    let _ = reply.send(Ok(*first + i as u64));
                }
            }
        }
    }

    fn retain(&mut self) {
        for (partition, log) in self.logs.iter_mut().enumerate() {
            match log.apply_retention(SystemTime::now()) {
                Ok(0) => {}
                Ok(n) => tracing::info!(partition, segments = n, "retention deleted segments"),
                Err(e) => tracing::warn!(partition, "retention failed: {e}"),
            }
        }
    }
}

/// The record bytes of a group about to be appended to `log`, where the
/// writer makes them (compact records: their series table); `None` for a
/// batch whose bytes are ready. A group that will start a new segment
/// starts a new epoch of series ids, so no record refers to another
/// segment (see `record::epoch`).
fn assemble(
    log: &PartitionLog,
    ids: &mut SeriesIds,
    group: &[Pending],
) -> Result<Vec<Option<Vec<u8>>>, crate::record::RecordError> {
    let make = |ids: &mut SeriesIds| -> Result<Vec<Option<Vec<u8>>>, _> {
        let first = log.next_offset();
        group
            .iter()
            .enumerate()
            .map(|(i, b)| match &b.value {
                Payload::Ready(_) => Ok(None),
                Payload::Compact(enc) => ids.assemble(first + i as u64, enc).map(Some),
            })
            .collect()
    };
    let values = make(ids)?;
    let bytes: u64 = group
        .iter()
        .zip(&values)
        .map(|(b, v)| {
            let len = v.as_ref().map_or_else(|| ready(&b.value).len(), Vec::len);
            (crate::log::RECORD_OVERHEAD + b.key.len() + len) as u64
        })
        .sum();
    if ids.is_new() || !log.would_roll(bytes, group.len() as u64) {
        return Ok(values);
    }
    ids.reset();
    make(ids)
}

fn ready(p: &Payload) -> &[u8] {
    match p {
        Payload::Ready(b) => b,
        Payload::Compact(_) => &[],
    }
}

/// Batches that can never be written: each gets the error (durable mode)
/// or is counted lost (accepted mode, already answered).
fn fail_all(shared: &WriterState, partition: usize, group: &mut Vec<Pending>, e: &io::Error) {
    let t = &shared.telemetry;
    let n = group.len() as u64;
    tracing::error!(partition, batches = n, "cannot make the records: {e}");
    t.failed.inc_by(n);
    t.queue_depth.sub(n as i64);
    for b in group.drain(..) {
        match b.reply {
            Some(reply) => {
                let _ = reply.send(Err(QueueError::Unavailable(e.to_string())));
            }
            None => {
                shared.lost.fetch_add(1, Ordering::AcqRel);
            }
        }
    }
}

/// A partition's write failed: durable-mode senders get the error now;
/// accepted-mode batches stay in `group` for the next try.
fn fail(shared: &WriterState, partition: usize, group: &mut Vec<Pending>, e: &io::Error) {
    let full = matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    );
    set_health(shared, partition, if full { DISK_FULL } else { FAILED });
    tracing::error!(partition, "log write failed: {e}");
    let why = if full {
        format!("the disk is full (ENOSPC/EDQUOT): partition {partition} could not be written, nothing was stored ({e})")
    } else {
        format!("writing the log failed, nothing was stored: {e}")
    };
    let before = group.len();
    group.retain_mut(|b| match b.reply.take() {
        Some(reply) => {
            let _ = reply.send(Err(QueueError::Unavailable(why.clone())));
            false
        }
        None => true,
    });
    let answered = (before - group.len()) as u64;
    shared.telemetry.failed.inc_by(answered);
    shared.telemetry.queue_depth.sub(answered as i64);
}

fn set_health(shared: &WriterState, partition: usize, health: u8) {
    if let Some(h) = shared.health.get(partition) {
        h.store(health, Ordering::Release);
    }
}

/// io::Error is not Clone; kind and message are what `fail` uses.
fn clone_error(e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), e.to_string())
}

/// Every durable request waits for the one writer thread, so a writer that
/// waits for a core stalls them all: on 2 busy cores it spent as long in the
/// run queue as running (~100 µs per commit), and the open-loop p99 at half
/// load was 15–60 ms; at nice -10 it was 6–10 ms (docs/durable-path.md).
/// Needs root or CAP_SYS_NICE; without, the writer runs at normal priority.
const WRITER_NICE: i32 = -10;

fn raise_priority() {
    let me = rustix::thread::gettid();
    match rustix::process::setpriority_process(Some(me), WRITER_NICE) {
        Ok(()) => tracing::debug!(nice = WRITER_NICE, "log writer priority raised"),
        Err(e) => tracing::info!(
            "log writer at normal priority: raising it (nice {WRITER_NICE}) needs CAP_SYS_NICE ({e})"
        ),
    }
}

/// Bytes an unprivileged writer may still use on the file system of `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    let st = rustix::fs::statvfs(dir).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

#[cfg(test)]
mod tests;
