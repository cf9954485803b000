//! One partition's workers: a batcher, and a sender per lane.
//! - The batcher takes the partition's records in offset order, decodes
//!   them and puts each sample in its series' lane (by the series' hash: a
//!   series always goes the same way). Per lane it cuts batches (at most
//!   `max_samples` and about `max_bytes`; a batch that is not full goes
//!   `linger` after its first sample came in) and encodes each into a
//!   request body while earlier ones are in flight.
//! - Each lane's sender delivers its batches one at a time, in order. A
//!   series' samples thus reach the store in order, while the lanes'
//!   requests are in flight together (as Prometheus' own remote-write
//!   shards: one request in flight per partition caps a consumer at
//!   partitions × batch ÷ round trip).
//! - [`Progress`] knows the oldest sample not delivered yet, in any lane:
//!   everything before it is acknowledged, and only that.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::deliver::Delivery;
use super::sample::Interner;
use super::shared::Shared;
use super::stored::decode;
use super::{Body, Sample};

/// Everything before `next` in `partition` is in the store (or dead-lettered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub partition: u32,
    pub next: u64,
    /// When the last acknowledged record was received (ms).
    pub received_at: u64,
}

/// A queue record handed to the worker.
pub struct Record {
    pub offset: u64,
    pub value: Bytes,
}

/// Batches encoded ahead of the one in flight, per lane.
const AHEAD: usize = 2;

/// A batch on its way to its lane's sender.
struct Batch {
    samples: Vec<Sample>,
    /// The request body for all of `samples`, if none is refused up front.
    body: Option<Body>,
    /// The offset of its first sample (its entry in [`Progress`]).
    first: u64,
}

/// One lane's samples not cut into a batch yet.
#[derive(Default)]
struct Lane {
    samples: Vec<Sample>,
    bytes: usize,
    /// When the batch being filled goes, full or not.
    deadline: Option<Instant>,
}

/// What is not delivered yet, shared by the batcher and the senders: the
/// first offset of every group of undelivered samples (a lane's uncut
/// samples, or a batch), counted, and how far the records were taken in.
struct Progress {
    partition: u32,
    undelivered: BTreeMap<u64, usize>,
    /// The offset after the last record taken in.
    through: Option<u64>,
    acked: Option<u64>,
    /// When the records not yet acknowledged were received: (offset, ms).
    received: VecDeque<(u64, u64)>,
    acks: mpsc::UnboundedSender<Ack>,
}

impl Progress {
    fn open(&mut self, first: u64) {
        *self.undelivered.entry(first).or_default() += 1;
    }

    /// The group that started at `first` is delivered.
    fn delivered(&mut self, first: u64) {
        if let Some(n) = self.undelivered.get_mut(&first) {
            *n -= 1;
            if *n == 0 {
                self.undelivered.remove(&first);
            }
        }
        self.report();
    }

    /// The record at `offset` is taken in: its samples are in their lanes.
    fn taken(&mut self, offset: u64, received_at: u64) {
        self.through = Some(offset + 1);
        self.received.push_back((offset, received_at));
        self.report();
    }

    /// Acknowledges up to the oldest undelivered sample, if that moved.
    fn report(&mut self) {
        let Some(through) = self.through else { return };
        let next = self.undelivered.keys().next().copied().unwrap_or(through);
        if self.acked.is_some_and(|a| next <= a) {
            return;
        }
        let mut received_at = 0;
        while let Some(&(offset, at)) = self.received.front() {
            if offset >= next {
                break;
            }
            received_at = at;
            self.received.pop_front();
        }
        self.acked = Some(next);
        let _ = self.acks.send(Ack {
            partition: self.partition,
            next,
            received_at,
        });
    }
}

fn lock(p: &Mutex<Progress>) -> MutexGuard<'_, Progress> {
    // A panicking holder left plain counters behind: still usable.
    crate::sync::lock(p)
}

/// Runs the batcher and the lanes' senders until the records end or
/// `stop` is set. `lanes` share one partition.
pub async fn run(
    lanes: Vec<Delivery>,
    records: mpsc::Receiver<Record>,
    acks: mpsc::UnboundedSender<Ack>,
) {
    let Some(first) = lanes.first() else { return };
    let shared = first.shared.clone();
    let stop = first.stop.clone();
    let partition = first.partition;
    let progress = Arc::new(Mutex::new(Progress {
        partition,
        undelivered: BTreeMap::new(),
        through: None,
        acked: None,
        received: VecDeque::new(),
        acks,
    }));
    // Dropped with this task (a released partition is aborted): so are
    // the senders.
    let mut senders = JoinSet::new();
    let mut outs = Vec::with_capacity(lanes.len());
    for d in lanes {
        let (tx, rx) = mpsc::channel(AHEAD);
        outs.push(tx);
        senders.spawn(send(d, rx, progress.clone()));
    }
    batch(shared, partition, records, outs, progress, stop).await;
    while senders.join_next().await.is_some() {}
}

async fn batch(
    shared: Arc<Shared>,
    partition: u32,
    mut records: mpsc::Receiver<Record>,
    outs: Vec<mpsc::Sender<Batch>>,
    progress: Arc<Mutex<Progress>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut lanes: Vec<Lane> = outs.iter().map(|_| Lane::default()).collect();
    let mut interner = Interner::default();
    let mut decoded = Vec::new();
    let mut received_at = 0;
    loop {
        if *stop.borrow() {
            return;
        }
        let until = lanes.iter().filter_map(|l| l.deadline).min();
        let linger_over = async move {
            match until {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let mut now = None;
        tokio::select! {
            r = records.recv() => {
                let Some(r) = r else { return };
                match decode(r.offset, &r.value, &mut interner, &mut decoded) {
                    Ok(at) => received_at = at,
                    Err(e) => {
                        // Not ours to judge: report it and go on rather than stall.
                        tracing::error!(partition, offset = r.offset, "{e}");
                        shared.metrics.error(&e);
                    }
                }
                let mut p = lock(&progress);
                for s in decoded.drain(..) {
                    let lane = &mut lanes[lane_of(&s, outs.len())];
                    if lane.samples.is_empty() {
                        p.open(s.offset);
                        lane.samples.reserve(shared.max_samples);
                    }
                    lane.bytes += s.size();
                    lane.samples.push(s);
                }
                p.taken(r.offset, received_at);
            }
            _ = linger_over => now = Some(Instant::now()),
            _ = stop.changed() => return,
        }
        for (lane, out) in lanes.iter_mut().zip(&outs) {
            let lingered = now.is_some_and(|now| lane.deadline.is_some_and(|d| d <= now));
            let mut cut = false;
            while full(lane, &shared) || (lingered && !lane.samples.is_empty()) {
                cut = true;
                let b = cut_batch(lane, &shared, &progress);
                if out.send(b).await.is_err() {
                    return;
                }
            }
            // The linger counts from the first sample of the batch being filled.
            if lane.samples.is_empty() {
                lane.deadline = None;
            } else if cut || lane.deadline.is_none() {
                lane.deadline = Some(Instant::now() + shared.linger);
            }
        }
    }
}

/// Which of `lanes` the series of `s` goes to (the high bits of its hash).
fn lane_of(s: &Sample, lanes: usize) -> usize {
    ((u128::from(s.series.hash_value()) * lanes as u128) >> 64) as usize
}

fn full(lane: &Lane, shared: &Shared) -> bool {
    lane.samples.len() >= shared.max_samples || lane.bytes >= shared.max_bytes
}

/// The next batch of `lane`, encoded.
fn cut_batch(lane: &mut Lane, shared: &Shared, progress: &Mutex<Progress>) -> Batch {
    let n = batch_len(&lane.samples, shared.max_samples, shared.max_bytes);
    let samples: Vec<Sample> = if n == lane.samples.len() {
        // The usual cut: all of it, without copying.
        std::mem::take(&mut lane.samples)
    } else {
        let rest = lane.samples.split_off(n);
        std::mem::replace(&mut lane.samples, rest)
    };
    lane.bytes = lane.samples.iter().map(Sample::size).sum();
    // The lane's group becomes the batch's; what is left starts another.
    if let Some(s) = lane.samples.first() {
        lock(progress).open(s.offset);
    }
    let first = samples.first().map_or(0, |s| s.offset);
    let body = samples
        .iter()
        .all(|s| shared.sink.refuse(s).is_none())
        .then(|| shared.sink.encode(&samples));
    Batch {
        samples,
        body,
        first,
    }
}

async fn send(mut d: Delivery, mut batches: mpsc::Receiver<Batch>, progress: Arc<Mutex<Progress>>) {
    while let Some(b) = batches.recv().await {
        if d.deliver(&b.samples, b.body).await.is_err() {
            return; // stopped: what is not acknowledged is sent again later
        }
        lock(&progress).delivered(b.first);
        if *d.stop.borrow() {
            return;
        }
    }
}

/// How many of `samples` go in the next request.
fn batch_len(samples: &[Sample], max_samples: usize, max_bytes: usize) -> usize {
    let mut bytes = 0;
    for (i, s) in samples.iter().take(max_samples).enumerate() {
        bytes += s.size();
        if bytes > max_bytes && i > 0 {
            return i;
        }
    }
    samples.len().min(max_samples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{MetricType, Value};

    fn progress() -> (Progress, mpsc::UnboundedReceiver<Ack>) {
        let (acks, rx) = mpsc::unbounded_channel();
        let p = Progress {
            partition: 3,
            undelivered: BTreeMap::new(),
            through: None,
            acked: None,
            received: VecDeque::new(),
            acks,
        };
        (p, rx)
    }

    fn acked(rx: &mut mpsc::UnboundedReceiver<Ack>) -> Vec<u64> {
        std::iter::from_fn(|| rx.try_recv().ok().map(|a| a.next)).collect()
    }

    #[test]
    fn acknowledged_up_to_the_oldest_sample_undelivered_in_any_lane() {
        let (mut p, mut rx) = progress();
        // Record 10 splits between two lanes, record 11 has nothing to send.
        p.open(10);
        p.open(10);
        p.taken(10, 1000);
        p.taken(11, 1001);
        // Record 12 goes to a third lane; a lane's cut leaves a rest at 12.
        p.open(12);
        p.open(12);
        p.taken(12, 1002);
        // Nothing before record 10 was waiting.
        assert_eq!(acked(&mut rx), vec![10]);
        p.delivered(12);
        p.delivered(10);
        assert_eq!(acked(&mut rx), Vec::<u64>::new(), "10 still has a lane out");
        p.delivered(10);
        assert_eq!(acked(&mut rx), vec![12]);
        p.delivered(12);
        assert_eq!(acked(&mut rx), vec![13]);
        // Records with nothing to deliver are acknowledged as taken.
        p.taken(13, 1003);
        assert_eq!(acked(&mut rx), vec![14]);
        assert!(p.received.is_empty());
    }

    #[test]
    fn batches_are_cut_by_samples_and_bytes() {
        let s = Sample::new(
            &"x".repeat(68),
            &[],
            Value::Float(1.0),
            0,
            MetricType::Gauge,
            0,
        );
        let v = vec![s; 10];
        assert_eq!(batch_len(&v, 4, 1 << 20), 4);
        assert_eq!(batch_len(&v, 100, 350), 3);
        assert_eq!(batch_len(&v, 100, 10), 1);
        assert_eq!(batch_len(&v[..2], 100, 1 << 20), 2);
    }
}
