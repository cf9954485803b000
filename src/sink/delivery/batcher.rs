//! One partition's worker: a batcher, and a sender per lane.
//! - The batcher takes the partition's records in offset order, decodes
//!   them and puts each sample in its series' lane (by the series' hash: a
//!   series always goes the same way). Per lane and tenant it cuts batches
//!   (at most `max_samples` and about `max_bytes`; a batch that is not full
//!   goes `linger` after its first sample came in), so a batch never mixes
//!   tenants, and encodes each into a request body while earlier ones are
//!   in flight. A series of one tenant is in one lane and one open batch:
//!   its samples still go in order.
//! - Each lane's sender ([`LaneSender`]) delivers its batches one at a
//!   time, in order. A series' samples thus reach the store in order, while
//!   the lanes' requests are in flight together (as Prometheus' own
//!   remote-write shards: one request in flight per partition caps a
//!   consumer at partitions × batch ÷ round trip).
//! - The [`AckTracker`] knows the oldest sample not delivered yet, in any
//!   lane: everything before it is acknowledged, and only that.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::ack_tracker::{Ack, AckTracker};
use super::context::DeliveryContext;
use super::lane::LaneSender;
use crate::hash::Fx;
use crate::record::PartitionReader;
use crate::sink::store::{Body, EncodeError};
use crate::sink::Sample;

/// A queue record the consumer loop submitted to the partition's worker.
pub struct Submitted {
    pub offset: u64,
    pub value: Bytes,
    /// Only to learn the series it defines (a record before the committed
    /// offset, in the epoch of the first record to deliver).
    pub learn: bool,
}

/// Batches encoded ahead of the one in flight, per lane.
const AHEAD: usize = 2;

/// A batch on its way to its lane's sender.
struct Batch {
    samples: Vec<Sample>,
    /// The request body for all of `samples` (or why there can be none),
    /// if none is refused up front.
    body: Option<Result<Body, EncodeError>>,
    /// The offset of its first sample (its group in the [`AckTracker`]).
    first: u64,
}

/// The batches a lane is filling, one per tenant (`None`: samples without
/// one); emptied ones are dropped, so a tenant gone quiet costs nothing.
type Filling = HashMap<Option<Arc<str>>, OpenBatch, Fx>;

/// The batch a lane is filling for one tenant: its samples not cut into a
/// batch yet.
#[derive(Default)]
struct OpenBatch {
    samples: Vec<Sample>,
    bytes: usize,
    /// When it goes, full or not.
    deadline: Option<Instant>,
}

fn lock(p: &Mutex<AckTracker>) -> MutexGuard<'_, AckTracker> {
    // A panicking holder left plain counters behind: still usable.
    crate::sync::lock(p)
}

/// Runs the batcher and the lanes' senders until the records end or
/// `stop` is set. `lanes` share one partition.
pub async fn run(
    lanes: Vec<LaneSender>,
    records: mpsc::Receiver<Submitted>,
    acks: mpsc::UnboundedSender<Ack>,
) {
    let Some(first) = lanes.first() else { return };
    let context = first.context.clone();
    let stop = first.stop.clone();
    let partition = first.partition;
    let tracker = Arc::new(Mutex::new(AckTracker::new(partition, acks)));
    // Dropped with this task (a released partition is aborted): so are
    // the senders.
    let mut senders = JoinSet::new();
    let mut outs = Vec::with_capacity(lanes.len());
    for lane in lanes {
        let (tx, rx) = mpsc::channel(AHEAD);
        outs.push(tx);
        senders.spawn(send(lane, rx, tracker.clone()));
    }
    batch(context, partition, records, outs, tracker, stop).await;
    while senders.join_next().await.is_some() {}
}

async fn batch(
    context: Arc<DeliveryContext>,
    partition: u32,
    mut records: mpsc::Receiver<Submitted>,
    outs: Vec<mpsc::Sender<Batch>>,
    tracker: Arc<Mutex<AckTracker>>,
    mut stop: watch::Receiver<bool>,
) {
    // The open batches of each lane, in the lanes' order.
    let mut filling: Vec<Filling> = outs.iter().map(|_| Filling::default()).collect();
    let mut reader = PartitionReader::new();
    let mut decoded = Vec::new();
    let mut received_at = 0;
    loop {
        if *stop.borrow() {
            return;
        }
        let until = filling
            .iter()
            .flat_map(|lane| lane.values())
            .filter_map(|o| o.deadline)
            .min();
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
                if r.learn {
                    if let Err(e) = reader.learn(r.offset, &r.value) {
                        tracing::error!(partition, offset = r.offset, "{e}");
                        context.metrics.error(&e.to_string());
                    }
                    continue;
                }
                match reader.read(r.offset, &r.value, &mut decoded) {
                    Ok(head) => received_at = head.received_at,
                    Err(e) => {
                        // Not ours to judge: report it and go on rather than stall.
                        tracing::error!(partition, offset = r.offset, "{e}");
                        context.metrics.error(&e.to_string());
                    }
                }
                let mut t = lock(&tracker);
                for s in decoded.drain(..) {
                    let lane = &mut filling[lane_of(&s, outs.len())];
                    let open = match lane.get_mut(&s.tenant) {
                        Some(open) => open,
                        None => lane.entry(s.tenant.clone()).or_default(),
                    };
                    if open.samples.is_empty() {
                        t.open(s.offset);
                        open.samples.reserve(context.max_samples);
                    }
                    open.bytes += size_of(&s);
                    open.samples.push(s);
                }
                t.taken(r.offset, received_at);
            }
            _ = linger_over => now = Some(Instant::now()),
            _ = stop.changed() => return,
        }
        for (lane, out) in filling.iter_mut().zip(&outs) {
            for open in lane.values_mut() {
                let lingered = now.is_some_and(|now| open.deadline.is_some_and(|d| d <= now));
                let mut cut = false;
                while full(open, &context) || (lingered && !open.samples.is_empty()) {
                    cut = true;
                    let b = cut_batch(open, &context, &tracker);
                    if out.send(b).await.is_err() {
                        return;
                    }
                }
                // The linger counts from the first sample of the batch being filled.
                if open.samples.is_empty() {
                    open.deadline = None;
                } else if cut || open.deadline.is_none() {
                    open.deadline = Some(Instant::now() + context.linger);
                }
            }
            lane.retain(|_, open| !open.samples.is_empty());
        }
    }
}

/// Which of `lanes` the series of `s` goes to (the high bits of its hash).
fn lane_of(s: &Sample, lanes: usize) -> usize {
    ((u128::from(s.series.hash_value()) * lanes as u128) >> 64) as usize
}

fn full(open: &OpenBatch, context: &DeliveryContext) -> bool {
    open.samples.len() >= context.max_samples || open.bytes >= context.max_bytes
}

/// The next batch of a lane, cut from its open batch and encoded.
fn cut_batch(
    open: &mut OpenBatch,
    context: &DeliveryContext,
    tracker: &Mutex<AckTracker>,
) -> Batch {
    let n = batch_len(&open.samples, context.max_samples, context.max_bytes);
    let samples: Vec<Sample> = if n == open.samples.len() {
        // The usual cut: all of it, without copying.
        std::mem::take(&mut open.samples)
    } else {
        let rest = open.samples.split_off(n);
        std::mem::replace(&mut open.samples, rest)
    };
    open.bytes = open.samples.iter().map(size_of).sum();
    // The open batch's group becomes the batch's; what is left starts another.
    if let Some(s) = open.samples.first() {
        lock(tracker).open(s.offset);
    }
    let first = samples.first().map_or(0, |s| s.offset);
    let body = samples
        .iter()
        .all(|s| context.sink.refuse(s).is_none())
        .then(|| super::tenant::encode(context, &samples));
    Batch {
        samples,
        body,
        first,
    }
}

/// A lane's sender task: its batches one at a time, each acknowledged once
/// delivered.
async fn send(
    mut lane: LaneSender,
    mut batches: mpsc::Receiver<Batch>,
    tracker: Arc<Mutex<AckTracker>>,
) {
    while let Some(b) = batches.recv().await {
        if lane.deliver(&b.samples, b.body).await.is_err() {
            return; // stopped: what is not acknowledged is sent again later
        }
        lock(&tracker).delivered(b.first);
        if *lane.stop.borrow() {
            return;
        }
    }
}

/// Bytes `s` adds to a request, roughly (what `--batch-bytes` counts):
/// [`Sample::size`] (series and value), plus what a native histogram's
/// buckets or an exemplar's labels add, which a float's size leaves out.
/// A histogram can be hundreds of bytes: counted as one float, a batch
/// of them would go far past the limit.
fn size_of(s: &Sample) -> usize {
    let Some(extra) = s.extra.as_deref() else {
        return s.size();
    };
    let mut size = s.size();
    if let Some(h) = &extra.histogram {
        // The fixed fields; a delta up to 10 bytes (varint), a count or
        // bound 8, a span up to 12.
        let deltas = h.negative_deltas.len() + h.positive_deltas.len();
        let floats = h.negative_counts.len() + h.positive_counts.len() + h.custom_values.len();
        let spans = h.negative_spans.len() + h.positive_spans.len();
        size += 64 + 10 * deltas + 8 * floats + 12 * spans;
    }
    if let Some(labels) = &extra.exemplar {
        size += labels
            .iter()
            .map(|(k, v)| k.len() + v.len() + 4)
            .sum::<usize>();
    }
    size
}

/// How many of `samples` go in the next request.
fn batch_len(samples: &[Sample], max_samples: usize, max_bytes: usize) -> usize {
    let mut bytes = 0;
    for (i, s) in samples.iter().take(max_samples).enumerate() {
        bytes += size_of(s);
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

    /// A histogram counts its buckets, an exemplar its labels: a batch of
    /// them is cut by what they weigh, not by a float's size.
    #[test]
    fn histograms_and_exemplars_weigh_what_they_hold() {
        use crate::sink::store::test_points::mixed;
        let points = mixed();
        let float = points.iter().find(|s| s.is_plain()).unwrap();
        let histogram = points.iter().find(|s| s.histogram().is_some()).unwrap();
        let exemplar = points.iter().find(|s| s.exemplar().is_some()).unwrap();
        assert_eq!(size_of(float), float.size());
        // Two spans and three deltas each side, and the fixed fields.
        assert!(size_of(histogram) >= histogram.size() + 64 + 5 * 10 + 3 * 12);
        assert!(size_of(exemplar) > exemplar.size() + "4bf92f3577b34da6".len());
        let v = vec![histogram.clone(); 10];
        let one = size_of(histogram);
        assert_eq!(batch_len(&v, 100, one * 3), 3);
        assert_eq!(batch_len(&v, 100, one * 3 - 1), 2);
    }
}
