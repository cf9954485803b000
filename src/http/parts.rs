//! A request's metrics split into one queue message per partition, and
//! stored together before the answer.
//!
//! The partition is chosen here, once, and written into each message: the
//! queue stores a message where it names. With `--partition-by client` (and
//! always for `POST /metrics`, whose batches stay whole) a request is one
//! message in its client's partition, keyed by the client. With
//! `--partition-by tenant` it is one message in its tenant's partition,
//! keyed by the tenant (a request without a tenant: by client). With
//! `--partition-by series` every series goes to the partition its series
//! key hashes to, so a series' samples stay in one partition, in order; a
//! message is keyed by its first series. Every message stores the
//! request's tenant.

use super::error::ApiError;
use super::state::App;
use crate::queue::partitioner::{partition_for, series_key};
use crate::queue::{Message, PartitionBy, Receipt};
use crate::record::{self, Metric};

/// One request's metrics, grouped by the message they go into.
pub struct Parts<'a> {
    by_series: bool,
    client: String,
    tenant: Option<String>,
    parts: Vec<Part<'a>>,
    /// The part the last metric went to: the next one, of the same series
    /// more often than not (a series' samples come together), goes there
    /// without building and hashing its key again.
    last: Option<usize>,
}

/// The metrics that go into one message.
struct Part<'a> {
    partition: u32,
    /// The client (or tenant), or the series key of the part's first series.
    key: String,
    metrics: Vec<Metric<'a>>,
}

/// What storing a request's parts did.
#[derive(Debug, Default)]
pub struct Placed {
    /// Metrics stored, over all parts.
    pub metrics: usize,
    /// Where each part went, one per message stored.
    pub receipts: Vec<Receipt>,
}

impl<'a> Parts<'a> {
    /// Parts for a request of `client` under `tenant`. `whole` keeps it one
    /// message in the client's partition whatever `--partition-by` says
    /// (but `tenant`: still one message, in the tenant's).
    pub fn new(app: &App, client: &str, tenant: Option<&str>, whole: bool) -> Parts<'a> {
        let partitions = app.queue.partitions().max(1);
        let by_series = app.partition_by == PartitionBy::Series && !whole;
        let key = match (app.partition_by, tenant) {
            (PartitionBy::Tenant, Some(t)) => t,
            _ => client,
        };
        let parts = if by_series {
            (0..partitions)
                .map(|partition| Part {
                    partition,
                    key: String::new(),
                    metrics: Vec::new(),
                })
                .collect()
        } else {
            vec![Part {
                partition: partition_for(key.as_bytes(), partitions),
                key: key.to_string(),
                metrics: Vec::new(),
            }]
        };
        Parts {
            by_series,
            client: client.to_string(),
            tenant: tenant.map(str::to_string),
            parts,
            last: None,
        }
    }

    /// Adds a metric to the part of its series: its name and tags (sorted
    /// by key, as a `BTreeMap` keeps them).
    pub fn push(&mut self, metric: Metric<'a>) {
        let i = if self.by_series {
            self.part_of(&metric)
        } else {
            0
        };
        self.last = Some(i);
        self.parts[i].metrics.push(metric);
    }

    /// Adds a request's metrics, in order. By client (one part) the vector
    /// becomes the part as it is: a metric is a few hundred bytes, not
    /// worth moving one by one.
    pub fn extend(&mut self, metrics: Vec<Metric<'a>>) {
        if !self.by_series {
            let part = &mut self.parts[0].metrics;
            if part.is_empty() {
                *part = metrics;
            } else {
                part.extend(metrics);
            }
            self.last = Some(0);
            return;
        }
        for m in metrics {
            self.push(m);
        }
    }

    fn part_of(&mut self, metric: &Metric<'a>) -> usize {
        if let Some(i) = self.last {
            let same = self.parts[i]
                .metrics
                .last()
                .is_some_and(|prev| prev.same_series(metric));
            if same {
                return i;
            }
        }
        let tags = metric.tags.iter().map(|(k, v)| (k.as_ref(), v.as_ref()));
        let key = series_key(&metric.name, tags);
        let i = partition_for(key.as_bytes(), self.parts.len() as u32) as usize;
        let part = &mut self.parts[i];
        if part.key.is_empty() {
            part.key = key;
        }
        i
    }

    /// Stores every part, each stamped with `received_ms`, as the records
    /// the queue takes (its format; as many as `--max-record-bytes` makes
    /// of it, in order). Every record must be durable (or accepted) before
    /// the 2xx. If one fails, the sender retries the whole request:
    /// records already stored are stored twice, never lost. A part that
    /// cannot be made into a record is refused before anything is stored.
    pub async fn store(self, app: &App, received_ms: u64) -> Result<Placed, ApiError> {
        let Parts {
            client,
            tenant,
            mut parts,
            ..
        } = self;
        parts.retain(|p| !p.metrics.is_empty());
        let metrics = parts.iter().map(|p| p.metrics.len()).sum();
        let mut messages = Vec::new();
        for mut part in parts {
            let values = record::tenant_records(
                app.queue.format(),
                &client,
                tenant.as_deref(),
                received_ms,
                &mut part.metrics,
                app.queue.max_record_bytes(),
            )
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
            for value in values {
                messages.push(Message {
                    partition: part.partition,
                    key: part.key.clone(),
                    value,
                    timestamp_ms: received_ms as i64,
                });
            }
        }
        let sends = messages.into_iter().map(|m| app.queue.send(m));
        let mut receipts = Vec::new();
        for result in futures_util::future::join_all(sends).await {
            receipts.push(result?);
        }
        Ok(Placed { metrics, receipts })
    }
}
