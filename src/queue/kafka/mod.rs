//! The Kafka backend: one librdkafka producer shared by every HTTP worker.
//!
//! What makes the C++ system's failures impossible here:
//! - one [`FutureProducer`] for all workers: librdkafka's producer is
//!   thread-safe and the Rust type is `Send + Sync`, so sharing it needs no
//!   lock of ours and cannot go wrong;
//! - the payload is copied into librdkafka when it is queued and a delivery
//!   report hands it back on failure: no buffer can be freed under a send;
//! - the producer lives as long as the queue; [`Queue::shutdown`] flushes
//!   with a deadline, purges what is left and spills it to disk before the
//!   producer is dropped;
//! - a full producer queue makes the request wait a bounded time
//!   (`--enqueue-timeout`), then 503; nothing is dropped silently.
//!
//! Durable mode answers after the brokers' ack (with partition and offset).
//! Accepted mode answers once the batch is queued; a batch that then fails,
//! and every batch while no broker is reachable, goes to the spill log
//! (`spill.rs`), which `resend.rs` re-sends in order once Kafka is back.

pub mod config;
mod context;
mod health;
mod resend;
pub mod spill;
mod topic;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::error::KafkaError;
use rdkafka::message::{Message as _, OwnedMessage};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer, PurgeConfig};
use rdkafka::types::RDKafkaErrorCode;
use tokio::sync::Notify;

use super::{AckMode, BoxFuture, Message, Queue, QueueError, Receipt, ShutdownReport};
use crate::record::Format;
use crate::telemetry::Telemetry;
pub use config::KafkaProperty;
pub use context::log as log_line;
use context::{Link, ProducerContext};
use spill::{PushError, Spill, SpillItem};
pub use topic::CreateTopic;

/// Shortest and longest pause between two tries when the producer's queue
/// (or the spill writer's) is full.
const MIN_PAUSE: Duration = Duration::from_millis(1);
const MAX_PAUSE: Duration = Duration::from_millis(20);
/// Batches that may wait for the spill writer.
const SPILL_CAPACITY: usize = 4096;

/// Of a shutdown's time, what is kept for purging and spilling after the
/// flush (and, in durable mode, after the last answers).
fn shutdown_reserve(timeout: Duration) -> Duration {
    (timeout / 4).min(Duration::from_secs(2))
}

#[derive(Clone, Debug)]
pub struct KafkaQueueConfig {
    pub brokers: String,
    pub topic: String,
    /// `-X` properties, applied over the defaults of [`config`].
    pub properties: Vec<KafkaProperty>,
    pub ack: AckMode,
    /// `--create-topic`.
    pub create_topic: Option<CreateTopic>,
    /// How long a request waits for room in a full producer queue.
    pub enqueue_timeout: Duration,
    /// `message.timeout.ms` unless `-X` sets it.
    pub delivery_timeout: Duration,
    /// How long start-up waits for the brokers.
    pub connect_timeout: Duration,
    /// The spill log goes in `<data_dir>/spill`.
    pub data_dir: PathBuf,
    pub spill_max_bytes: u64,
    /// `--kafka-format`: what the topic's records are.
    pub format: Format,
    /// Records are cut under this many bytes (before compression).
    pub max_record_bytes: usize,
}

pub struct KafkaQueue {
    inner: Arc<Inner>,
    health: Mutex<Option<std::thread::JoinHandle<()>>>,
    resender: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// State shared by the request path, delivery tasks, the re-sender and the
/// health probe.
struct Inner {
    producer: FutureProducer<ProducerContext>,
    topic: String,
    brokers: String,
    ack: AckMode,
    enqueue_timeout: Duration,
    link: Arc<Link>,
    telemetry: Arc<Telemetry>,
    spill: Spill,
    partitions: Arc<AtomicU32>,
    closing: AtomicBool,
    /// Set when the server stops taking requests: by when a durable request
    /// still waiting for its ack must be answered (with a 503).
    answer_by: tokio::sync::watch::Sender<Option<tokio::time::Instant>>,
    stop_health: Arc<AtomicBool>,
    /// Accepted mode: new batches go to the spill log, behind what is
    /// already there, until the re-sender has caught up.
    diverting: AtomicBool,
    /// Read-held while a request decides where its batch goes and puts it
    /// there; write-held by the re-sender to switch back to the producer, so
    /// no batch can slip into the spill log after that decision.
    switch: RwLock<()>,
    /// Accepted batches inside the producer: neither delivered nor spilled yet.
    accepted_pending: AtomicU64,
    settled: Notify,
    /// Accepted batches neither delivered nor spilled.
    lost: AtomicU64,
    format: Format,
    max_record_bytes: usize,
}

impl KafkaQueue {
    /// Opens the spill log, checks the cluster and the topic, and starts
    /// the health probe and the re-sender.
    pub async fn open(
        cfg: KafkaQueueConfig,
        telemetry: Arc<Telemetry>,
    ) -> anyhow::Result<KafkaQueue> {
        use anyhow::Context;
        if cfg.brokers.trim().is_empty() {
            anyhow::bail!("--queue kafka needs --brokers HOST:PORT[,HOST:PORT…]");
        }
        let (spill, opened) = Spill::open(
            &cfg.data_dir,
            cfg.spill_max_bytes,
            SPILL_CAPACITY,
            telemetry.clone(),
        )?;
        let link = Arc::new(Link::new(telemetry.clone()));
        let client_config = config::client_config(
            &cfg.brokers,
            &config::producer_defaults(cfg.delivery_timeout),
            &cfg.properties,
        );
        tracing::info!(settings = %config::describe(&client_config), "kafka producer");
        let producer: FutureProducer<ProducerContext> = client_config
            .create_with_context(ProducerContext { link: link.clone() })
            .context("creating the Kafka producer (check the -X properties)")?;
        let partitions = topic::ensure_topic(
            &producer,
            &client_config,
            &cfg.brokers,
            &cfg.topic,
            cfg.create_topic,
            cfg.connect_timeout,
        )
        .await?;
        link.set_reachable(true);
        if let Some(c) = cfg.create_topic {
            if c.partitions != partitions {
                tracing::warn!(
                    topic = cfg.topic,
                    partitions,
                    "the topic exists with {partitions} partitions; --partitions {} is not used",
                    c.partitions
                );
            }
        }
        let backlog = opened.end - opened.committed;
        if backlog > 0 {
            tracing::info!(
                batches = backlog,
                "spilled batches from an earlier run are re-sent first"
            );
        }
        let inner = Arc::new(Inner {
            producer,
            topic: cfg.topic.clone(),
            brokers: cfg.brokers.clone(),
            ack: cfg.ack,
            enqueue_timeout: cfg.enqueue_timeout,
            link: link.clone(),
            telemetry,
            spill,
            partitions: Arc::new(AtomicU32::new(partitions)),
            closing: AtomicBool::new(false),
            answer_by: tokio::sync::watch::Sender::new(None),
            stop_health: Arc::new(AtomicBool::new(false)),
            diverting: AtomicBool::new(backlog > 0 && cfg.ack == AckMode::Accepted),
            switch: RwLock::new(()),
            accepted_pending: AtomicU64::new(0),
            settled: Notify::new(),
            lost: AtomicU64::new(0),
            format: cfg.format,
            max_record_bytes: cfg.max_record_bytes,
        });
        let health = health::spawn(
            inner.producer.clone(),
            cfg.topic.clone(),
            link,
            inner.partitions.clone(),
            inner.stop_health.clone(),
        )?;
        let resender = tokio::spawn(resend::run(inner.clone(), opened.committed));
        tracing::info!(
            topic = cfg.topic,
            brokers = cfg.brokers,
            partitions,
            "kafka topic ready"
        );
        Ok(KafkaQueue {
            inner,
            health: Mutex::new(Some(health)),
            resender: Mutex::new(Some(resender)),
        })
    }
}

/// Errors a retry can never fix: the batch is dropped with an error log
/// (and counted lost) instead of blocking the spill log forever.
fn permanent(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::InvalidMessageSize
        )
    )
}

fn is_queue_full(e: &KafkaError) -> bool {
    e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull)
}

/// The batch a failed delivery hands back, to be spilled. librdkafka gives
/// back the message as it was produced, key and bytes included; one
/// without them cannot happen, and if it did, spilling an empty record in
/// its place would later re-send nothing under an acknowledged batch: an
/// error, so the batch is counted lost instead.
fn returned_batch(msg: &OwnedMessage) -> Result<SpillItem, &'static str> {
    let (Some(key), Some(value)) = (msg.key(), msg.payload()) else {
        return Err("without its key or its bytes");
    };
    Ok(SpillItem {
        key: key.to_vec(),
        value: value.to_vec(),
        timestamp_ms: msg.timestamp().to_millis().unwrap_or_else(now_ms),
    })
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Where one attempt of an accepted-mode send went.
enum Placed {
    Done,
    /// A queue was full: wait a little and try again.
    Retry(SpillItem),
}

impl Inner {
    /// Produces a request's batch to the partition the request was split
    /// for, as named: librdkafka's partitioner is not asked.
    fn produce_to(&self, b: &SpillItem, partition: i32) -> Result<DeliveryFuture, KafkaError> {
        let record = FutureRecord::to(&self.topic)
            .key(&b.key[..])
            .payload(&b.value[..])
            .timestamp(b.timestamp_ms)
            .partition(partition);
        self.producer.send_result(record).map_err(|(e, _)| e)
    }

    /// Produces a batch by its key: what the re-sender does with the spill
    /// log, whose records keep key and value but not the partition. The
    /// partitioner (murmur2, `config.rs`) hashes the key to the partition
    /// the batch was split for while the topic's partition count is the
    /// one it was split over.
    fn produce(&self, b: &SpillItem) -> Result<DeliveryFuture, KafkaError> {
        let record = FutureRecord::to(&self.topic)
            .key(&b.key[..])
            .payload(&b.value[..])
            .timestamp(b.timestamp_ms);
        self.producer.send_result(record).map_err(|(e, _)| e)
    }

    fn unreachable(&self) -> QueueError {
        QueueError::Unavailable(format!("no Kafka broker reachable at {}", self.brokers))
    }

    async fn pause(&self, pause: &mut Duration, deadline: Instant) -> Result<(), QueueError> {
        let now = Instant::now();
        if now >= deadline {
            return Err(QueueError::Full);
        }
        tokio::time::sleep((*pause).min(deadline - now)).await;
        *pause = (*pause * 2).min(MAX_PAUSE);
        if self.closing.load(Ordering::Acquire) {
            return Err(QueueError::Closed);
        }
        Ok(())
    }

    async fn send_durable(&self, batch: SpillItem, partition: i32) -> Result<Receipt, QueueError> {
        if !self.link.reachable() {
            return Err(self.unreachable());
        }
        let started = Instant::now();
        let deadline = started + self.enqueue_timeout;
        let mut pause = MIN_PAUSE;
        let future = loop {
            match self.produce_to(&batch, partition) {
                Ok(f) => break f,
                Err(e) if is_queue_full(&e) => self.pause(&mut pause, deadline).await?,
                Err(e) => return Err(QueueError::Unavailable(format!("Kafka producer: {e}"))),
            }
        };
        let t = &self.telemetry;
        // Counted while waiting, also if the request goes away meanwhile.
        let _waiting = Gauge::inc(&t.queue_depth);
        let answered = tokio::select! {
            a = future => a,
            _ = self.answer_deadline() => {
                return Err(QueueError::Unavailable(
                    "shutting down before Kafka acknowledged the batch (it may still be \
                     stored)"
                        .into(),
                ))
            }
        };
        match answered {
            Ok(Ok(d)) => {
                self.delivered(started);
                Ok(Receipt {
                    partition: d.partition.max(0) as u32,
                    offset: u64::try_from(d.offset).ok(),
                })
            }
            Ok(Err((e, _))) => {
                t.failed.inc();
                Err(QueueError::Unavailable(format!(
                    "Kafka did not acknowledge the batch: {e}"
                )))
            }
            Err(_) => Err(QueueError::Unavailable("the Kafka producer stopped".into())),
        }
    }

    async fn send_accepted(
        self: &Arc<Self>,
        mut batch: SpillItem,
        partition: i32,
    ) -> Result<Receipt, QueueError> {
        let deadline = Instant::now() + self.enqueue_timeout;
        let mut pause = MIN_PAUSE;
        loop {
            if self.closing.load(Ordering::Acquire) {
                return Err(QueueError::Closed);
            }
            match self.place(batch, partition)? {
                Placed::Done => {
                    return Ok(Receipt {
                        partition: partition as u32,
                        offset: None,
                    })
                }
                Placed::Retry(b) => batch = b,
            }
            self.pause(&mut pause, deadline).await?;
        }
    }

    /// One try: into the spill log while diverting (or no broker answers),
    /// else into the producer, to `partition`. Never waits.
    fn place(self: &Arc<Self>, batch: SpillItem, partition: i32) -> Result<Placed, QueueError> {
        let _decide = crate::sync::read(&self.switch);
        if self.diverting.load(Ordering::Acquire) || !self.link.reachable() {
            self.diverting.store(true, Ordering::Release);
            return match self.spill.try_push(batch) {
                Ok(()) => Ok(Placed::Done),
                Err(PushError::Busy(b)) => Ok(Placed::Retry(b)),
                Err(PushError::OverLimit) => Err(QueueError::Unavailable(
                    "Kafka is unreachable and the spill log is full (--spill-max-bytes)".into(),
                )),
                Err(PushError::Closed) => Err(QueueError::Closed),
            };
        }
        match self.produce_to(&batch, partition) {
            Ok(future) => {
                self.track(future);
                Ok(Placed::Done)
            }
            Err(e) if is_queue_full(&e) => Ok(Placed::Retry(batch)),
            Err(e) => Err(QueueError::Unavailable(format!("Kafka producer: {e}"))),
        }
    }

    /// Follows an accepted batch to its delivery report in the background.
    fn track(self: &Arc<Self>, future: DeliveryFuture) {
        let started = Instant::now();
        self.accepted_pending.fetch_add(1, Ordering::AcqRel);
        self.telemetry.queue_depth.inc();
        let inner = self.clone();
        tokio::spawn(async move {
            match future.await {
                Ok(Ok(_)) => inner.delivered(started),
                Ok(Err((e, msg))) => {
                    inner.telemetry.failed.inc();
                    match returned_batch(&msg) {
                        Ok(batch) => inner.undeliverable(e, batch).await,
                        Err(why) => {
                            tracing::error!(
                                "Kafka did not take an accepted batch ({e}) and the producer \
                                 handed it back {why}: it cannot be spilled and is lost"
                            );
                            inner.lost.fetch_add(1, Ordering::AcqRel);
                        }
                    }
                }
                Err(_) => {
                    tracing::error!("the Kafka producer went away with an accepted batch");
                    inner.lost.fetch_add(1, Ordering::AcqRel);
                }
            }
            inner.telemetry.queue_depth.dec();
            if inner.accepted_pending.fetch_sub(1, Ordering::AcqRel) == 1 {
                inner.settled.notify_waiters();
            }
        });
    }

    /// An accepted batch Kafka did not take: into the spill log.
    async fn undeliverable(&self, e: KafkaError, batch: SpillItem) {
        if permanent(&e) {
            tracing::error!(
                key = %String::from_utf8_lossy(&batch.key),
                bytes = batch.value.len(),
                "Kafka refuses this batch for good ({e}); it is dropped"
            );
            self.lost.fetch_add(1, Ordering::AcqRel);
            return;
        }
        tracing::debug!("delivery failed ({e}); spilling");
        self.diverting.store(true, Ordering::Release);
        if !self.spill.push(batch).await {
            tracing::error!("an accepted batch could not be spilled: the spill log is closed");
            self.lost.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Resolves when a durable request must stop waiting for its ack:
    /// shortly before the server's shutdown deadline.
    async fn answer_deadline(&self) {
        let mut by = self.answer_by.subscribe();
        match by.wait_for(Option::is_some).await.ok().and_then(|at| *at) {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    }

    fn delivered(&self, started: Instant) {
        let t = &self.telemetry;
        let secs = started.elapsed().as_secs_f64();
        t.delivered.inc();
        t.delivery_latency.observe(secs);
        t.queue_latency.observe(secs);
    }

    /// Waits until no accepted batch is inside the producer, or the deadline.
    async fn settle(&self, deadline: tokio::time::Instant) -> u64 {
        loop {
            let notified = self.settled.notified();
            let left = self.accepted_pending.load(Ordering::Acquire);
            if left == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.accepted_pending.load(Ordering::Acquire);
            }
        }
    }
}

/// Increments a gauge now and decrements it when dropped.
struct Gauge<'a>(&'a prometheus::IntGauge);

impl<'a> Gauge<'a> {
    fn inc(g: &'a prometheus::IntGauge) -> Gauge<'a> {
        g.inc();
        Gauge(g)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Queue for KafkaQueue {
    fn partitions(&self) -> u32 {
        self.inner.partitions.load(Ordering::Acquire)
    }

    fn format(&self) -> Format {
        self.inner.format
    }

    fn max_record_bytes(&self) -> usize {
        self.inner.max_record_bytes
    }

    fn send(&self, msg: Message) -> BoxFuture<'_, Result<Receipt, QueueError>> {
        Box::pin(async move {
            let inner = &self.inner;
            if inner.closing.load(Ordering::Acquire) {
                return Err(QueueError::Closed);
            }
            // The topic's partitions only grow, so one named when the
            // request was split is still there.
            let partitions = inner.partitions.load(Ordering::Acquire);
            QueueError::check_partition(msg.partition, partitions)?;
            let partition =
                i32::try_from(msg.partition).map_err(|_| QueueError::NoSuchPartition {
                    partition: msg.partition,
                    partitions,
                })?;
            // A Kafka topic holds standalone records: a consumer may start
            // anywhere in it (see the record module).
            let value = msg
                .value
                .into_bytes()
                .map_err(|e| QueueError::Unavailable(e.to_string()))?;
            let batch = SpillItem {
                key: msg.key.into_bytes(),
                value,
                timestamp_ms: msg.timestamp_ms,
            };
            match inner.ack {
                AckMode::Durable => inner.send_durable(batch, partition).await,
                AckMode::Accepted => inner.send_accepted(batch, partition).await,
            }
        })
    }

    fn ready(&self) -> bool {
        let inner = &self.inner;
        !inner.closing.load(Ordering::Acquire)
            && inner.link.reachable()
            && !(inner.ack == AckMode::Accepted
                && inner.diverting.load(Ordering::Acquire)
                && (inner.spill.full() || !inner.spill.healthy()))
    }

    /// Durable requests still waiting for Kafka get their 503 early enough
    /// for the server to send it and for `shutdown` to purge and finish
    /// within the deadline (a broker that is gone would otherwise keep them
    /// waiting until `--delivery-timeout`, and the server would close their
    /// connections unanswered).
    fn closing(&self, deadline: tokio::time::Instant) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let at = deadline - shutdown_reserve(left);
        self.inner.answer_by.send_replace(Some(at));
    }

    fn shutdown(&self, timeout: Duration) -> BoxFuture<'_, ShutdownReport> {
        Box::pin(async move {
            let inner = &self.inner;
            inner.closing.store(true, Ordering::Release);
            let start = tokio::time::Instant::now();
            let deadline = start + timeout;
            // Most of the time goes to delivering; the rest to spilling.
            let reserve = shutdown_reserve(timeout);
            let flush_for = timeout.saturating_sub(reserve);
            let producer = inner.producer.clone();
            let flushed =
                tokio::task::spawn_blocking(move || producer.flush(flush_for).is_ok()).await;
            if !matches!(flushed, Ok(true)) {
                let waiting = inner.producer.in_flight_count();
                tracing::warn!(
                    batches = waiting,
                    "not delivered within the shutdown timeout; spilling them"
                );
                inner
                    .producer
                    .purge(PurgeConfig::default().queue().inflight());
            }
            let unsettled = inner.settle(deadline).await;
            if unsettled > 0 {
                tracing::error!(
                    batches = unsettled,
                    "accepted batches neither delivered nor spilled at the deadline"
                );
            }
            let resender = crate::sync::lock(&self.resender).take();
            if let Some(r) = resender {
                if tokio::time::timeout_at(deadline, r).await.is_err() {
                    tracing::warn!("the spill re-sender did not stop in time");
                }
            }
            inner.stop_health.store(true, Ordering::Release);
            inner.link.wake();
            let health = crate::sync::lock(&self.health).take();
            // Polled, not joined on a blocking task: a probe stuck in its
            // 2 s metadata request to a dead broker would hold up the
            // runtime's exit after the deadline. Past it, the thread is left
            // to die with the process.
            if let Some(h) = health {
                while !h.is_finished() && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            // The spill writer gets at least a moment even if flushing used
            // the whole budget.
            let spill_deadline = deadline.max(tokio::time::Instant::now() + Duration::from_secs(1));
            let spill_lost = inner.spill.close(spill_deadline).await;
            let t = &inner.telemetry;
            ShutdownReport {
                delivered: t.delivered.get(),
                spilled: inner.spill.written(),
                lost: inner.lost.load(Ordering::Acquire) + unsettled + spill_lost,
            }
        })
    }
}
