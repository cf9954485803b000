//! `metricstream consume`: a consumer-group member that prints one JSON line
//! per metric and commits offsets only after the lines are written
//! (at-least-once: a crash between the two repeats, never skips).
//! The embedded log's groups are in [`group`]; Kafka's own consumer groups
//! in [`kafka`]. Both print the same lines.

pub mod group;
pub mod kafka;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::batch::{Metric, StoredBatch};
use crate::log::LogReader;
use crate::queue::file::{partition_dir, stored_partitions};
use group::GroupMember;
pub use kafka::KafkaSource;

/// How often membership is re-read (joins, leaves, deaths).
const REBALANCE_EVERY: Duration = Duration::from_millis(500);
const READ_BYTES: usize = 1 << 20;

/// One output line.
#[derive(Serialize)]
struct Line<'a> {
    client_id: &'a str,
    partition: u32,
    offset: u64,
    #[serde(flatten)]
    metric: &'a Metric<'a>,
    received_at: u64,
}

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
    next: u64,
}

pub fn run(cfg: &ConsumeConfig) -> anyhow::Result<()> {
    match &cfg.source {
        Source::File(data_dir) => run_file(cfg, data_dir),
        Source::Kafka(kafka) => kafka::run(cfg, kafka),
    }
}

fn run_file(cfg: &ConsumeConfig, data_dir: &Path) -> anyhow::Result<()> {
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
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut owned: BTreeMap<u32, Owned> = BTreeMap::new();
    let mut assigned = Default::default();
    let mut last_rebalance: Option<Instant> = None;

    loop {
        if last_rebalance.is_none_or(|t| t.elapsed() >= REBALANCE_EVERY) {
            assigned = member.assignment()?;
            owned.retain(|p, _| assigned.contains(p));
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
                            next,
                        },
                    );
                }
            }
            last_rebalance = Some(Instant::now());
        }

        let mut progressed = false;
        let mut caught_up = owned.len() == assigned.len();
        for (&p, o) in owned.iter_mut() {
            let records = o.reader.read(o.next, READ_BYTES)?;
            if let Some(last) = records.last() {
                let next = last.offset + 1;
                for r in &records {
                    write_record(&mut out, p, r.offset, &r.value)?;
                }
                out.flush()?;
                member.commit(p, next)?;
                o.next = next;
                progressed = true;
            }
            if o.next < o.reader.high_watermark()? {
                caught_up = false;
            }
        }
        if cfg.exit_at_end && caught_up && !progressed {
            break;
        }
        if !progressed {
            std::thread::sleep(cfg.poll_interval);
        }
    }
    drop(owned);
    member.leave();
    Ok(())
}

/// The lines of one queue message (one batch).
fn write_record(
    out: &mut impl Write,
    partition: u32,
    offset: u64,
    value: &[u8],
) -> anyhow::Result<()> {
    let batch: StoredBatch<'_> = match serde_json::from_slice(value) {
        Ok(b) => b,
        Err(e) => {
            // Not ours to judge: report it and go on rather than stall the partition.
            tracing::error!(partition, offset, "undecodable message: {e}");
            return Ok(());
        }
    };
    for metric in &batch.metrics {
        let line = Line {
            client_id: &batch.client_id,
            partition,
            offset,
            metric,
            received_at: batch.received_at,
        };
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
