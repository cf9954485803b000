//! `consume --queue kafka`: a member of a Kafka consumer group. Kafka
//! splits the topic's partitions between the members; this hands each
//! message to the sink (as the embedded-log consumer does) and commits each
//! partition's offset only after the sink acknowledged it. A partition
//! revoked by a rebalance is released from the sink (what it had not
//! acknowledged is read again by the new owner).
//!
//! While a partition's sink queue is full (the store is slow or down) this
//! member waits without polling; past librdkafka's `max.poll.interval.ms`
//! (5 minutes by default) Kafka moves its partitions to other members, and
//! it rejoins at its next poll: nothing is lost, some is sent twice.
//!
//! `--exit-at-end` uses librdkafka's partition-EOF events: the member exits
//! once it has been through a group assignment and every partition assigned
//! to it has reported its end since it last delivered a message.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::ConsumeConfig;
use crate::queue::kafka::config::{client_config, consumer_defaults, describe, KafkaProperty};
use crate::sink::metrics::ConsumeMetrics;
use crate::sink::Output;

/// Where the group's topic is.
#[derive(Debug, Clone)]
pub struct KafkaSource {
    /// Bootstrap brokers, HOST:PORT[,HOST:PORT…].
    pub brokers: String,
    pub topic: String,
    /// `-X` properties, applied over [`consumer_defaults`].
    pub properties: Vec<KafkaProperty>,
    /// How long to wait for a broker at start before giving up.
    pub connect_timeout: Duration,
}

/// Messages handled between two commits, at most.
const MAX_BATCH: usize = 1000;

#[derive(Default)]
struct Progress {
    /// Has any assignment happened yet (possibly an empty one)?
    assigned_once: bool,
    /// Assigned partitions that reported their end since their last message.
    at_end: BTreeSet<i32>,
    /// Revoked since the loop last looked: to release from the sink.
    revoked: Vec<i32>,
}

struct GroupContext {
    progress: Arc<Mutex<Progress>>,
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        crate::queue::kafka::log_line(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!("kafka: {error}: {reason}");
    }
}

impl ConsumerContext for GroupContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let mut p = crate::sync::lock(&self.progress);
        match rebalance {
            Rebalance::Assign(tpl) => {
                p.assigned_once = true;
                let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                for part in &parts {
                    p.at_end.remove(part);
                }
                tracing::info!(partitions = ?parts, "assigned partitions");
            }
            Rebalance::Revoke(tpl) => {
                let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                for part in &parts {
                    p.at_end.remove(part);
                }
                p.revoked.extend(&parts);
                tracing::info!(partitions = ?parts, "partitions revoked");
            }
            Rebalance::Error(e) => tracing::warn!("rebalance failed: {e}"),
        }
    }
}

pub fn run(
    cfg: &ConsumeConfig,
    q: &KafkaSource,
    output: &mut dyn Output,
    stop: &AtomicBool,
    metrics: &ConsumeMetrics,
) -> anyhow::Result<()> {
    let brokers = &q.brokers;
    if cfg.group.trim().is_empty() {
        bail!("--group must not be empty");
    }
    let config = client_config(
        brokers,
        &consumer_defaults(&cfg.group, cfg.from_beginning),
        &q.properties,
    );
    tracing::info!(settings = %describe(&config), "kafka consumer");
    let progress = Arc::new(Mutex::new(Progress::default()));
    let consumer: BaseConsumer<GroupContext> = config
        .create_with_context(GroupContext {
            progress: progress.clone(),
        })
        .context("creating the Kafka consumer (check the -X properties)")?;
    let md = consumer
        .fetch_metadata(None, q.connect_timeout)
        .with_context(|| {
            format!(
                "cannot reach Kafka at {brokers} within {:?}",
                q.connect_timeout
            )
        })?;
    if !md
        .topics()
        .iter()
        .any(|t| t.name() == q.topic && t.error().is_none())
    {
        bail!(
            "topic {:?} does not exist on the Kafka cluster at {brokers}",
            q.topic
        );
    }
    consumer
        .subscribe(&[&q.topic])
        .with_context(|| format!("subscribing to {}", q.topic))?;
    tracing::info!(
        group = cfg.group,
        topic = q.topic,
        "joining the consumer group"
    );

    // Per partition: the next offset handed to the sink, and acknowledged.
    let mut handed: BTreeMap<i32, i64> = BTreeMap::new();
    let mut acked: BTreeMap<i32, i64> = BTreeMap::new();
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let mut last_lag = Instant::now();
    'outer: while !stop.load(Ordering::Relaxed) {
        let mut handled = 0;
        let mut wait = cfg.poll_interval;
        while handled < MAX_BATCH {
            match consumer.poll(wait) {
                None => break,
                Some(Ok(m)) => {
                    let (p, offset) = (m.partition(), m.offset());
                    let value = m.payload().unwrap_or_default();
                    // A full sink queue: wait for it (see the module doc).
                    let part = p.max(0) as u32;
                    while !output.has_room(part)? {
                        take_acks(output, &mut acked, &mut next)?;
                        if !next.is_empty() {
                            commit(&consumer, &q.topic, &mut next);
                        }
                        if stop.load(Ordering::Relaxed) {
                            break 'outer;
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    output.submit(part, offset.max(0) as u64, Bytes::copy_from_slice(value))?;
                    handed.insert(p, offset + 1);
                    lock(&progress).at_end.remove(&p);
                    handled += 1;
                    // Take what is already fetched without waiting.
                    wait = Duration::ZERO;
                }
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    lock(&progress).at_end.insert(p);
                }
                Some(Err(e)) => {
                    if let Some((code, why)) = consumer.client().fatal_error() {
                        bail!("the Kafka consumer failed: {code}: {why}");
                    }
                    tracing::warn!("kafka consumer: {e}");
                    break;
                }
            }
        }
        let revoked = std::mem::take(&mut lock(&progress).revoked);
        for p in revoked {
            output.release(p.max(0) as u32);
            handed.remove(&p);
            acked.remove(&p);
        }
        take_acks(output, &mut acked, &mut next)?;
        if !next.is_empty() {
            commit(&consumer, &q.topic, &mut next);
        }
        if last_lag.elapsed() >= LAG_EVERY {
            record_lag(&consumer, &q.topic, &acked, metrics);
            last_lag = Instant::now();
        }
        let all_acked = handed.iter().all(|(p, h)| acked.get(p) == Some(h));
        if cfg.exit_at_end && handled == 0 && all_acked && caught_up(&consumer, &progress) {
            break;
        }
        if handled == 0 && !all_acked {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    for (p, n) in output.close()? {
        next.insert(p as i32, n as i64);
    }
    if !next.is_empty() {
        commit(&consumer, &q.topic, &mut next);
    }
    // Dropping the consumer leaves the group, so the others rebalance now.
    drop(consumer);
    Ok(())
}

/// How often the partitions' ends are asked for (one broker round trip each).
const LAG_EVERY: Duration = Duration::from_secs(5);

/// Records between what the sink acknowledged and each assigned
/// partition's end, into `metricstream_consume_lag_records`.
fn record_lag(
    consumer: &BaseConsumer<GroupContext>,
    topic: &str,
    acked: &BTreeMap<i32, i64>,
    metrics: &ConsumeMetrics,
) {
    let Ok(assignment) = consumer.assignment() else {
        return;
    };
    for e in assignment.elements() {
        let p = e.partition();
        let Ok((low, high)) = consumer.fetch_watermarks(topic, p, Duration::from_secs(1)) else {
            continue;
        };
        let done = acked
            .get(&p)
            .copied()
            .or_else(|| e.offset().to_raw())
            .unwrap_or(low)
            .max(low);
        metrics
            .lag_records
            .with_label_values(&[&p.to_string()])
            .set((high - done).max(0));
    }
}

/// Moves the sink's acknowledgements into `acked` and the commit list.
fn take_acks(
    output: &mut dyn Output,
    acked: &mut BTreeMap<i32, i64>,
    next: &mut BTreeMap<i32, i64>,
) -> anyhow::Result<()> {
    for (p, n) in output.acked()? {
        let (p, n) = (p as i32, n as i64);
        acked.insert(p, n);
        next.insert(p, n);
    }
    Ok(())
}

fn lock(p: &Mutex<Progress>) -> std::sync::MutexGuard<'_, Progress> {
    crate::sync::lock(p)
}

/// Commits the offsets the sink acknowledged. A failure (typically a
/// rebalance that moved the partition) only means the new owner reads those
/// records again: at-least-once.
fn commit(consumer: &BaseConsumer<GroupContext>, topic: &str, next: &mut BTreeMap<i32, i64>) {
    let mut tpl = TopicPartitionList::new();
    for (&p, &o) in next.iter() {
        if let Err(e) = tpl.add_partition_offset(topic, p, Offset::Offset(o)) {
            tracing::warn!(partition = p, "kafka commit: {e}");
        }
    }
    match consumer.commit(&tpl, CommitMode::Sync) {
        Ok(()) => next.clear(),
        Err(e) => {
            tracing::warn!("committing offsets failed ({e}); they are read again after a restart");
            next.clear();
        }
    }
}

fn caught_up(consumer: &BaseConsumer<GroupContext>, progress: &Mutex<Progress>) -> bool {
    let Ok(assignment) = consumer.assignment() else {
        return false;
    };
    let p = lock(progress);
    p.assigned_once
        && assignment
            .elements()
            .iter()
            .all(|e| p.at_end.contains(&e.partition()))
}
