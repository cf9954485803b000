//! The embedded log as a [`RecordSource`]: a member of one of its consumer
//! groups ([`GroupMember`]: member files, a lock per partition, offset
//! files) that reads the partitions it holds with a [`LogReader`] each.
//!
//! Membership is looked at every 500 ms: partitions assigned to this
//! member are claimed as soon as their lock is free (their previous owner
//! let go, or died and the kernel dropped its lock), and read from the
//! group's committed offset (with none: the oldest record with
//! `--from-beginning`, else the end). A partition assigned elsewhere is let
//! go only after the loop committed it, so its next owner, which waits for
//! the lock, starts from that commit.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::group::GroupMember;
use super::main_loop::{Polled, RecordSource};
use crate::data_dir::{partition_dir, stored_partitions};
use crate::log::{LogReader, Record};
use crate::record::read::epoch_start;

/// How often membership is re-read (joins, leaves, deaths).
const REBALANCE_EVERY: Duration = Duration::from_millis(500);
/// Bytes read from a partition at a time.
const READ_BYTES: usize = 1 << 20;

/// A member of an embedded-log consumer group, reading its partitions.
pub struct FileMember {
    data_dir: PathBuf,
    member: GroupMember,
    from_beginning: bool,
    /// What the group says this member should read.
    assigned: BTreeSet<u32>,
    /// What it holds the locks of and reads.
    owned: BTreeMap<u32, Owned>,
    last_rebalance: Option<Instant>,
}

struct Owned {
    _lock: File,
    reader: LogReader,
    /// Next offset to read.
    read: u64,
    /// Where reading started (the group's commit, or the start or end).
    start: u64,
    /// Whether the records of the first one's epoch were handed out to
    /// learn from (see `poll`).
    primed: bool,
}

impl FileMember {
    /// Joins `group` in the queue in `data_dir` (which `serve` must have
    /// created).
    pub fn join(data_dir: &Path, group: &str, from_beginning: bool) -> anyhow::Result<FileMember> {
        let partitions = stored_partitions(data_dir)?.ok_or_else(|| {
            anyhow::anyhow!(
                "no queue in {} (start `metricstream serve --data-dir {}` first)",
                data_dir.display(),
                data_dir.display()
            )
        })?;
        let member = GroupMember::join(data_dir, group, partitions)?;
        tracing::info!(member = member.id(), group, "joined consumer group");
        Ok(FileMember {
            data_dir: data_dir.to_path_buf(),
            member,
            from_beginning,
            assigned: BTreeSet::new(),
            owned: BTreeMap::new(),
            last_rebalance: None,
        })
    }

    /// Takes partition p if its lock is free; where to start reading it.
    fn claim(&mut self, p: u32) -> anyhow::Result<()> {
        let Some(lock) = self.member.try_claim(p)? else {
            return Ok(());
        };
        let mut reader = LogReader::open(&partition_dir(&self.data_dir, p))?;
        let next = match self.member.committed(p)? {
            Some(n) => n,
            None if self.from_beginning => reader.start_offset()?,
            None => reader.high_watermark()?,
        };
        tracing::info!(partition = p, next, "reading partition");
        self.owned.insert(
            p,
            Owned {
                _lock: lock,
                reader,
                read: next,
                start: next,
                primed: false,
            },
        );
        Ok(())
    }
}

impl RecordSource for FileMember {
    fn rebalance(&mut self) -> anyhow::Result<Vec<u32>> {
        if self
            .last_rebalance
            .is_some_and(|t| t.elapsed() < REBALANCE_EVERY)
        {
            return Ok(Vec::new());
        }
        self.last_rebalance = Some(Instant::now());
        self.assigned = self.member.assignment()?;
        let wanted: Vec<u32> = self
            .assigned
            .iter()
            .filter(|p| !self.owned.contains_key(p))
            .copied()
            .collect();
        for p in wanted {
            self.claim(p)?;
        }
        Ok(self
            .owned
            .keys()
            .filter(|p| !self.assigned.contains(p))
            .copied()
            .collect())
    }

    fn let_go(&mut self, partition: u32) {
        // Dropping the lock file lets the new owner in.
        self.owned.remove(&partition);
    }

    fn poll(&mut self, wait: Duration, waiting: &BTreeSet<u32>) -> anyhow::Result<Vec<Polled>> {
        let mut out = Vec::new();
        for (&p, o) in self.owned.iter_mut() {
            if waiting.contains(&p) {
                continue;
            }
            let records = o.reader.read(o.read, READ_BYTES)?;
            if let Some(last) = records.last() {
                o.read = last.offset + 1;
            }
            // The first record read may refer to series its epoch defined
            // before it (compact records, `record::read`): those records
            // go first, to learn from only.
            if let (false, Some(first)) = (o.primed, records.first()) {
                o.primed = true;
                if let Some(from) = epoch_start(first.offset, &first.value) {
                    for r in read_range(&mut o.reader, from, first.offset)? {
                        out.push(Polled {
                            partition: p,
                            offset: r.offset,
                            value: r.value,
                            learn: true,
                        });
                    }
                }
            }
            out.extend(records.into_iter().map(|r| Polled {
                partition: p,
                offset: r.offset,
                value: r.value,
                learn: false,
            }));
        }
        // The log has no way to wait for a write: look again after a nap.
        if out.is_empty() && !wait.is_zero() {
            std::thread::sleep(wait);
        }
        Ok(out)
    }

    fn is_end(&mut self, partition: u32, next: u64) -> bool {
        self.owned
            .get(&partition)
            .is_some_and(|o| o.reader.high_watermark().is_ok_and(|end| next >= end))
    }

    fn caught_up(&mut self) -> anyhow::Result<bool> {
        for p in &self.assigned {
            // Assigned but still locked by its previous owner: not caught up.
            let Some(o) = self.owned.get(p) else {
                return Ok(false);
            };
            if o.read < o.reader.high_watermark()? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn commit(&mut self, offsets: &BTreeMap<u32, u64>) -> anyhow::Result<()> {
        for (&p, &next) in offsets {
            // Without the partition's lock it is not ours to commit.
            if self.owned.contains_key(&p) {
                self.member.commit(p, next)?;
            }
        }
        Ok(())
    }

    fn lag(&mut self, committed: &BTreeMap<u32, u64>) -> anyhow::Result<Vec<(u32, i64)>> {
        let mut lag = Vec::with_capacity(self.owned.len());
        for (&p, o) in &self.owned {
            let end = o.reader.high_watermark()?;
            let done = committed.get(&p).copied().unwrap_or(o.start);
            lag.push((p, end.saturating_sub(done) as i64));
        }
        Ok(lag)
    }

    fn leave(self) {
        // Partition locks first, then the member file: whoever rebalances
        // on seeing it gone finds the partitions free.
        drop(self.owned);
        self.member.leave();
    }
}

/// The records of `reader` from `from` to before `to`.
fn read_range(reader: &mut LogReader, from: u64, to: u64) -> anyhow::Result<Vec<Record>> {
    let mut out = Vec::new();
    let mut next = from;
    while next < to {
        let got = reader.read(next, READ_BYTES)?;
        let Some(last) = got.last() else {
            anyhow::bail!("the log ends at {next}, before offset {to} (read from {from})");
        };
        next = last.offset + 1;
        out.extend(got.into_iter().filter(|r| r.offset < to));
    }
    Ok(out)
}
