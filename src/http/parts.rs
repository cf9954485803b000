//! What the partial-accept protocols (remote_write, line protocol, OTLP)
//! share after decoding: splitting a request's metrics into one queue
//! message per partition key, and storing them all before the answer.
//!
//! The partition is chosen here, once, and written into each message: the
//! queue stores a message where it names. With `--partition-by client` a
//! request is one message in its client's partition, keyed by its client.
//! With `--partition-by series` every series goes to the partition its key
//! hashes to, so a series' samples stay in one partition, in order; a
//! message is keyed by its first series.

use std::time::{SystemTime, UNIX_EPOCH};

use super::error::ApiError;
use super::state::App;
use crate::batch::{self, Metric};
use crate::queue::partitioner::{partition_for, series_key};
use crate::queue::{Message, PartitionBy};
use crate::telemetry::Protocol;

/// One request's metrics, grouped by the message they go into.
pub struct Parts<'a> {
    by: PartitionBy,
    client: String,
    /// The queue's partition count, which the series are hashed over.
    partitions: u32,
    parts: Vec<(String, Vec<Metric<'a>>)>,
}

impl<'a> Parts<'a> {
    pub fn new(app: &App, client: &str) -> Parts<'a> {
        let partitions = app.queue.partitions().max(1);
        let parts = match app.partition_by {
            PartitionBy::Client => 1,
            PartitionBy::Series => partitions,
        };
        Parts {
            by: app.partition_by,
            client: client.to_string(),
            partitions,
            parts: (0..parts).map(|_| (String::new(), Vec::new())).collect(),
        }
    }

    /// Where the samples of one series go: the series is its name and its
    /// labels sorted by name (the key is only built under `series`).
    pub fn series<'l>(
        &mut self,
        name: &str,
        labels: impl IntoIterator<Item = (&'l str, &'l str)>,
    ) -> &mut Vec<Metric<'a>> {
        let part = match self.by {
            PartitionBy::Client => &mut self.parts[0],
            PartitionBy::Series => {
                let key = series_key(name, labels);
                let n = self.parts.len() as u32;
                let part = &mut self.parts[partition_for(key.as_bytes(), n) as usize];
                if part.0.is_empty() {
                    part.0 = key;
                }
                part
            }
        };
        &mut part.1
    }

    /// Metrics in all parts.
    pub fn len(&self) -> usize {
        self.parts.iter().map(|(_, m)| m.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stores every part and counts what was stored under `protocol`.
    /// Every part must be durable (or accepted) before the 2xx. If one
    /// fails, the sender retries the whole request: parts already stored
    /// are stored twice, never lost. Returns the metrics stored.
    pub async fn store(self, app: &App, protocol: Protocol) -> Result<usize, ApiError> {
        let Parts {
            by,
            client,
            partitions,
            mut parts,
        } = self;
        if by == PartitionBy::Client {
            parts[0].0 = client.clone();
        }
        // By client, the one part goes to the client's partition; by
        // series, part i holds the series that hash to partition i.
        let partition_of = |i: usize| match by {
            PartitionBy::Client => partition_for(client.as_bytes(), partitions),
            PartitionBy::Series => i as u32,
        };
        let parts: Vec<(u32, String, Vec<Metric<'a>>)> = parts
            .into_iter()
            .enumerate()
            .filter(|(_, (_, metrics))| !metrics.is_empty())
            .map(|(i, (key, metrics))| (partition_of(i), key, metrics))
            .collect();
        let written: usize = parts.iter().map(|(_, _, m)| m.len()).sum();
        let now_ms = now_ms();
        let sends = parts.into_iter().map(|(partition, key, metrics)| {
            let value = batch::normalize(&client, now_ms, metrics);
            app.queue.send(Message {
                partition,
                key,
                value,
                timestamp_ms: now_ms as i64,
            })
        });
        let stored = futures_util::future::join_all(sends).await;
        let batches = stored.len();
        for result in stored {
            result?;
        }
        if written > 0 {
            let t = &app.telemetry;
            t.batches_processed.inc_by(batches as u64);
            t.metrics_received.inc_by(written as u64);
            t.samples_received
                .with_label_values(&[protocol.as_str()])
                .inc_by(written as u64);
        }
        Ok(written)
    }
}

/// Milliseconds since the epoch (0 on a clock before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Counts data points refused while the rest of their request was stored.
pub fn count_refused(app: &App, protocol: Protocol, refused: usize) {
    if refused > 0 {
        app.telemetry.validation_errors.inc();
        app.telemetry
            .samples_refused
            .with_label_values(&[protocol.as_str()])
            .inc_by(refused as u64);
    }
}
