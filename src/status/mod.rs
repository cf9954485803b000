//! The figures of the status page (`GET /api/status`), gathered in one
//! place below the HTTP layer: what flows in per protocol (from the
//! telemetry counters, through a bounded ring of per-second snapshots,
//! [`rates`]), what waits in each partition of the embedded log, how far
//! behind each consumer group is ([`groups`]), the disk ([`disk`]) and the
//! dead-letter files. With Kafka as the queue, the partitions and groups
//! come from the brokers, asked by a thread of their own ([`kafka`]).
//!
//! Everything is read from the data directory the way a separate process
//! would (log readers, group files, `/proc/locks`), never from the log
//! writer's memory: the writer thread is the request path's bottleneck and
//! is not slowed down by a page somebody left open.

pub mod disk;
pub mod groups;
pub mod kafka;
pub mod rates;

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus::core::Collector;
use serde::Serialize;

use crate::data_dir;
use crate::log::LogReader;
use crate::queue::AckMode;
use crate::telemetry::{Protocol, Telemetry};
use kafka::{KafkaReport, KafkaSource, KafkaWatch};
use rates::{Rates, Snapshot};

/// Which queue the server writes.
#[derive(Clone, Debug)]
pub enum Backend {
    /// The embedded log in the data directory.
    Embedded,
    /// A Kafka cluster: partitions and groups live on the brokers.
    Kafka(KafkaSource),
}

/// What the status figures need to know of the server's configuration.
#[derive(Clone, Debug)]
pub struct StatusConfig {
    pub data_dir: PathBuf,
    pub partitions: u32,
    pub backend: Backend,
    pub ack: AckMode,
    /// `--retention-bytes` per partition, `--retention` (None = off).
    pub retention_bytes: Option<u64>,
    pub retention: Option<Duration>,
    pub segment_bytes: u64,
}

/// The status figures' source: the configuration, the telemetry, the ring.
pub struct Status {
    config: StatusConfig,
    telemetry: Arc<Telemetry>,
    rates: Rates,
    started: Instant,
    /// With Kafka: the brokers' figures, once [`Status::spawn_sampler`]
    /// has started their thread.
    kafka: OnceLock<Arc<KafkaWatch>>,
}

impl Status {
    pub fn new(config: StatusConfig, telemetry: Arc<Telemetry>) -> Arc<Status> {
        Arc::new(Status {
            config,
            telemetry,
            rates: Rates::default(),
            started: Instant::now(),
            kafka: OnceLock::new(),
        })
    }

    /// Takes a snapshot every second, for as long as the runtime runs. The
    /// log's size is read from the file system in a blocking thread. With
    /// Kafka, also starts the thread that asks the brokers.
    pub fn spawn_sampler(self: &Arc<Status>) -> tokio::task::JoinHandle<()> {
        if let Backend::Kafka(source) = &self.config.backend {
            if self.kafka.get().is_none() {
                match KafkaWatch::start(source.clone()) {
                    // Only this call sets it: a second call finds it set.
                    Ok(w) => {
                        let _ = self.kafka.set(w);
                    }
                    Err(e) => tracing::error!("cannot start the status page's Kafka thread: {e}"),
                }
            }
        }
        let status = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut sizes: Vec<u64> = Vec::new();
            let mut growth = 0u64;
            loop {
                tick.tick().await;
                let s = status.clone();
                let prev = std::mem::take(&mut sizes);
                let Ok((now, grown)) = tokio::task::spawn_blocking(move || s.log_sizes(prev)).await
                else {
                    // The blocking task panicked: keep sampling the counters.
                    continue;
                };
                sizes = now;
                growth += grown;
                status.rates.push(status.snapshot(growth));
            }
        })
    }

    fn snapshot(&self, log_growth: u64) -> Snapshot {
        let mut snap = Snapshot {
            at: Instant::now(),
            samples: [0; 4],
            requests: [0; 4],
            log_growth,
        };
        for p in Protocol::ALL {
            let i = rates::index(p);
            snap.samples[i] = self
                .telemetry
                .samples_received
                .with_label_values(&[p.as_str()])
                .get();
        }
        for (protocol, _, count) in self.requests_by_status() {
            if let Some(p) = Protocol::ALL.iter().find(|p| p.as_str() == protocol) {
                snap.requests[rates::index(*p)] += count;
            }
        }
        snap
    }

    /// Each partition's bytes on disk now, and how much they grew since
    /// `prev` (growth only: retention's deletions are not subtracted).
    fn log_sizes(&self, prev: Vec<u64>) -> (Vec<u64>, u64) {
        if !matches!(self.config.backend, Backend::Embedded) {
            return (prev, 0);
        }
        let now: Vec<u64> = (0..self.config.partitions)
            .map(|p| {
                let dir = data_dir::partition_dir(&self.config.data_dir, p);
                // A partition that cannot be read now counts as unchanged.
                disk::allocated_bytes(&dir)
                    .unwrap_or_else(|_| prev.get(p as usize).copied().unwrap_or(0))
            })
            .collect();
        let grown = now
            .iter()
            .zip(prev.iter().chain(std::iter::repeat(&0)))
            .map(|(n, p)| n.saturating_sub(*p))
            .sum();
        // The first sample has nothing to compare with: no growth.
        (now, if prev.is_empty() { 0 } else { grown })
    }

    /// `(protocol, status, count)` of every answered request so far.
    fn requests_by_status(&self) -> Vec<(String, String, u64)> {
        let mut out = Vec::new();
        for family in self.telemetry.requests.collect() {
            for m in family.get_metric() {
                let label = |name: &str| {
                    m.get_label()
                        .iter()
                        .find(|l| l.name() == name)
                        .map(|l| l.value().to_string())
                        .unwrap_or_default()
                };
                let count = m.get_counter().get_value() as u64;
                out.push((label("protocol"), label("status"), count));
            }
        }
        out
    }

    /// Every figure of the page, read now. Blocking (file system).
    pub fn report(&self) -> io::Result<Report> {
        let c = &self.config;
        let now_ms = unix_ms();
        let mut notes = Vec::new();
        let rates = self.rates.protocols();
        let by_status = self.requests_by_status();
        let protocols = Protocol::ALL
            .iter()
            .zip(rates)
            .map(|(p, r)| {
                let label = [p.as_str()];
                let mut refusals: Vec<Refusal> = by_status
                    .iter()
                    .filter(|(proto, status, n)| {
                        proto == p.as_str() && *n > 0 && !status.starts_with('2')
                    })
                    .map(|(_, status, n)| Refusal {
                        status: status.clone(),
                        requests: *n,
                    })
                    .collect();
                refusals.sort_by(|a, b| a.status.cmp(&b.status));
                ProtocolReport {
                    name: p.as_str(),
                    samples_per_second: r.samples_per_second,
                    requests_per_second: r.requests_per_second,
                    samples_total: self
                        .telemetry
                        .samples_received
                        .with_label_values(&label)
                        .get(),
                    samples_refused: self
                        .telemetry
                        .samples_refused
                        .with_label_values(&label)
                        .get(),
                    samples_history: r.samples_history,
                    requests_history: r.requests_history,
                    refusals,
                }
            })
            .collect();

        let (mut partitions, mut groups) = (Vec::new(), Vec::new());
        let mut log_bytes = None;
        let mut kafka = None;
        let (write_rate, write_window) = self.rates.log_growth();
        match &c.backend {
            Backend::Embedded => {
                let mut readers = Vec::new();
                for p in 0..c.partitions {
                    let (report, reader) = partition(&c.data_dir, p, now_ms)?;
                    partitions.push(report);
                    readers.push(reader);
                }
                log_bytes = Some(partitions.iter().filter_map(|p| p.bytes_on_disk).sum());
                for g in groups::read(&c.data_dir, c.partitions)? {
                    groups.push(group(g, &partitions, &mut readers, now_ms)?);
                }
            }
            Backend::Kafka(source) => match self.kafka.get() {
                Some(watch) => {
                    let parts = watch.report(now_ms);
                    partitions = parts.partitions;
                    groups = parts.groups;
                    notes.extend(parts.notes);
                    kafka = Some(parts.summary);
                }
                None => notes.push(format!(
                    "Queue: Kafka topic {} at {}. The thread that reads the brokers' figures \
                     did not start (see the server's log).",
                    source.topic, source.brokers
                )),
            },
        }

        let data_dir_bytes = disk::allocated_bytes(&c.data_dir)?;
        let (free, total) = disk::free_and_total(&c.data_dir)?;
        let outage = match c.backend {
            Backend::Embedded => disk::outage(
                free,
                write_rate,
                c.partitions,
                c.retention_bytes,
                c.retention,
            ),
            Backend::Kafka(_) => None,
        };
        let disk = DiskReport {
            data_dir: c.data_dir.display().to_string(),
            data_dir_bytes,
            log_bytes,
            free_bytes: free,
            total_bytes: total,
            write_bytes_per_second: write_rate,
            write_window_seconds: write_window,
            outage_hours: outage.map(|o| o.0),
            outage_limit: outage.map(|o| o.1),
        };
        Ok(Report {
            version: env!("CARGO_PKG_VERSION"),
            uptime_seconds: self.started.elapsed().as_secs(),
            generated_at_ms: now_ms,
            queue: match c.backend {
                Backend::Embedded => "embedded",
                Backend::Kafka(_) => "kafka",
            },
            ack: c.ack,
            rate_window_seconds: rates::NOW_WINDOW_SECS as u64,
            sparkline_step_seconds: rates::SPARK_STEP_SECS as u64,
            protocols,
            retention: RetentionReport {
                bytes_per_partition: c.retention_bytes,
                seconds: c.retention.map(|d| d.as_secs()),
                segment_bytes: c.segment_bytes,
            },
            partitions,
            groups,
            disk,
            dead_letters: dead_letters(&c.data_dir)?,
            kafka,
            notes,
        })
    }
}

/// One partition of the embedded log, and its reader for the groups' lag.
fn partition(
    data_dir: &Path,
    p: u32,
    now_ms: i64,
) -> io::Result<(PartitionReport, Option<LogReader>)> {
    let dir = data_dir::partition_dir(data_dir, p);
    let bytes_on_disk = disk::allocated_bytes(&dir)?;
    let mut reader = match LogReader::open(&dir) {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok((PartitionReport::empty(p), None));
        }
        Err(e) => return Err(e),
    };
    let start = reader.start_offset()?;
    let end = reader.high_watermark()?.max(start);
    let oldest_ms = timestamp_at(&mut reader, start, end)?;
    Ok((
        PartitionReport {
            partition: p,
            first_offset: (end > start).then_some(start),
            last_offset: (end > start).then(|| end - 1),
            start_offset: start,
            end_offset: end,
            records: end - start,
            bytes_on_disk: Some(bytes_on_disk),
            oldest_record_age_seconds: oldest_ms.map(|t| age_seconds(now_ms, t)),
        },
        Some(reader),
    ))
}

/// The timestamp (receive time, ms) of the first record at or after
/// `offset`, if there is one below `end`.
fn timestamp_at(reader: &mut LogReader, offset: u64, end: u64) -> io::Result<Option<i64>> {
    if offset >= end {
        return Ok(None);
    }
    Ok(reader.read(offset, 1)?.first().map(|r| r.timestamp_ms))
}

/// Now, in ms since the Unix epoch (0 for a clock before it).
fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn age_seconds(now_ms: i64, then_ms: i64) -> f64 {
    (now_ms.saturating_sub(then_ms)).max(0) as f64 / 1000.0
}

/// A group's lag per partition: records between its commit and the end,
/// and the age of the oldest of them.
fn group(
    g: groups::GroupFiles,
    partitions: &[PartitionReport],
    readers: &mut [Option<LogReader>],
    now_ms: i64,
) -> io::Result<GroupReport> {
    let mut out = GroupReport {
        name: g.name,
        state: None,
        members_alive: Some(g.members_alive),
        members_dead: Some(g.members_dead),
        lag_records: 0,
        lag_seconds: Some(0.0),
        partitions: Vec::new(),
    };
    for ((committed, owned), part) in g.partitions.into_iter().zip(partitions) {
        let p = part.partition as usize;
        // Nothing in the partition: nothing waits, committed or not.
        let from = match committed {
            Some(c) => Some(c.max(part.start_offset)),
            None if part.records == 0 => Some(part.end_offset),
            None => None,
        };
        let (lag_records, lag_seconds) = match (from, readers.get_mut(p)) {
            (Some(from), Some(Some(reader))) => {
                let lag = part.end_offset.saturating_sub(from);
                let oldest = timestamp_at(reader, from, part.end_offset)?;
                (
                    Some(lag),
                    Some(oldest.map_or(0.0, |t| age_seconds(now_ms, t))),
                )
            }
            (Some(from), _) => (Some(part.end_offset.saturating_sub(from)), Some(0.0)),
            (None, _) => (None, None),
        };
        out.lag_records += lag_records.unwrap_or(0);
        out.lag_seconds = out.lag_seconds.map(|s| s.max(lag_seconds.unwrap_or(0.0)));
        out.partitions.push(GroupPartition {
            partition: part.partition,
            committed,
            end_offset: part.end_offset,
            // Committed below the log's start: retention deleted records
            // this group never read.
            deleted_unread: committed.map_or(0, |c| part.start_offset.saturating_sub(c)),
            lag_records,
            lag_seconds,
            owner_alive: Some(owned),
        });
    }
    Ok(out)
}

/// `<data-dir>/dead-letter/<group>.jsonl`: samples (lines) and bytes.
fn dead_letters(data_dir: &Path) -> io::Result<Vec<DeadLetterReport>> {
    let entries = match fs::read_dir(data_dir::dead_letter_dir(data_dir)) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(group) = data_dir::dead_letter_group(&file) else {
            continue;
        };
        let (samples, bytes) = count_lines(&entry.path())?;
        out.push(DeadLetterReport {
            group: group.to_string(),
            samples,
            bytes,
        });
    }
    out.sort_by(|a, b| a.group.cmp(&b.group));
    Ok(out)
}

/// Newlines and bytes of a file, read in 64 KiB pieces.
fn count_lines(path: &Path) -> io::Result<(u64, u64)> {
    let mut f = fs::File::open(path)?;
    let mut buf = vec![0u8; 64 << 10];
    let (mut lines, mut bytes) = (0u64, 0u64);
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok((lines, bytes));
        }
        bytes += n as u64;
        lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
    }
}

/// The `/api/status` body.
#[derive(Debug, Serialize)]
pub struct Report {
    pub version: &'static str,
    pub uptime_seconds: u64,
    pub generated_at_ms: i64,
    /// `embedded` or `kafka`.
    pub queue: &'static str,
    pub ack: AckMode,
    /// "Now" rates average this many seconds.
    pub rate_window_seconds: u64,
    /// One sparkline point per this many seconds.
    pub sparkline_step_seconds: u64,
    pub protocols: Vec<ProtocolReport>,
    pub retention: RetentionReport,
    pub partitions: Vec<PartitionReport>,
    pub groups: Vec<GroupReport>,
    pub disk: DiskReport,
    pub dead_letters: Vec<DeadLetterReport>,
    /// With Kafka: where the figures come from and whether the brokers
    /// answer (none with the embedded log).
    pub kafka: Option<KafkaReport>,
    /// What the page cannot show with this configuration, and why.
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ProtocolReport {
    pub name: &'static str,
    pub samples_per_second: f64,
    pub requests_per_second: f64,
    pub samples_total: u64,
    pub samples_refused: u64,
    pub samples_history: Vec<f64>,
    pub requests_history: Vec<f64>,
    /// Answers other than 2xx, by status.
    pub refusals: Vec<Refusal>,
}

#[derive(Debug, Serialize)]
pub struct Refusal {
    pub status: String,
    pub requests: u64,
}

#[derive(Debug, Serialize)]
pub struct RetentionReport {
    pub bytes_per_partition: Option<u64>,
    pub seconds: Option<u64>,
    pub segment_bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct PartitionReport {
    pub partition: u32,
    /// Offsets of the first and last record kept (none when empty).
    pub first_offset: Option<u64>,
    pub last_offset: Option<u64>,
    /// The log's start (its oldest segment's base) and end (one past the
    /// last durable record, the high watermark).
    pub start_offset: u64,
    pub end_offset: u64,
    pub records: u64,
    /// Allocated on disk (segments, indexes, preallocated space), as `du`
    /// (none with Kafka: the brokers' disks are not visible from here).
    pub bytes_on_disk: Option<u64>,
    pub oldest_record_age_seconds: Option<f64>,
}

impl PartitionReport {
    fn empty(partition: u32) -> PartitionReport {
        PartitionReport {
            partition,
            first_offset: None,
            last_offset: None,
            start_offset: 0,
            end_offset: 0,
            records: 0,
            bytes_on_disk: Some(0),
            oldest_record_age_seconds: None,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct GroupReport {
    pub name: String,
    /// Kafka: the group's state as the broker lists it (none: embedded
    /// log, or the broker did not list groups).
    pub state: Option<String>,
    /// None: unknown (Kafka, when the broker did not list its groups).
    pub members_alive: Option<usize>,
    /// Member files nobody holds (embedded log; none with Kafka, which
    /// forgets a member that stops heartbeating).
    pub members_dead: Option<usize>,
    /// Sum over the partitions with a known lag.
    pub lag_records: u64,
    /// The largest of the partitions' lag in seconds (none: a partition
    /// with records waiting has an unknown age).
    pub lag_seconds: Option<f64>,
    pub partitions: Vec<GroupPartition>,
}

#[derive(Debug, Serialize)]
pub struct GroupPartition {
    pub partition: u32,
    /// The next offset the group will read (none before its first commit).
    pub committed: Option<u64>,
    pub end_offset: u64,
    pub deleted_unread: u64,
    /// Records between the commit and the end (none: no commit yet and
    /// records waiting: where the group starts depends on the member's
    /// `--from-beginning`).
    pub lag_records: Option<u64>,
    /// Age of the oldest record not yet committed (its receive time).
    pub lag_seconds: Option<f64>,
    /// Whether a live member holds this partition's lock (Kafka: whether a
    /// listed member is assigned it; none: the broker did not list groups).
    pub owner_alive: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct DiskReport {
    pub data_dir: String,
    pub data_dir_bytes: u64,
    /// The partitions' logs (none with Kafka).
    pub log_bytes: Option<u64>,
    pub free_bytes: u64,
    pub total_bytes: u64,
    /// The log's growth on disk, averaged over `write_window_seconds`.
    pub write_bytes_per_second: f64,
    pub write_window_seconds: f64,
    /// None: nothing is being written (or Kafka: not this disk's business).
    pub outage_hours: Option<f64>,
    pub outage_limit: Option<disk::OutageLimit>,
}

#[derive(Debug, Serialize)]
pub struct DeadLetterReport {
    pub group: String,
    pub samples: u64,
    pub bytes: u64,
}
