//! One partition's worker: takes its records in offset order, batches
//! their samples (at most `max_samples` and about `max_bytes` per request,
//! sent once full or `linger` after the first sample came in), delivers
//! one batch at a time, and acknowledges the offset up to which everything
//! is delivered.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::deliver::{Delivery, Stopped};
use super::sample::decode;
use super::shared::Shared;
use super::Sample;

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
    pub value: Vec<u8>,
}

struct Pending {
    samples: Vec<Sample>,
    bytes: usize,
    /// The offset after the last record taken in.
    through: Option<u64>,
    received_at: u64,
    acked: Option<u64>,
}

pub async fn run(
    mut delivery: Delivery,
    mut records: mpsc::Receiver<Record>,
    acks: mpsc::UnboundedSender<Ack>,
) {
    let shared: Arc<Shared> = delivery.shared.clone();
    let partition = delivery.partition;
    let mut stop: watch::Receiver<bool> = delivery.stop.clone();
    let mut p = Pending {
        samples: Vec::new(),
        bytes: 0,
        through: None,
        received_at: 0,
        acked: None,
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
        tokio::select! {
            r = records.recv() => {
                let Some(r) = r else { return };
                take(&mut p, r, partition, &shared);
                if deadline.is_none() && !p.samples.is_empty() {
                    deadline = Some(Instant::now() + shared.linger);
                }
                if p.samples.is_empty() {
                    ack(&mut p, partition, &acks);
                    continue;
                }
                if p.samples.len() < shared.max_samples && p.bytes < shared.max_bytes {
                    continue;
                }
            }
            _ = linger_over => {}
            _ = stop.changed() => return,
        }
        if flush(&mut delivery, &mut p, &shared, &acks).await.is_err() {
            return;
        }
        deadline = (!p.samples.is_empty()).then(|| Instant::now() + shared.linger);
    }
}

fn take(p: &mut Pending, r: Record, partition: u32, shared: &Shared) {
    match decode(r.offset, &r.value) {
        Ok((samples, received_at)) => {
            p.bytes += samples.iter().map(Sample::size).sum::<usize>();
            p.samples.extend(samples);
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

/// Delivers full batches while there are any, and the rest too (the
/// linger is over or a batch filled up), acknowledging after each; on
/// shutdown, stops after the batch in flight.
async fn flush(
    d: &mut Delivery,
    p: &mut Pending,
    shared: &Shared,
    acks: &mpsc::UnboundedSender<Ack>,
) -> Result<(), Stopped> {
    while !p.samples.is_empty() {
        let n = batch_len(&p.samples, shared.max_samples, shared.max_bytes);
        d.deliver(&p.samples[..n]).await?;
        p.samples.drain(..n);
        p.bytes = p.samples.iter().map(Sample::size).sum();
        ack(p, d.partition, acks);
        if *d.stop.borrow() {
            return Err(Stopped);
        }
        if p.samples.len() < shared.max_samples && p.bytes < shared.max_bytes {
            // What is left waits for its linger, unless it is all there is.
            if p.samples.is_empty() || shared.linger == Duration::ZERO {
                continue;
            }
            break;
        }
    }
    Ok(())
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

/// Acknowledges what is delivered: everything before the first sample
/// still pending, or every record taken in if none is.
fn ack(p: &mut Pending, partition: u32, acks: &mpsc::UnboundedSender<Ack>) {
    let next = match p.samples.first() {
        Some(s) => Some(s.offset),
        None => p.through,
    };
    if let Some(next) = next {
        if p.acked.is_none_or(|a| next > a) {
            p.acked = Some(next);
            let _ = acks.send(Ack {
                partition,
                next,
                received_at: p.received_at,
            });
        }
    }
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
