//! The embedded-log backend: one writer thread per partition, group commit.
//!
//! A request hands its batch to the partition's writer through a bounded
//! channel. The writer takes everything waiting (up to a limit), writes it
//! with one `write`, makes it durable with one fsync and then answers every
//! request in the group. While it fsyncs, new batches pile up for the next
//! group: the busier the server, the more requests share one fsync.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot};

use super::partitioner::partition_for;
use super::{AckMode, BoxFuture, Delivery, Message, Queue, QueueError, ShutdownReport};
use crate::log::{LogConfig, NewRecord, PartitionLog};
use crate::telemetry::Telemetry;

/// Most batches one group commit takes, and most bytes.
const MAX_GROUP: usize = 1024;
const MAX_GROUP_BYTES: usize = 8 << 20;
/// How long an accepted-mode batch that failed to write waits before the next try.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

#[derive(Clone, Debug)]
pub struct FileQueueConfig {
    pub data_dir: PathBuf,
    pub partitions: u32,
    pub ack: AckMode,
    pub log: LogConfig,
    /// Batches that may wait per partition before senders have to wait.
    pub capacity: usize,
    /// How long a sender waits for room before the request gets a 503.
    pub enqueue_timeout: Duration,
    pub retention_check: Duration,
}

/// The directory of one partition's log: `<data-dir>/metrics-<n>`, Kafka's
/// `<topic>-<partition>` naming.
pub fn partition_dir(data_dir: &Path, partition: u32) -> PathBuf {
    data_dir.join(format!("metrics-{partition}"))
}

/// Reads the partition count a data directory was created with.
pub fn stored_partitions(data_dir: &Path) -> io::Result<Option<u32>> {
    match fs::read_to_string(data_dir.join("partitions")) {
        Ok(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad partitions file")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

struct Pending {
    key: String,
    value: Vec<u8>,
    timestamp_ms: i64,
    enqueued: Instant,
    /// `None` in accepted mode: nobody waits for the answer.
    reply: Option<oneshot::Sender<Result<u64, QueueError>>>,
}

enum Command {
    Append(Pending),
    Retention,
    Close,
}

/// State a writer shares with the queue.
struct Shared {
    telemetry: Arc<Telemetry>,
    closing: AtomicBool,
    /// One flag per partition writer whose last write failed.
    unhealthy: Vec<AtomicBool>,
    lost: AtomicU64,
}

pub struct FileQueue {
    senders: Vec<mpsc::Sender<Command>>,
    ack: AckMode,
    enqueue_timeout: Duration,
    shared: Arc<Shared>,
    writers: Mutex<Vec<JoinHandle<()>>>,
    // Held for the life of the queue: one server per data directory.
    _lock: File,
}

impl FileQueue {
    /// Opens (recovering) every partition log and starts the writers.
    pub fn open(config: FileQueueConfig, telemetry: Arc<Telemetry>) -> anyhow::Result<FileQueue> {
        use anyhow::Context;
        let dir = &config.data_dir;
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let lock = File::create(dir.join(".lock"))?;
        if lock.try_lock().is_err() {
            anyhow::bail!("{} is in use by another metricstream server", dir.display());
        }
        match stored_partitions(dir)? {
            Some(n) if n != config.partitions => anyhow::bail!(
                "{} holds {n} partitions but --partitions is {}; changing it would move \
                 clients to other partitions (use a new --data-dir)",
                dir.display(),
                config.partitions
            ),
            Some(_) => {}
            None => fs::write(dir.join("partitions"), config.partitions.to_string())?,
        }

        let shared = Arc::new(Shared {
            telemetry,
            closing: AtomicBool::new(false),
            unhealthy: (0..config.partitions)
                .map(|_| AtomicBool::new(false))
                .collect(),
            lost: AtomicU64::new(0),
        });
        let mut senders = Vec::new();
        let mut writers = Vec::new();
        for p in 0..config.partitions {
            let pdir = partition_dir(dir, p);
            let (log, recovery) = PartitionLog::open(&pdir, config.log.clone())
                .with_context(|| format!("opening {}", pdir.display()))?;
            if let Some(cut) = &recovery.cut {
                tracing::warn!(
                    partition = p,
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
            let (tx, rx) = mpsc::channel(config.capacity.max(1));
            let writer = Writer {
                log,
                rx,
                shared: shared.clone(),
                partition: p,
            };
            let handle = std::thread::Builder::new()
                .name(format!("log-writer-{p}"))
                .spawn(move || writer.run())?;
            senders.push(tx);
            writers.push(handle);
        }
        let queue = FileQueue {
            senders,
            ack: config.ack,
            enqueue_timeout: config.enqueue_timeout,
            shared,
            writers: Mutex::new(writers),
            _lock: lock,
        };
        queue.start_retention(config.retention_check);
        Ok(queue)
    }

    fn start_retention(&self, every: Duration) {
        let senders = self.senders.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    for tx in &senders {
                        // A full channel means a busy writer: skip this round.
                        if let Err(mpsc::error::TrySendError::Closed(_)) =
                            tx.try_send(Command::Retention)
                        {
                            return;
                        }
                    }
                }
            });
        }
    }
}

impl Queue for FileQueue {
    fn send(&self, msg: Message) -> BoxFuture<'_, Result<Delivery, QueueError>> {
        Box::pin(async move {
            if self.shared.closing.load(Ordering::Acquire) {
                return Err(QueueError::Closed);
            }
            let partition = partition_for(msg.key.as_bytes(), self.senders.len() as u32);
            let (reply, answer) = match self.ack {
                AckMode::Durable => {
                    let (tx, rx) = oneshot::channel();
                    (Some(tx), Some(rx))
                }
                AckMode::Accepted => (None, None),
            };
            let cmd = Command::Append(Pending {
                key: msg.key,
                value: msg.value,
                timestamp_ms: msg.timestamp_ms,
                enqueued: Instant::now(),
                reply,
            });
            let tx = &self.senders[partition as usize];
            let depth = &self.shared.telemetry.queue_depth;
            depth.inc();
            let sent = match tx.try_send(cmd) {
                Ok(()) => Ok(()),
                Err(mpsc::error::TrySendError::Full(cmd)) => {
                    match tokio::time::timeout(self.enqueue_timeout, tx.send(cmd)).await {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(_)) => Err(QueueError::Closed),
                        Err(_) => Err(QueueError::Full),
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => Err(QueueError::Closed),
            };
            if let Err(e) = sent {
                depth.dec();
                return Err(e);
            }
            match answer {
                None => Ok(Delivery {
                    partition,
                    offset: None,
                }),
                Some(rx) => match rx.await {
                    Ok(Ok(offset)) => Ok(Delivery {
                        partition,
                        offset: Some(offset),
                    }),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(QueueError::Unavailable("the log writer stopped".into())),
                },
            }
        })
    }

    fn ready(&self) -> bool {
        !self.shared.closing.load(Ordering::Acquire)
            && !self
                .shared
                .unhealthy
                .iter()
                .any(|u| u.load(Ordering::Acquire))
    }

    fn shutdown(&self, timeout: Duration) -> BoxFuture<'_, ShutdownReport> {
        Box::pin(async move {
            self.shared.closing.store(true, Ordering::Release);
            let deadline = tokio::time::Instant::now() + timeout;
            for tx in &self.senders {
                // Close queues behind everything already accepted (FIFO).
                let _ = tokio::time::timeout_at(deadline, tx.send(Command::Close)).await;
            }
            let handles = match self.writers.lock() {
                Ok(mut w) => std::mem::take(&mut *w),
                Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
            };
            let joined = tokio::task::spawn_blocking(move || {
                for h in handles {
                    let _ = h.join();
                }
            });
            let t = &self.shared.telemetry;
            let mut lost = self.shared.lost.load(Ordering::Acquire);
            if tokio::time::timeout_at(deadline, joined).await.is_err() {
                // Writers still busy at the deadline: whatever waits is not durable.
                tracing::error!("log writers did not finish within {timeout:?}");
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

/// One partition's writer: owns the log, runs on its own thread because
/// file writes and fsync block.
struct Writer {
    log: PartitionLog,
    rx: mpsc::Receiver<Command>,
    shared: Arc<Shared>,
    partition: u32,
}

impl Writer {
    fn run(mut self) {
        let mut group: Vec<Pending> = Vec::with_capacity(MAX_GROUP);
        let mut closing = false;
        while !closing {
            let Some(first) = self.rx.blocking_recv() else {
                break;
            };
            let mut bytes = 0;
            let mut retention = false;
            let mut next = Some(first);
            while let Some(cmd) = next.take() {
                match cmd {
                    Command::Append(p) => {
                        bytes += p.value.len();
                        group.push(p);
                    }
                    Command::Retention => retention = true,
                    Command::Close => {
                        // Nothing new can be sent once the receiver is
                        // closed; what is already queued still gets written.
                        self.rx.close();
                        closing = true;
                    }
                }
                if group.len() < MAX_GROUP && bytes < MAX_GROUP_BYTES {
                    next = self.rx.try_recv().ok();
                }
            }
            if !group.is_empty() {
                self.commit(&mut group);
            }
            if retention {
                self.retain();
            }
        }
        let partition = self.partition;
        match self.log.close() {
            Ok(()) => tracing::info!(partition, "partition log closed cleanly"),
            Err(e) => tracing::error!(partition, "closing partition log: {e}"),
        }
    }

    /// Writes and fsyncs one group, then answers it. Durable-mode senders
    /// get an error they can retry; accepted-mode batches were already
    /// answered 200, so they are retried here until written or shut down.
    fn commit(&mut self, group: &mut Vec<Pending>) {
        let t = self.shared.telemetry.clone();
        loop {
            match self.write(group) {
                Ok(first) => {
                    self.set_healthy(true);
                    t.commits.inc();
                    t.delivered.inc_by(group.len() as u64);
                    t.queue_depth.sub(group.len() as i64);
                    for (i, p) in group.drain(..).enumerate() {
                        t.queue_latency.observe(p.enqueued.elapsed().as_secs_f64());
                        if let Some(reply) = p.reply {
                            let _ = reply.send(Ok(first + i as u64));
                        }
                    }
                    return;
                }
                Err(e) => {
                    self.set_healthy(false);
                    tracing::error!(partition = self.partition, "log write failed: {e}");
                    let before = group.len();
                    group.retain_mut(|p| match p.reply.take() {
                        Some(reply) => {
                            let _ = reply.send(Err(QueueError::Unavailable(format!(
                                "writing the log failed: {e}"
                            ))));
                            false
                        }
                        None => true,
                    });
                    let answered = (before - group.len()) as u64;
                    t.failed.inc_by(answered);
                    t.queue_depth.sub(answered as i64);
                    if group.is_empty() {
                        return;
                    }
                    if self.shared.closing.load(Ordering::Acquire) {
                        let lost = group.len() as u64;
                        tracing::error!(
                            partition = self.partition,
                            lost,
                            "giving up on accepted batches at shutdown"
                        );
                        self.shared.lost.fetch_add(lost, Ordering::AcqRel);
                        t.failed.inc_by(lost);
                        t.queue_depth.sub(lost as i64);
                        group.clear();
                        return;
                    }
                    std::thread::sleep(RETRY_PAUSE);
                }
            }
        }
    }

    fn write(&mut self, group: &[Pending]) -> io::Result<u64> {
        let records: Vec<NewRecord<'_>> = group
            .iter()
            .map(|p| NewRecord {
                timestamp_ms: p.timestamp_ms,
                key: p.key.as_bytes(),
                value: &p.value,
            })
            .collect();
        let first = self.log.append(&records)?;
        self.log.sync()?;
        Ok(first)
    }

    fn retain(&mut self) {
        match self.log.apply_retention(SystemTime::now()) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                partition = self.partition,
                segments = n,
                "retention deleted segments"
            ),
            Err(e) => tracing::warn!(partition = self.partition, "retention failed: {e}"),
        }
    }

    fn set_healthy(&self, healthy: bool) {
        if let Some(flag) = self.shared.unhealthy.get(self.partition as usize) {
            flag.store(!healthy, Ordering::Release);
        }
    }
}
