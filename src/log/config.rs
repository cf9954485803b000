//! Tuning knobs of a partition log.

use std::time::Duration;

/// How a partition log rolls, indexes and expires its segments.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// Roll to a new segment when the active one would exceed this many bytes.
    /// Index positions are `u32`, so values above 4 GiB behave as 4 GiB.
    pub segment_bytes: u64,
    /// Bytes of log data between two offset index entries.
    pub index_interval_bytes: u32,
    /// Delete the oldest closed segments while the partition is larger than this.
    pub retention_bytes: Option<u64>,
    /// Delete closed segments whose file mtime is older than this.
    pub retention: Option<Duration>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 64 * 1024 * 1024,
            index_interval_bytes: 4096,
            retention_bytes: None,
            retention: None,
        }
    }
}

impl LogConfig {
    /// The roll threshold actually used: positions in the index must fit a `u32`.
    pub(crate) fn segment_limit(&self) -> u64 {
        self.segment_bytes.min(u64::from(u32::MAX))
    }
}

/// How [`crate::log::PartitionLog::sync_many`] makes several logs durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// One fdatasync per log: each costs a device cache flush, but only this
    /// log's data is written out.
    Fdatasync,
    /// One syncfs for all: a single journal commit and flush, but it also
    /// writes out every other dirty file of the same file system.
    Syncfs,
}
