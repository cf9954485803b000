//! How `consume` loops, whatever the queue: one loop over a
//! [`RecordSource`] (a member of the embedded log's groups, in
//! `file_source.rs`, or of Kafka's, in `kafka.rs`) and the sink's
//! [`Output`]. Each turn:
//!
//! 1. **Group changes.** Partitions the source must let go (moved to
//!    another member, revoked, lost) get what was acknowledged committed,
//!    then are released from the output (it drops what it had not
//!    acknowledged: the next owner reads it again from the commit).
//! 2. **Records.** Those the output had no room for last turn are offered
//!    again; then the source is polled for the partitions without such a
//!    backlog, and what it returns is offered. A record goes to the output
//!    only while [`Output::has_room`] says yes; the rest waits, in order.
//!    That is the back-pressure: a slow store slows the reading.
//! 3. **Acknowledgements** ([`Output::acked`]).
//! 4. **Commit**, on the schedule below.
//! 5. **Lag** (`metricstream_consume_lag_records`), as the source measures it.
//! 6. **`--exit-at-end`**: stop once a turn did nothing, everything handed
//!    out is committed and the source says every partition it should read
//!    is read to its end.
//! 7. **Nap** when a turn did nothing (inside the next poll: Kafka's wakes
//!    up for a message): 5 ms while a backlog waits for room (a full sink
//!    queue drains fast), 50 ms otherwise, never more than `--poll-interval`.
//!
//! SIGTERM or SIGINT sets `stop`: the loop ends, the output is closed
//! (finishing or abandoning what is in flight within its shutdown timeout),
//! its last acknowledgements are committed and the member leaves its group.
//!
//! # How consume commits
//! Only offsets the output acknowledged: an acknowledgement for `next` in a
//! partition means everything before `next` is delivered (written and
//! flushed, or in the store, or dead-lettered). So a commit never covers an
//! undelivered record, and a crash at any point re-sends from the last
//! commit: at-least-once, never a gap. Acknowledged offsets are committed
//! - every [`COMMIT_EVERY`] (200 ms): a commit costs two fsyncs on the
//!   embedded log and a broker round trip on Kafka, more than the rest of a
//!   turn, so not after every record; a crash re-sends at most that much
//!   more;
//! - at once for a partition that is caught up (its acknowledged offset is
//!   the end of what the source has), so an idle consumer's commit is
//!   current and `--exit-at-end` leaves nothing to re-read;
//! - at once, every partition, when a partition is let go (the next owner
//!   starts from the commit), and at close.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::sink::metrics::ConsumeMetrics;
use crate::sink::Output;

/// Acknowledged offsets are committed at least this often (see the module doc).
pub const COMMIT_EVERY: Duration = Duration::from_millis(200);
/// The nap while records wait for room in the output.
const NAP_BACKLOG: Duration = Duration::from_millis(5);
/// The nap when there was nothing to do.
const NAP_IDLE: Duration = Duration::from_millis(50);

/// One queue record, as a source hands it to the loop.
#[derive(Debug, Clone)]
pub struct Polled {
    pub partition: u32,
    pub offset: u64,
    pub value: Bytes,
    /// Only for the output to learn the series it defines: a record before
    /// where reading starts, in the epoch of the first one read (see
    /// [`Output::learn`]); never acknowledged or committed.
    pub learn: bool,
}

/// A member of a consumer group, as the loop sees it: records in, offsets
/// committed, partitions coming and going.
pub trait RecordSource {
    /// Group changes since the last call. New partitions are taken on
    /// quietly (their records just come); the ones returned must be let
    /// go: the loop commits and releases them, then calls
    /// [`let_go`](RecordSource::let_go).
    fn rebalance(&mut self) -> anyhow::Result<Vec<u32>>;
    /// Stops reading `partition` (the embedded log gives up its lock).
    fn let_go(&mut self, partition: u32);
    /// The next records, in offset order within a partition, of none of
    /// the `waiting` partitions (the loop still holds records of theirs
    /// the output had no room for). With none to return, waits up to
    /// `wait` for some.
    fn poll(&mut self, wait: Duration, waiting: &BTreeSet<u32>) -> anyhow::Result<Vec<Polled>>;
    /// Whether `next` is the end of `partition`: every record the source
    /// has of it comes before `next`.
    fn is_end(&mut self, partition: u32, next: u64) -> bool;
    /// Whether every partition this member should read is its own and
    /// read to its end (for `--exit-at-end`).
    fn caught_up(&mut self) -> anyhow::Result<bool>;
    /// Records, durably as the queue does it, that everything before each
    /// offset has been handled.
    fn commit(&mut self, offsets: &BTreeMap<u32, u64>) -> anyhow::Result<()>;
    /// Records behind each partition's end, given what this member
    /// committed (partitions it has not committed yet: from where it
    /// started); as often as the source finds it worth measuring.
    fn lag(&mut self, committed: &BTreeMap<u32, u64>) -> anyhow::Result<Vec<(u32, i64)>>;
    /// Leaves the group at once, so the others take over its partitions.
    fn leave(self);
}

/// What shapes the loop (from `consume`'s flags).
#[derive(Debug, Clone)]
pub struct LoopSettings {
    /// Stop once caught up (`--exit-at-end`).
    pub exit_at_end: bool,
    /// The longest nap (`--poll-interval`).
    pub poll_interval: Duration,
    /// [`COMMIT_EVERY`]; tests set it.
    pub commit_every: Duration,
}

/// Runs the loop until `stop` (or, with `--exit-at-end`, until caught up),
/// then closes the output, commits and leaves the group.
pub fn run<S: RecordSource>(
    mut source: S,
    output: &mut dyn Output,
    settings: &LoopSettings,
    stop: &AtomicBool,
    metrics: &ConsumeMetrics,
) -> anyhow::Result<()> {
    let mut at = Positions::default();
    let mut last_commit = Instant::now();
    let mut progressed = false;
    while !stop.load(Ordering::Relaxed) {
        // 7. (from the turn before) Nap only after a turn that did nothing.
        let nap = if progressed {
            Duration::ZERO
        } else if at.unsent.is_empty() {
            NAP_IDLE.min(settings.poll_interval)
        } else {
            NAP_BACKLOG.min(settings.poll_interval)
        };
        progressed = false;

        // 1. Group changes: commit, then release.
        let gone = source.rebalance()?;
        if !gone.is_empty() {
            at.take_acks(output.acked()?);
            let all = std::mem::take(&mut at.acked);
            commit(&mut source, &mut at, all)?;
            for p in gone {
                output.release(p);
                at.forget(p);
                source.let_go(p);
            }
            progressed = true;
        }

        // 2. Records: the backlog, then new ones.
        progressed |= at.offer(output)?;
        let waiting: BTreeSet<u32> = at.unsent.keys().copied().collect();
        for r in source.poll(nap, &waiting)? {
            at.unsent.entry(r.partition).or_default().push_back(r);
        }
        progressed |= at.offer(output)?;

        // 3. Acknowledgements; 4. commit.
        at.take_acks(output.acked()?);
        let due = last_commit.elapsed() >= settings.commit_every;
        let now = at.due_commits(due, |p, next| source.is_end(p, next));
        if !now.is_empty() {
            commit(&mut source, &mut at, now)?;
            progressed = true;
            if due {
                last_commit = Instant::now();
            }
        }

        // 5. Lag.
        for (p, lag) in source.lag(&at.committed)? {
            metrics
                .lag_records
                .with_label_values(&[&p.to_string()])
                .set(lag);
        }

        // 6. --exit-at-end.
        if settings.exit_at_end && !progressed && at.all_committed() && source.caught_up()? {
            break;
        }
    }
    // Stopped or caught up: the output's last acknowledgements, committed.
    at.take_acks(output.close()?);
    let all = std::mem::take(&mut at.acked);
    commit(&mut source, &mut at, all)?;
    source.leave();
    Ok(())
}

fn commit<S: RecordSource>(
    source: &mut S,
    at: &mut Positions,
    offsets: BTreeMap<u32, u64>,
) -> anyhow::Result<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    source.commit(&offsets)?;
    at.committed.extend(offsets);
    Ok(())
}

/// Where the loop is in each partition it reads.
#[derive(Default)]
struct Positions {
    /// Polled, not yet taken by the output (it had no room).
    unsent: BTreeMap<u32, VecDeque<Polled>>,
    /// The next offset after the last record handed to the output.
    handed: BTreeMap<u32, u64>,
    /// Acknowledged, not yet committed: the next offset.
    acked: BTreeMap<u32, u64>,
    /// The next offset, as last committed by this member, or where it
    /// started reading (before that nothing is this member's to commit).
    committed: BTreeMap<u32, u64>,
}

impl Positions {
    /// Hands waiting records to the output while it has room; true if any went.
    fn offer(&mut self, output: &mut dyn Output) -> anyhow::Result<bool> {
        let mut moved = false;
        for (&p, queue) in self.unsent.iter_mut() {
            while !queue.is_empty() && output.has_room(p)? {
                let Some(r) = queue.pop_front() else { break };
                if r.learn {
                    output.learn(p, r.offset, r.value)?;
                    moved = true;
                    continue;
                }
                if !self.handed.contains_key(&p) {
                    // Where reading started: an acknowledgement up to here
                    // says nothing new (the output may send one at once).
                    self.committed.entry(p).or_insert(r.offset);
                }
                output.submit(p, r.offset, r.value)?;
                self.handed.insert(p, r.offset + 1);
                moved = true;
            }
        }
        self.unsent.retain(|_, queue| !queue.is_empty());
        Ok(moved)
    }

    /// Adds the output's latest acknowledgements, of partitions still read
    /// (a released partition's are not this member's to commit).
    fn take_acks(&mut self, acks: Vec<(u32, u64)>) {
        for (p, next) in acks {
            if !self.handed.contains_key(&p) || self.committed.get(&p) >= Some(&next) {
                continue;
            }
            let e = self.acked.entry(p).or_insert(next);
            *e = (*e).max(next);
        }
    }

    /// The acknowledged offsets to commit now: all when `due`, else those
    /// at their partition's end. The rest stay for later.
    fn due_commits(
        &mut self,
        due: bool,
        mut is_end: impl FnMut(u32, u64) -> bool,
    ) -> BTreeMap<u32, u64> {
        let (now, later) = std::mem::take(&mut self.acked)
            .into_iter()
            .partition(|&(p, next)| due || is_end(p, next));
        self.acked = later;
        now
    }

    /// Nothing waits for the output, and everything handed to it is committed.
    fn all_committed(&self) -> bool {
        self.unsent.is_empty()
            && self
                .handed
                .iter()
                .all(|(p, next)| self.committed.get(p) == Some(next))
    }

    fn forget(&mut self, partition: u32) {
        self.unsent.remove(&partition);
        self.handed.remove(&partition);
        self.acked.remove(&partition);
        self.committed.remove(&partition);
    }
}

#[cfg(test)]
mod tests;
