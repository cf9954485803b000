//! One partition's workers, two tasks in a row so that decoding and
//! encoding the next batch overlaps the request in flight:
//! - the batcher takes the partition's records in offset order, decodes
//!   them, cuts batches (at most `max_samples` and about `max_bytes`; a
//!   batch that is not full goes `linger` after its first sample came in)
//!   and encodes each into a request body;
//! - the sender delivers one batch at a time, in order, and acknowledges
//!   the offset up to which everything is delivered.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
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

/// Batches encoded ahead of the one in flight.
const AHEAD: usize = 2;

/// A batch on its way to the sender.
struct Batch {
    samples: Vec<Sample>,
    /// The request body for all of `samples`, if none is refused up front.
    body: Option<Body>,
    /// Everything before this offset is in this batch or an earlier one.
    next: u64,
    received_at: u64,
}

struct Pending {
    samples: Vec<Sample>,
    bytes: usize,
    /// The offset after the last record taken in.
    through: Option<u64>,
    received_at: u64,
    interner: Interner,
}

/// Runs both tasks until the records end or `stop` is set.
pub async fn run(
    delivery: Delivery,
    records: mpsc::Receiver<Record>,
    acks: mpsc::UnboundedSender<Ack>,
) {
    let (tx, rx) = mpsc::channel(AHEAD);
    let shared = delivery.shared.clone();
    let stop = delivery.stop.clone();
    let partition = delivery.partition;
    let batcher = batch(shared, partition, records, tx, stop);
    tokio::join!(batcher, send(delivery, rx, acks));
}

async fn batch(
    shared: Arc<Shared>,
    partition: u32,
    mut records: mpsc::Receiver<Record>,
    out: mpsc::Sender<Batch>,
    mut stop: watch::Receiver<bool>,
) {
    let mut p = Pending {
        samples: Vec::new(),
        bytes: 0,
        through: None,
        received_at: 0,
        interner: Interner::default(),
    };
    let mut deadline: Option<Instant> = None;
    loop {
        if *stop.borrow() {
            return;
        }
        let until = deadline;
        let linger_over = async move {
            match until {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let mut all = false;
        tokio::select! {
            r = records.recv() => {
                let Some(r) = r else { return };
                take(&mut p, r, partition, &shared);
            }
            _ = linger_over => all = true,
            _ = stop.changed() => return,
        }
        if p.samples.is_empty() {
            // Records with nothing to deliver: acknowledged in their turn.
            if let Some(next) = p.through.take() {
                let empty = Batch {
                    samples: Vec::new(),
                    body: None,
                    next,
                    received_at: p.received_at,
                };
                if out.send(empty).await.is_err() {
                    return;
                }
            }
            deadline = None;
            continue;
        }
        let mut cut = false;
        while full(&p, &shared) || (all && !p.samples.is_empty()) {
            cut = true;
            let n = batch_len(&p.samples, shared.max_samples, shared.max_bytes);
            let samples: Vec<Sample> = if n == p.samples.len() {
                // The usual cut: all of it, without copying.
                std::mem::replace(&mut p.samples, Vec::with_capacity(shared.max_samples))
            } else {
                let rest = p.samples.split_off(n);
                std::mem::replace(&mut p.samples, rest)
            };
            p.bytes = p.samples.iter().map(Sample::size).sum();
            let next = match p.samples.first() {
                Some(s) => s.offset,
                None => p.through.take().unwrap_or(samples[n - 1].offset + 1),
            };
            let body = samples
                .iter()
                .all(|s| shared.sink.refuse(s).is_none())
                .then(|| shared.sink.encode(&samples));
            let b = Batch {
                samples,
                body,
                next,
                received_at: p.received_at,
            };
            if out.send(b).await.is_err() {
                return;
            }
        }
        // The linger counts from the first sample of the batch being filled.
        if p.samples.is_empty() {
            deadline = None;
        } else if cut || deadline.is_none() {
            deadline = Some(Instant::now() + shared.linger);
        }
    }
}

fn full(p: &Pending, shared: &Shared) -> bool {
    p.samples.len() >= shared.max_samples || p.bytes >= shared.max_bytes
}

async fn send(
    mut d: Delivery,
    mut batches: mpsc::Receiver<Batch>,
    acks: mpsc::UnboundedSender<Ack>,
) {
    let mut acked: Option<u64> = None;
    while let Some(b) = batches.recv().await {
        if !b.samples.is_empty() && d.deliver(&b.samples, b.body).await.is_err() {
            return; // stopped: what is not acknowledged is sent again later
        }
        if acked.is_none_or(|a| b.next > a) {
            acked = Some(b.next);
            let _ = acks.send(Ack {
                partition: d.partition,
                next: b.next,
                received_at: b.received_at,
            });
        }
        if *d.stop.borrow() {
            return;
        }
    }
}

fn take(p: &mut Pending, r: Record, partition: u32, shared: &Shared) {
    let before = p.samples.len();
    match decode(r.offset, &r.value, &mut p.interner, &mut p.samples) {
        Ok(received_at) => {
            p.bytes += p.samples[before..].iter().map(Sample::size).sum::<usize>();
            p.received_at = received_at;
        }
        Err(e) => {
            // Not ours to judge: report it and go on rather than stall.
            tracing::error!(partition, offset = r.offset, "{e}");
            shared.metrics.error(&e);
        }
    }
    p.through = Some(r.offset + 1);
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
