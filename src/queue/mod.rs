//! The queue a batch goes into once it is valid, behind one small trait.
//!
//! The HTTP layer sees only [`Queue`]: it hands over a [`Message`] and waits
//! for the answer, which comes when the batch is as safe as the ack mode
//! promises. Backends count what they deliver into the shared
//! [`crate::telemetry::Telemetry`]. Backends: [`file::FileQueue`] (the
//! embedded log) and [`kafka::KafkaQueue`] (a Kafka cluster, with a local
//! spill log for accepted batches it cannot take yet).

pub mod file;
pub mod group_commit;
pub mod kafka;
pub mod partitioner;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::record::{Format, Payload};

/// Records are cut under this many bytes unless the queue says otherwise:
/// well under Kafka's default `message.max.bytes` (1 MB) and its
/// producer's `max.request.size`, even for a record that compresses
/// nothing, and small enough that a consumer's read buffer holds many.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 512 * 1024;

/// What decides a message's partition (`--partition-by`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PartitionBy {
    /// The client id: a client's batches stay in order in one partition.
    #[default]
    Client,
    /// Each series (name and sorted labels): a series' samples stay in order
    /// in one partition, while one big sender spreads over all of them.
    Series,
    /// The request's tenant (`X-Scope-OrgID`): a tenant's data stays in
    /// order in one partition; a request without a tenant goes by client.
    Tenant,
}

/// When a batch counts as accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AckMode {
    /// Answer once the batch is durable (fsync'd / acknowledged by the brokers).
    Durable,
    /// Answer once the batch is in the bounded in-memory queue of the writer.
    Accepted,
}

/// One queue message: one accepted batch (or, partitioned by series, the
/// part of one that goes to one partition).
#[derive(Debug)]
pub struct Message {
    /// Where it goes, chosen once where the request was split (by client,
    /// or by series). Both backends store it there as named, so the
    /// partition never depends on a second hash agreeing with the first; a
    /// partition the queue does not have is refused, never remapped.
    pub partition: u32,
    /// The key stored with it: the client id, or with `--partition-by
    /// series` the series key of the part's first series.
    pub key: String,
    /// The record (see [`crate::record`]).
    pub value: Payload,
    pub timestamp_ms: i64,
}

/// Where a stored message is. The offset is known only in durable mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    pub partition: u32,
    pub offset: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// Bounded wait for room ran out: the client should retry later.
    #[error("the queue is full")]
    Full,
    /// The backend cannot store anything right now (disk error, broker down).
    #[error("the queue is unavailable: {0}")]
    Unavailable(String),
    /// Shutting down; nothing more is taken.
    #[error("the server is shutting down")]
    Closed,
    /// The message names a partition the queue does not have: a fault where
    /// the request was split, which no retry fixes.
    #[error("no partition {partition}: the queue has {partitions}")]
    NoSuchPartition { partition: u32, partitions: u32 },
}

impl QueueError {
    /// `Err` unless `partition` is one of the queue's `partitions`.
    pub fn check_partition(partition: u32, partitions: u32) -> Result<(), QueueError> {
        if partition < partitions {
            Ok(())
        } else {
            Err(QueueError::NoSuchPartition {
                partition,
                partitions,
            })
        }
    }
}

/// What shutdown managed to do.
#[derive(Debug, Default, Clone, Copy)]
pub struct ShutdownReport {
    pub delivered: u64,
    pub spilled: u64,
    /// Accepted batches that are neither delivered nor spilled.
    pub lost: u64,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A queue backend. Implementations are shared by every worker thread.
pub trait Queue: Send + Sync + 'static {
    /// Stores one batch in the partition it names; resolves when the ack
    /// mode's promise holds.
    fn send(&self, msg: Message) -> BoxFuture<'_, Result<Receipt, QueueError>>;
    /// The record format this queue stores (the embedded log: always
    /// compact; Kafka: `--kafka-format`).
    fn format(&self) -> Format {
        Format::Compact
    }
    /// Largest record this queue takes, in bytes before compression: a
    /// request is cut into records under it.
    fn max_record_bytes(&self) -> usize {
        DEFAULT_MAX_RECORD_BYTES
    }
    /// True when a write would be taken now (`/ready`).
    fn ready(&self) -> bool;
    /// Partitions now: a message names one of `0..partitions()`.
    fn partitions(&self) -> u32;
    /// The server stopped taking requests and calls [`shutdown`](Self::shutdown)
    /// by `deadline`: requests still waiting in `send` should get their
    /// answer before then. Default: they finish by themselves.
    fn closing(&self, _deadline: tokio::time::Instant) {}
    /// Makes everything accepted durable (or spilled) within `timeout`.
    /// Called once, after the HTTP server has stopped taking requests.
    fn shutdown(&self, timeout: Duration) -> BoxFuture<'_, ShutdownReport>;
}
