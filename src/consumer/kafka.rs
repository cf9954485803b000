//! `consume --queue kafka`: a member of a Kafka consumer group, as the
//! consumer loop's [`RecordSource`]. Kafka splits the topic's partitions
//! between the members; the loop hands each message to the sink and
//! commits a partition's offset only after the sink acknowledged it (as
//! with the embedded log). A partition revoked or lost in a rebalance is
//! released from the sink (what it had not acknowledged is read again by
//! the new owner).
//!
//! Rebalances happen inside librdkafka's poll, reported by the callbacks
//! of [`GroupContext`] into [`GroupEvents`]. A poll batch ends at a
//! revocation, and a message that came with it is held back, so the loop
//! lets the revoked partitions go before it sees any message read after
//! them (a partition revoked and assigned again in one poll is read anew
//! from the commit, not mixed with what the release dropped).
//!
//! While a partition's sink queue is full (the store is slow or down) this
//! member waits without polling; past librdkafka's `max.poll.interval.ms`
//! (5 minutes by default) Kafka moves its partitions to other members, and
//! it rejoins at its next poll: nothing is lost, some is sent twice.
//!
//! `--exit-at-end` uses librdkafka's partition-EOF events: the member exits
//! once it has been through a group assignment and every partition assigned
//! to it has reported its end since it last delivered a message. The same
//! events tell the loop that a partition is caught up (commit at once).
//! Lag is the partitions' end offsets (one broker round trip each) every 5 s.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::main_loop::{Polled, RecordSource};
use crate::queue::kafka::config::{client_config, consumer_defaults, describe, KafkaProperty};

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

/// Messages returned by one poll, at most.
const MAX_BATCH: usize = 1000;
/// How often the partitions' ends are asked for (one broker round trip each).
const LAG_EVERY: Duration = Duration::from_secs(5);

/// What the rebalance callbacks and partition-EOF events tell the loop.
#[derive(Default)]
struct GroupEvents {
    /// Has any assignment happened yet (possibly an empty one)?
    assigned_once: bool,
    /// Assigned partitions that reported their end since their last message.
    at_end: BTreeSet<i32>,
    /// Revoked since the loop last looked: to release from the sink.
    revoked: Vec<i32>,
}

struct GroupContext {
    events: Arc<Mutex<GroupEvents>>,
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
        let mut e = lock(&self.events);
        match rebalance {
            Rebalance::Assign(tpl) => {
                e.assigned_once = true;
                let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                for part in &parts {
                    e.at_end.remove(part);
                }
                tracing::info!(partitions = ?parts, "assigned partitions");
            }
            Rebalance::Revoke(tpl) => {
                let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                for part in &parts {
                    e.at_end.remove(part);
                }
                e.revoked.extend(&parts);
                tracing::info!(partitions = ?parts, "partitions revoked");
            }
            Rebalance::Error(e) => tracing::warn!("rebalance failed: {e}"),
        }
    }
}

/// A member of a Kafka consumer group, reading the partitions Kafka gives it.
pub struct KafkaMember {
    consumer: BaseConsumer<GroupContext>,
    topic: String,
    events: Arc<Mutex<GroupEvents>>,
    /// A message read in the poll that also revoked partitions: returned
    /// first by the next poll, after the loop let those go.
    held: Option<Polled>,
    /// Per partition, the offset after the last message returned.
    returned: BTreeMap<u32, u64>,
    last_lag: Option<Instant>,
}

impl KafkaMember {
    /// Connects, checks the topic and subscribes; Kafka assigns partitions
    /// at the first polls.
    pub fn join(group: &str, from_beginning: bool, q: &KafkaSource) -> anyhow::Result<KafkaMember> {
        let brokers = &q.brokers;
        if group.trim().is_empty() {
            bail!("--group must not be empty");
        }
        let config = client_config(
            brokers,
            &consumer_defaults(group, from_beginning),
            &q.properties,
        );
        tracing::info!(settings = %describe(&config), "kafka consumer");
        let events = Arc::new(Mutex::new(GroupEvents::default()));
        let consumer: BaseConsumer<GroupContext> = config
            .create_with_context(GroupContext {
                events: events.clone(),
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
        tracing::info!(group, topic = q.topic, "joining the consumer group");
        Ok(KafkaMember {
            consumer,
            topic: q.topic.clone(),
            events,
            held: None,
            returned: BTreeMap::new(),
            last_lag: None,
        })
    }

    /// Notes that `r` goes to the loop now.
    fn hand(&mut self, r: Polled, out: &mut Vec<Polled>) {
        lock(&self.events).at_end.remove(&(r.partition as i32));
        self.returned.insert(r.partition, r.offset + 1);
        out.push(r);
    }
}

impl RecordSource for KafkaMember {
    fn rebalance(&mut self) -> anyhow::Result<Vec<u32>> {
        let revoked = std::mem::take(&mut lock(&self.events).revoked);
        revoked.into_iter().map(partition).collect()
    }

    fn let_go(&mut self, partition: u32) {
        // librdkafka already stopped fetching it (the revocation).
        self.returned.remove(&partition);
    }

    fn poll(&mut self, wait: Duration, waiting: &BTreeSet<u32>) -> anyhow::Result<Vec<Polled>> {
        if !waiting.is_empty() {
            // A full sink queue: wait for it without polling (see the module doc).
            std::thread::sleep(wait);
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        if let Some(r) = self.held.take() {
            self.hand(r, &mut out);
        }
        let mut wait = if out.is_empty() { wait } else { Duration::ZERO };
        while out.len() < MAX_BATCH {
            let polled = match self.consumer.poll(wait) {
                None => break,
                Some(Ok(m)) => Some(polled(&m)?),
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    lock(&self.events).at_end.insert(p);
                    None
                }
                Some(Err(e)) => {
                    if let Some((code, why)) = self.consumer.client().fatal_error() {
                        bail!("the Kafka consumer failed: {code}: {why}");
                    }
                    tracing::warn!("kafka consumer: {e}");
                    break;
                }
            };
            let rebalanced = !lock(&self.events).revoked.is_empty();
            if let Some(r) = polled {
                if rebalanced {
                    self.held = Some(r);
                } else {
                    self.hand(r, &mut out);
                    // Take what is already fetched without waiting.
                    wait = Duration::ZERO;
                }
            }
            if rebalanced {
                break;
            }
        }
        Ok(out)
    }

    fn is_end(&mut self, partition: u32, next: u64) -> bool {
        lock(&self.events).at_end.contains(&(partition as i32))
            && self.returned.get(&partition) == Some(&next)
    }

    fn caught_up(&mut self) -> anyhow::Result<bool> {
        let Ok(assignment) = self.consumer.assignment() else {
            return Ok(false);
        };
        let e = lock(&self.events);
        Ok(e.assigned_once
            && assignment
                .elements()
                .iter()
                .all(|p| e.at_end.contains(&p.partition())))
    }

    /// Commits synchronously. A failure (typically a rebalance that moved
    /// the partition) only means the new owner reads those records again:
    /// at-least-once, so it is logged, not fatal.
    fn commit(&mut self, offsets: &BTreeMap<u32, u64>) -> anyhow::Result<()> {
        let mut tpl = TopicPartitionList::new();
        for (&p, &next) in offsets {
            let (Ok(p), Ok(next)) = (i32::try_from(p), i64::try_from(next)) else {
                bail!("offset {next} of partition {p} is out of Kafka's range");
            };
            if let Err(e) = tpl.add_partition_offset(&self.topic, p, Offset::Offset(next)) {
                tracing::warn!(partition = p, "kafka commit: {e}");
            }
        }
        if let Err(e) = self.consumer.commit(&tpl, CommitMode::Sync) {
            tracing::warn!("committing offsets failed ({e}); they are read again after a restart");
        }
        Ok(())
    }

    /// Records between what was committed and each assigned partition's
    /// end, every [`LAG_EVERY`].
    fn lag(&mut self, committed: &BTreeMap<u32, u64>) -> anyhow::Result<Vec<(u32, i64)>> {
        if self.last_lag.is_some_and(|t| t.elapsed() < LAG_EVERY) {
            return Ok(Vec::new());
        }
        self.last_lag = Some(Instant::now());
        let Ok(assignment) = self.consumer.assignment() else {
            return Ok(Vec::new());
        };
        let mut lag = Vec::new();
        for e in assignment.elements() {
            let p = e.partition();
            let Ok((low, high)) =
                self.consumer
                    .fetch_watermarks(&self.topic, p, Duration::from_secs(1))
            else {
                continue;
            };
            let p = partition(p)?;
            let done = committed
                .get(&p)
                .and_then(|&n| i64::try_from(n).ok())
                .or_else(|| e.offset().to_raw())
                .unwrap_or(low)
                .max(low);
            lag.push((p, (high - done).max(0)));
        }
        Ok(lag)
    }

    fn leave(self) {
        // Dropping the consumer leaves the group, so the others rebalance now.
        drop(self.consumer);
    }
}

/// A message as the loop takes it.
fn polled(m: &BorrowedMessage<'_>) -> anyhow::Result<Polled> {
    let Ok(offset) = u64::try_from(m.offset()) else {
        bail!("Kafka returned a message at offset {}", m.offset());
    };
    Ok(Polled {
        partition: partition(m.partition())?,
        offset,
        value: Bytes::copy_from_slice(m.payload().unwrap_or_default()),
        // Kafka topics hold standalone records: nothing to learn first.
        learn: false,
    })
}

/// Kafka's partition numbers are never negative; one that is, is a broken
/// client, not something to clamp.
fn partition(p: i32) -> anyhow::Result<u32> {
    u32::try_from(p).map_err(|_| anyhow::anyhow!("Kafka reported partition {p}"))
}

fn lock(events: &Mutex<GroupEvents>) -> MutexGuard<'_, GroupEvents> {
    crate::sync::lock(events)
}
