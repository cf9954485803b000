//! `metricstream consume`: a consumer-group member that hands what it reads
//! to a sink (JSON lines on stdout, or a time-series store, see
//! [`crate::sink`]) and commits a partition's offset only after the sink
//! acknowledged everything before it (at-least-once: a crash between the
//! two repeats, never skips). The embedded log's groups are in [`group`];
//! Kafka's own consumer groups in [`kafka`]. Both feed the same sinks.
//!
//! SIGTERM or SIGINT: stop reading, let the sink finish or abandon what is
//! in flight (within its shutdown timeout), commit what was acknowledged,
//! exit 0.

pub mod group;
pub mod kafka;
mod signals;

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::data_dir::{partition_dir, stored_partitions};
use crate::log::{LogReader, Record};
use crate::sink::metrics::ConsumeMetrics;
use crate::sink::{self, Output, SinkConfig, SinkKind};
use group::GroupMember;
pub use kafka::KafkaSource;

/// How often membership is re-read (joins, leaves, deaths).
const REBALANCE_EVERY: Duration = Duration::from_millis(500);
const READ_BYTES: usize = 1 << 20;
/// Acknowledged offsets are committed this often (a commit is two
/// fsyncs), and at once when a partition is caught up or let go. A crash
/// re-sends at most this much more (at-least-once either way).
const COMMIT_EVERY: Duration = Duration::from_millis(200);

/// What `metricstream consume` was asked to do.
#[derive(Debug, Clone)]
pub struct ConsumeConfig {
    /// Members of one group split the partitions.
    pub group: String,
    pub source: Source,
    /// With no committed offset, start at the oldest message (else the newest).
    pub from_beginning: bool,
    /// Exit once caught up with every partition this member owns.
    pub exit_at_end: bool,
    /// How often to look for new messages and group changes.
    pub poll_interval: Duration,
    /// Where the records go.
    pub sink: SinkConfig,
    /// The dead-letter file and the sinks' state (with Kafka too).
    pub data_dir: PathBuf,
}

/// The queue to read.
#[derive(Debug, Clone)]
pub enum Source {
    /// The embedded log in this data directory.
    File(PathBuf),
    Kafka(KafkaSource),
}

struct Owned {
    _lock: File,
    reader: LogReader,
    /// Next offset to hand to the sink.
    read: u64,
    /// Read from the log, not yet taken by the sink (its queue was full).
    unsent: VecDeque<Record>,
    /// Next offset committed.
    committed: u64,
}

pub fn run(cfg: &ConsumeConfig) -> anyhow::Result<()> {
    // Decoding and encoding run on these threads beside the requests in
    // flight; more threads than cores keeps a busy batcher from delaying
    // the answer another partition's sender is waiting for.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .thread_name("sink")
        .enable_all()
        .build()?;
    let stop = Arc::new(AtomicBool::new(false));
    signals::watch(rt.handle(), stop.clone())?;
    let metrics = Arc::new(ConsumeMetrics::new()?);
    if let Some(addr) = cfg.sink.metrics_listen {
        let listener = sink::metrics::bind(addr)
            .map_err(|e| anyhow::anyhow!("--metrics-listen {addr}: {e}"))?;
        let _enter = rt.enter();
        let listener = tokio::net::TcpListener::from_std(listener)?;
        tracing::info!(listen = %addr, "consumer metrics on /metrics");
        rt.spawn(sink::metrics::serve(listener, metrics.clone()));
    }
    if cfg.sink.kind != SinkKind::Stdout {
        rt.spawn(signals::progress(metrics.clone()));
    }
    let mut output = sink::open(
        &cfg.sink,
        &cfg.group,
        &cfg.data_dir,
        rt.handle(),
        metrics.clone(),
    )?;
    let result = match &cfg.source {
        Source::File(data_dir) => run_file(cfg, data_dir, output.as_mut(), &stop, &metrics),
        Source::Kafka(kafka) => kafka::run(cfg, kafka, output.as_mut(), &stop, &metrics),
    };
    drop(output);
    if cfg.sink.kind != SinkKind::Stdout {
        tracing::info!(
            sent = metrics.sent.get(),
            replayed = metrics.replayed.get(),
            dead_lettered = metrics.dead_lettered.get(),
            retried = metrics.retried.get(),
            "consumer stopped"
        );
    }
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}

fn run_file(
    cfg: &ConsumeConfig,
    data_dir: &Path,
    output: &mut dyn Output,
    stop: &AtomicBool,
    metrics: &ConsumeMetrics,
) -> anyhow::Result<()> {
    let partitions = stored_partitions(data_dir)?.ok_or_else(|| {
        anyhow::anyhow!(
            "no queue in {} (start `metricstream serve --data-dir {}` first)",
            data_dir.display(),
            data_dir.display()
        )
    })?;
    let member = GroupMember::join(data_dir, &cfg.group, partitions)?;
    tracing::info!(
        member = member.id(),
        group = cfg.group,
        "joined consumer group"
    );
    let mut owned: BTreeMap<u32, Owned> = BTreeMap::new();
    let mut assigned = Default::default();
    let mut last_rebalance: Option<Instant> = None;
    // Acknowledged, not yet committed: (partition → next offset).
    let mut acked: BTreeMap<u32, u64> = BTreeMap::new();
    let mut last_commit = Instant::now();

    while !stop.load(Ordering::Relaxed) {
        if last_rebalance.is_none_or(|t| t.elapsed() >= REBALANCE_EVERY) {
            assigned = member.assignment()?;
            let gone: Vec<u32> = owned
                .keys()
                .filter(|p| !assigned.contains(p))
                .copied()
                .collect();
            if !gone.is_empty() {
                // Commit what is acknowledged before letting go of the lock.
                take_acks(&mut acked, output.acked()?);
                commit_acked(&mut acked, &member, &mut owned, |_, _| true)?;
                for p in gone {
                    output.release(p);
                    owned.remove(&p);
                }
            }
            for &p in &assigned {
                if owned.contains_key(&p) {
                    continue;
                }
                if let Some(lock) = member.try_claim(p)? {
                    let mut reader = LogReader::open(&partition_dir(data_dir, p))?;
                    let next = match member.committed(p)? {
                        Some(n) => n,
                        None if cfg.from_beginning => reader.start_offset()?,
                        None => reader.high_watermark()?,
                    };
                    tracing::info!(partition = p, next, "reading partition");
                    owned.insert(
                        p,
                        Owned {
                            _lock: lock,
                            reader,
                            read: next,
                            unsent: VecDeque::new(),
                            committed: next,
                        },
                    );
                }
            }
            last_rebalance = Some(Instant::now());
        }

        let mut progressed = false;
        for (&p, o) in owned.iter_mut() {
            if o.unsent.is_empty() {
                o.unsent = o.reader.read(o.read, READ_BYTES)?.into();
            }
            // A full sink queue: the rest is offered again next time.
            while !o.unsent.is_empty() && output.has_room(p)? {
                let Some(r) = o.unsent.pop_front() else { break };
                o.read = r.offset + 1;
                output.submit(p, r.offset, r.value)?;
                progressed = true;
            }
        }
        take_acks(&mut acked, output.acked()?);
        let due = last_commit.elapsed() >= COMMIT_EVERY;
        let moved = commit_acked(&mut acked, &member, &mut owned, |o, next| {
            due || o.reader.high_watermark().is_ok_and(|end| next >= end)
        })?;
        if moved && due {
            last_commit = Instant::now();
        }
        progressed |= moved;
        let mut caught_up = owned.len() == assigned.len();
        for (p, o) in &owned {
            let end = o.reader.high_watermark()?;
            metrics
                .lag_records
                .with_label_values(&[&p.to_string()])
                .set(end.saturating_sub(o.committed) as i64);
            if o.committed < end {
                caught_up = false;
            }
        }
        if cfg.exit_at_end && caught_up && !progressed {
            break;
        }
        if !progressed {
            // A sink queue that is full drains fast: look again soon.
            let backlog = owned.values().any(|o| !o.unsent.is_empty());
            let nap = if backlog {
                Duration::from_millis(5)
            } else {
                Duration::from_millis(50)
            };
            std::thread::sleep(cfg.poll_interval.min(nap));
        }
    }
    take_acks(&mut acked, output.close()?);
    commit_acked(&mut acked, &member, &mut owned, |_, _| true)?;
    drop(owned);
    member.leave();
    Ok(())
}

/// Adds the sink's latest acknowledgements to `acked`.
fn take_acks(acked: &mut BTreeMap<u32, u64>, acks: Vec<(u32, u64)>) {
    for (p, next) in acks {
        let e = acked.entry(p).or_insert(next);
        *e = (*e).max(next);
    }
}

/// Commits the acknowledged offsets `now` says to, of partitions still
/// owned (the others' are dropped: not ours to commit); true if any moved.
fn commit_acked(
    acked: &mut BTreeMap<u32, u64>,
    member: &GroupMember,
    owned: &mut BTreeMap<u32, Owned>,
    now: impl Fn(&Owned, u64) -> bool,
) -> anyhow::Result<bool> {
    let mut moved = false;
    let mut keep = BTreeMap::new();
    for (p, next) in std::mem::take(acked) {
        let Some(o) = owned.get_mut(&p) else { continue };
        if next <= o.committed {
            continue;
        }
        if !now(o, next) {
            keep.insert(p, next);
            continue;
        }
        member.commit(p, next)?;
        o.committed = next;
        moved = true;
    }
    *acked = keep;
    Ok(moved)
}
