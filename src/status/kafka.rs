//! The status figures of `serve --queue kafka`, read from the brokers by a
//! thread of their own every [`REFRESH`], never on a request: every call
//! has a bounded timeout ([`CALL_TIMEOUT`]), and `GET /api/status` only
//! copies the last round's figures, so a slow or absent broker makes the
//! page say "not answering since …" instead of hanging it.
//!
//! Per partition of the topic: the low and high watermarks, and the
//! timestamp of the record at the low one (read by a consumer that is
//! assigned the partition, never subscribed). Per consumer group: the
//! committed offsets, read by a consumer whose `group.id` is the group's
//! but which never subscribes, so it never joins the group and cannot
//! trigger a rebalance; the lag's age is the timestamp of the first record
//! after the commit, read the same way as the partitions'.
//!
//! Which groups: the broker's group list (librdkafka's list, which asks
//! every broker for its groups and then describes them), filtered to
//! consumer groups that have a member assigned a partition of the topic or
//! an offset committed on it; plus every group named by
//! `serve --status-group`. A broker that cannot list or describe groups
//! (tansu 0.6 closes the connection on DescribeGroups) leaves the named
//! groups, whose members are then unknown.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::groups::GroupList;
use rdkafka::message::Message as _;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use super::{age_seconds, unix_ms, GroupPartition, GroupReport, PartitionReport};
use crate::queue::kafka::config::client_config;
use crate::queue::kafka::KafkaProperty;

/// Pause between two rounds of questions to the brokers.
pub const REFRESH: Duration = Duration::from_secs(3);
/// Longest wait for one answer (metadata, one partition's watermarks, the
/// group list, one group's offsets).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for the records whose timestamps one round reads (per
/// set: the partitions' first records, then each group's first waiting).
pub const PEEK_BUDGET: Duration = Duration::from_secs(2);

/// Where the Kafka figures come from.
#[derive(Clone, Debug)]
pub struct KafkaSource {
    pub brokers: String,
    pub topic: String,
    /// `-X` properties (security settings apply to these clients too).
    pub properties: Vec<KafkaProperty>,
    /// `serve --status-group`: groups shown whether or not the broker
    /// lists them.
    pub groups: Vec<String>,
}

/// One round's answers.
#[derive(Debug, Clone)]
struct Figures {
    at_ms: i64,
    partitions: Vec<PartitionFigures>,
    groups: Vec<GroupFigures>,
    /// Why the broker's group list is not used (None: it is).
    group_list_error: Option<String>,
}

#[derive(Debug, Clone)]
struct PartitionFigures {
    partition: u32,
    low: u64,
    high: u64,
    /// Timestamp of the record at `low` (None: empty, or not read: see
    /// `peek_error`).
    oldest_ms: Option<i64>,
}

#[derive(Debug, Clone)]
struct GroupFigures {
    name: String,
    /// From the broker's group list (None: the broker did not list groups).
    listed: Option<Listed>,
    /// Per partition: the committed next offset (None: no commit), and the
    /// timestamp of the first record at or after it (when records wait).
    committed: Vec<Option<u64>>,
    waiting_since_ms: BTreeMap<u32, i64>,
    /// The committed offsets could not be read.
    error: Option<String>,
}

#[derive(Debug, Clone)]
struct Listed {
    state: String,
    members: usize,
    /// Partitions of the topic some member is assigned.
    owned: BTreeSet<u32>,
}

/// What the last rounds found, for the report.
#[derive(Debug, Default)]
struct State {
    figures: Option<Figures>,
    /// The first failed round of the current outage (ms since the epoch).
    failing_since_ms: Option<i64>,
    error: Option<String>,
    /// Why some timestamps were not read in the last round.
    peek_error: Option<String>,
}

/// The Kafka half of the status figures: the last round, refreshed by
/// [`KafkaWatch::start`]'s thread.
pub struct KafkaWatch {
    source: KafkaSource,
    state: Mutex<State>,
}

/// The `kafka` object of `/api/status`.
#[derive(Debug, Serialize)]
pub struct KafkaReport {
    pub brokers: String,
    pub topic: String,
    /// The last round got its answers.
    pub answering: bool,
    /// When the figures shown were read (none: never).
    pub figures_at_ms: Option<i64>,
    /// The first failed round of the current outage.
    pub not_answering_since_ms: Option<i64>,
    pub error: Option<String>,
    /// `broker` (its group list) or `status-group` (the names given to
    /// `serve --status-group` only: the broker did not list its groups).
    pub groups_from: &'static str,
    pub group_list_error: Option<String>,
    pub refresh_seconds: u64,
}

/// The Kafka parts of the report.
pub struct KafkaParts {
    pub partitions: Vec<PartitionReport>,
    pub groups: Vec<GroupReport>,
    pub summary: KafkaReport,
    pub notes: Vec<String>,
}

impl KafkaWatch {
    /// Starts the thread that asks the brokers; it ends once the watch is
    /// dropped.
    pub fn start(source: KafkaSource) -> std::io::Result<Arc<KafkaWatch>> {
        let watch = Arc::new(KafkaWatch {
            source,
            state: Mutex::new(State::default()),
        });
        let weak = Arc::downgrade(&watch);
        std::thread::Builder::new()
            .name("status-kafka".into())
            .spawn(move || run(weak))?;
        Ok(watch)
    }

    /// The last round's figures, as the report shows them at `now_ms`.
    pub fn report(&self, now_ms: i64) -> KafkaParts {
        let state = crate::sync::lock(&self.state);
        let mut notes = vec![format!(
            "Queue: Kafka topic {} at {}. Bytes on disk are unknown: the records are on the \
             brokers' disks, which this server cannot see; the local disk holds only the spill.",
            self.source.topic, self.source.brokers
        )];
        if let Some(e) = &state.peek_error {
            notes.push(format!(
                "Some record ages are unknown: their records could not be read within {} s \
                 ({e}).",
                PEEK_BUDGET.as_secs()
            ));
        }
        let (mut partitions, mut groups) = (Vec::new(), Vec::new());
        let mut group_list_error = None;
        if let Some(f) = &state.figures {
            group_list_error = f.group_list_error.clone();
            if let Some(e) = &f.group_list_error {
                notes.push(format!(
                    "The broker did not list its consumer groups ({e}): the groups shown are \
                     those named by --status-group, and whether their members are alive is \
                     unknown."
                ));
            }
            partitions = f.partitions.iter().map(|p| p.report(now_ms)).collect();
            for g in &f.groups {
                if let Some(e) = &g.error {
                    notes.push(format!("Group {}: its offsets were not read: {e}.", g.name));
                }
                groups.push(g.report(&f.partitions, now_ms));
            }
        }
        KafkaParts {
            partitions,
            groups,
            summary: KafkaReport {
                brokers: self.source.brokers.clone(),
                topic: self.source.topic.clone(),
                answering: state.error.is_none() && state.figures.is_some(),
                figures_at_ms: state.figures.as_ref().map(|f| f.at_ms),
                not_answering_since_ms: state.failing_since_ms,
                error: state.error.clone(),
                groups_from: if group_list_error.is_some() {
                    "status-group"
                } else {
                    "broker"
                },
                group_list_error,
                refresh_seconds: REFRESH.as_secs(),
            },
            notes,
        }
    }
}

impl PartitionFigures {
    fn report(&self, now_ms: i64) -> PartitionReport {
        let records = self.high.saturating_sub(self.low);
        PartitionReport {
            partition: self.partition,
            first_offset: (records > 0).then_some(self.low),
            last_offset: (records > 0).then(|| self.high - 1),
            start_offset: self.low,
            end_offset: self.high,
            records,
            bytes_on_disk: None,
            oldest_record_age_seconds: self.oldest_ms.map(|t| age_seconds(now_ms, t)),
        }
    }
}

impl GroupFigures {
    fn report(&self, partitions: &[PartitionFigures], now_ms: i64) -> GroupReport {
        let mut out = GroupReport {
            name: self.name.clone(),
            state: self.listed.as_ref().map(|l| l.state.clone()),
            members_alive: self.listed.as_ref().map(|l| l.members),
            // Kafka forgets a member that stops heartbeating: none is
            // listed dead.
            members_dead: None,
            lag_records: 0,
            lag_seconds: Some(0.0),
            partitions: Vec::new(),
        };
        for (part, committed) in partitions.iter().zip(&self.committed) {
            let committed = *committed;
            let from = match committed {
                Some(c) => Some(c.max(part.low)),
                // Nothing in the partition: nothing waits.
                None if part.high <= part.low => Some(part.high),
                // Where the group starts depends on its auto.offset.reset.
                None => None,
            };
            let lag_records = from.map(|f| part.high.saturating_sub(f));
            let lag_seconds = match lag_records {
                Some(0) => Some(0.0),
                Some(_) => self
                    .waiting_since_ms
                    .get(&part.partition)
                    .map(|t| age_seconds(now_ms, *t)),
                None => None,
            };
            out.lag_records += lag_records.unwrap_or(0);
            out.lag_seconds = match (out.lag_seconds, lag_seconds, lag_records) {
                (Some(a), Some(b), _) => Some(a.max(b)),
                // No commit: this partition's lag is unknown, not its age.
                (a, None, None) => a,
                _ => None,
            };
            out.partitions.push(GroupPartition {
                partition: part.partition,
                committed,
                end_offset: part.high,
                deleted_unread: committed.map_or(0, |c| part.low.saturating_sub(c)),
                lag_records,
                lag_seconds,
                owner_alive: self
                    .listed
                    .as_ref()
                    .map(|l| l.owned.contains(&part.partition)),
            });
        }
        out
    }
}

/// The `group.id` of the reader: librdkafka assigns partitions only to a
/// consumer with one. It never subscribes (so never joins) nor commits, so
/// the broker never lists it.
pub const READER_GROUP: &str = "metricstream-status-reader";

/// The clients one thread keeps between rounds.
struct Clients {
    /// Metadata, watermarks, the group list and the timestamp reads.
    reader: BaseConsumer,
    /// One per group, only for `committed_offsets`.
    groups: HashMap<String, BaseConsumer>,
}

fn consumer(source: &KafkaSource, group: &str) -> Result<BaseConsumer, KafkaError> {
    let defaults = vec![
        ("client.id", "metricstream-status".to_string()),
        ("enable.auto.commit", "false".into()),
        ("enable.auto.offset.store", "false".into()),
        ("enable.partition.eof", "true".into()),
        ("allow.auto.create.topics", "false".into()),
        // A timestamp read needs one record: keep the fetches small.
        ("fetch.wait.max.ms", "100".into()),
        ("fetch.message.max.bytes", "65536".into()),
        ("queued.max.messages.kbytes", "1024".into()),
        ("reconnect.backoff.max.ms", "1000".into()),
        ("group.id", group.to_string()),
    ];
    client_config(&source.brokers, &defaults, &source.properties).create()
}

fn run(watch: Weak<KafkaWatch>) {
    let mut clients: Option<Clients> = None;
    loop {
        let Some(w) = watch.upgrade() else { return };
        let started = unix_ms();
        let round = match clients.as_mut() {
            Some(c) => w.round(c),
            None => match consumer(&w.source, READER_GROUP) {
                Ok(reader) => {
                    let c = clients.insert(Clients {
                        reader,
                        groups: HashMap::new(),
                    });
                    w.round(c)
                }
                Err(e) => Err(format!("cannot create the Kafka client: {e}")),
            },
        };
        {
            let mut s = crate::sync::lock(&w.state);
            match round {
                Ok((figures, peek_error)) => {
                    s.figures = Some(figures);
                    s.failing_since_ms = None;
                    s.error = None;
                    s.peek_error = peek_error;
                }
                Err(e) => {
                    s.failing_since_ms.get_or_insert(started);
                    s.error = Some(e);
                }
            }
        }
        // Not holding the watch while asleep: dropping it ends the thread.
        drop(w);
        std::thread::sleep(REFRESH);
    }
}

impl KafkaWatch {
    /// One round of questions. Err: the brokers did not answer the topic's
    /// metadata or watermarks (the figures would be partial).
    fn round(&self, c: &mut Clients) -> Result<(Figures, Option<String>), String> {
        let topic = self.source.topic.as_str();
        let md = c
            .reader
            .fetch_metadata(Some(topic), CALL_TIMEOUT)
            .map_err(|e| format!("metadata of {topic}: {e}"))?;
        let t = md
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .ok_or_else(|| format!("the broker does not know topic {topic}"))?;
        if let Some(e) = t.error() {
            return Err(format!("topic {topic}: {}", RDKafkaErrorCode::from(e)));
        }
        let mut ids: Vec<u32> = t
            .partitions()
            .iter()
            .filter_map(|p| u32::try_from(p.id()).ok())
            .collect();
        ids.sort_unstable();
        let mut partitions = Vec::with_capacity(ids.len());
        for p in ids {
            let (low, high) = c
                .reader
                .fetch_watermarks(topic, p as i32, CALL_TIMEOUT)
                .map_err(|e| format!("watermarks of {topic}/{p}: {e}"))?;
            partitions.push(PartitionFigures {
                partition: p,
                low: low.max(0) as u64,
                high: high.max(0) as u64,
                oldest_ms: None,
            });
        }

        // The groups: the broker's list, else (and also) the named ones.
        let (listed, group_list_error) = match c.reader.fetch_group_list(None, CALL_TIMEOUT) {
            Ok(list) => (Some(consumer_groups(&list, topic)), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let mut names: BTreeSet<String> = self.source.groups.iter().cloned().collect();
        if let Some(l) = &listed {
            names.extend(l.keys().cloned());
        }
        c.groups.retain(|name, _| names.contains(name));
        let mut groups = Vec::new();
        for name in names {
            let listed_group = listed.as_ref().and_then(|l| l.get(&name)).cloned();
            let mut g = GroupFigures {
                name: name.clone(),
                listed: listed_group.or_else(|| {
                    // Listed groups are complete: a named group missing
                    // from the list has no members.
                    listed.as_ref().map(|_| Listed {
                        state: "Dead".into(),
                        members: 0,
                        owned: BTreeSet::new(),
                    })
                }),
                committed: vec![None; partitions.len()],
                waiting_since_ms: BTreeMap::new(),
                error: None,
            };
            match committed(&self.source, &mut c.groups, &name, topic, &partitions) {
                Ok(offsets) => g.committed = offsets,
                Err(e) => g.error = Some(e),
            }
            let named = self.source.groups.contains(&name);
            let consumes = g.committed.iter().any(Option::is_some)
                || g.listed.as_ref().is_some_and(|l| !l.owned.is_empty());
            if named || consumes {
                groups.push(g);
            }
        }

        // Timestamps: the partitions' first records, then each group's
        // first waiting one (one offset per partition per assignment).
        let mut peek_error = None;
        let firsts: Vec<(u32, u64)> = partitions
            .iter()
            .filter(|p| p.high > p.low)
            .map(|p| (p.partition, p.low))
            .collect();
        match peek(&c.reader, topic, &firsts) {
            Ok(ts) => {
                for p in &mut partitions {
                    p.oldest_ms = ts.get(&p.partition).copied();
                }
            }
            Err(e) => peek_error = Some(e),
        }
        for g in &mut groups {
            let waiting: Vec<(u32, u64)> = partitions
                .iter()
                .zip(&g.committed)
                .filter_map(|(p, c)| {
                    let from = (*c)?.max(p.low);
                    (from < p.high).then_some((p.partition, from))
                })
                .collect();
            match peek(&c.reader, topic, &waiting) {
                Ok(ts) => g.waiting_since_ms = ts,
                Err(e) => peek_error = Some(e),
            }
        }
        if peek_error.is_none() {
            let missing = partitions
                .iter()
                .filter(|p| p.high > p.low && p.oldest_ms.is_none())
                .count();
            if missing > 0 {
                peek_error = Some(format!(
                    "{missing} partition(s) gave no record with a timestamp in time"
                ));
            }
        }
        Ok((
            Figures {
                at_ms: unix_ms(),
                partitions,
                groups,
                group_list_error,
            },
            peek_error,
        ))
    }
}

/// The consumer groups of the list that concern `topic`, by name (the
/// caller keeps those without an assignment only if they committed on it).
fn consumer_groups(list: &GroupList, topic: &str) -> BTreeMap<String, Listed> {
    list.groups()
        .iter()
        .filter(|g| g.protocol_type() == "consumer" || g.protocol_type().is_empty())
        .filter(|g| g.name() != READER_GROUP)
        .map(|g| {
            let owned = g
                .members()
                .iter()
                .filter_map(|m| m.assignment())
                .flat_map(|a| assigned_partitions(a, topic))
                .collect();
            (
                g.name().to_string(),
                Listed {
                    state: g.state().to_string(),
                    members: g.members().len(),
                    owned,
                },
            )
        })
        .collect()
}

/// The partitions of `topic` in a consumer protocol assignment (version
/// i16, then [topic: string, partitions: [i32]], then user data). A
/// malformed one (another client's protocol) gives none.
fn assigned_partitions(bytes: &[u8], topic: &str) -> Vec<u32> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if b.len() < n {
            return None;
        }
        let (head, tail) = b.split_at(n);
        *b = tail;
        Some(head)
    }
    fn i16_(b: &mut &[u8]) -> Option<i16> {
        take(b, 2).map(|s| i16::from_be_bytes([s[0], s[1]]))
    }
    fn i32_(b: &mut &[u8]) -> Option<i32> {
        take(b, 4).map(|s| i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn parse(mut b: &[u8], topic: &str) -> Option<Vec<u32>> {
        let b = &mut b;
        i16_(b)?;
        let mut out = Vec::new();
        for _ in 0..i32_(b)?.max(0) {
            let len = usize::try_from(i16_(b)?).ok()?;
            let name = take(b, len)?;
            let count = i32_(b)?.max(0);
            for _ in 0..count {
                let p = i32_(b)?;
                if name == topic.as_bytes() {
                    out.push(u32::try_from(p).ok()?);
                }
            }
        }
        Some(out)
    }
    parse(bytes, topic).unwrap_or_default()
}

/// A group's committed offsets on the topic, per partition, read by a
/// consumer with the group's id that never subscribes.
fn committed(
    source: &KafkaSource,
    clients: &mut HashMap<String, BaseConsumer>,
    group: &str,
    topic: &str,
    partitions: &[PartitionFigures],
) -> Result<Vec<Option<u64>>, String> {
    let client = match clients.get(group) {
        Some(c) => c,
        None => {
            let c = consumer(source, group).map_err(|e| e.to_string())?;
            clients.entry(group.to_string()).or_insert(c)
        }
    };
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition(topic, p.partition as i32);
    }
    let got = client
        .committed_offsets(tpl, CALL_TIMEOUT)
        .map_err(|e| e.to_string())?;
    partitions
        .iter()
        .map(|p| {
            let Some(e) = got.find_partition(topic, p.partition as i32) else {
                return Err(format!("the broker left out partition {}", p.partition));
            };
            if let Err(err) = e.error() {
                return Err(format!("partition {}: {err}", p.partition));
            }
            Ok(match e.offset() {
                Offset::Offset(o) if o >= 0 => Some(o as u64),
                _ => None,
            })
        })
        .collect()
}

/// The timestamp (ms) of the first record at or after each given offset:
/// the reader is assigned exactly those (partition, offset) pairs, reads
/// until it has one record of each or [`PEEK_BUDGET`] is over, and is
/// unassigned. A partition missing from the answer gave no record in time
/// (or one without a timestamp).
fn peek(
    reader: &BaseConsumer,
    topic: &str,
    wanted: &[(u32, u64)],
) -> Result<BTreeMap<u32, i64>, String> {
    let mut out = BTreeMap::new();
    if wanted.is_empty() {
        return Ok(out);
    }
    let mut tpl = TopicPartitionList::new();
    for (p, o) in wanted {
        tpl.add_partition_offset(topic, *p as i32, Offset::Offset(*o as i64))
            .map_err(|e| e.to_string())?;
    }
    reader.assign(&tpl).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + PEEK_BUDGET;
    let mut done: BTreeSet<u32> = BTreeSet::new();
    let mut last_error = None;
    while done.len() < wanted.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match reader.poll(left.min(Duration::from_millis(200))) {
            Some(Ok(m)) => {
                let Ok(p) = u32::try_from(m.partition()) else {
                    continue;
                };
                if done.insert(p) {
                    if let Some(ts) = m.timestamp().to_millis() {
                        out.insert(p, ts);
                    }
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                // Emptied by retention between the watermarks and now.
                if let Ok(p) = u32::try_from(p) {
                    done.insert(p);
                }
            }
            Some(Err(e)) => last_error = Some(e.to_string()),
            None => {}
        }
    }
    reader.unassign().map_err(|e| e.to_string())?;
    match last_error {
        Some(e) if done.len() < wanted.len() => Err(e),
        _ => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(topics: &[(&str, &[i32])]) -> Vec<u8> {
        let mut b = vec![0, 1];
        b.extend((topics.len() as i32).to_be_bytes());
        for (t, ps) in topics {
            b.extend((t.len() as i16).to_be_bytes());
            b.extend(t.as_bytes());
            b.extend((ps.len() as i32).to_be_bytes());
            for p in *ps {
                b.extend(p.to_be_bytes());
            }
        }
        b.extend((-1i32).to_be_bytes());
        b
    }

    #[test]
    fn assignments_give_the_topics_partitions() {
        let a = assignment(&[("other", &[0, 1]), ("metrics", &[2, 5])]);
        assert_eq!(assigned_partitions(&a, "metrics"), vec![2, 5]);
        assert_eq!(assigned_partitions(&a, "absent"), Vec::<u32>::new());
        // Cut short: another protocol's bytes give nothing, not a panic.
        assert_eq!(assigned_partitions(&a[..9], "metrics"), Vec::<u32>::new());
        assert_eq!(assigned_partitions(&[], "metrics"), Vec::<u32>::new());
    }

    fn part(partition: u32, low: u64, high: u64) -> PartitionFigures {
        PartitionFigures {
            partition,
            low,
            high,
            oldest_ms: Some(1_000),
        }
    }

    #[test]
    fn lag_is_records_after_the_commit_and_the_age_of_the_first_of_them() {
        let parts = [part(0, 0, 10), part(1, 5, 8), part(2, 0, 0), part(3, 0, 4)];
        let g = GroupFigures {
            name: "g".into(),
            listed: None,
            committed: vec![Some(7), Some(2), None, None],
            waiting_since_ms: BTreeMap::from([(0, 4_000), (1, 9_000)]),
            error: None,
        };
        let r = g.report(&parts, 10_000);
        let lags: Vec<_> = r.partitions.iter().map(|p| p.lag_records).collect();
        // Partition 1: committed below the low watermark: 3 deleted unread.
        assert_eq!(lags, vec![Some(3), Some(3), Some(0), None]);
        assert_eq!(r.partitions[1].deleted_unread, 3);
        assert_eq!(r.lag_records, 6);
        assert_eq!(r.partitions[0].lag_seconds, Some(6.0));
        assert_eq!(r.lag_seconds, Some(6.0));
        assert_eq!(r.members_alive, None);
        assert_eq!(r.partitions[0].owner_alive, None);
        // A waiting partition whose record was not read: the age is unknown.
        let g = GroupFigures {
            waiting_since_ms: BTreeMap::from([(0, 4_000)]),
            ..g
        };
        assert_eq!(g.report(&parts, 10_000).lag_seconds, None);
        let p = parts[2].report(10_000);
        assert_eq!(
            (p.records, p.first_offset, p.bytes_on_disk),
            (0, None, None)
        );
        assert_eq!(parts[0].report(10_000).last_offset, Some(9));
    }
}
