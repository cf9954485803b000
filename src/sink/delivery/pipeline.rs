//! The store output as the (synchronous) consumer loops see it: a worker
//! task per partition on a tokio runtime, records in through a bounded
//! channel per partition (a full one is back-pressure: the loop reads that
//! partition again later), acknowledgements back through one channel.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::ack_tracker::Ack;
use super::batcher::{self, Submitted};
use super::context::DeliveryContext;
use super::lane::LaneSender;
use crate::sink::Output;

/// Records waiting for one partition's worker, at most.
const QUEUED_RECORDS: usize = 16;

struct Worker {
    records: mpsc::Sender<Submitted>,
    task: JoinHandle<()>,
}

pub struct Pipeline {
    rt: Handle,
    context: Arc<DeliveryContext>,
    workers: BTreeMap<u32, Worker>,
    acks_tx: mpsc::UnboundedSender<Ack>,
    acks: mpsc::UnboundedReceiver<Ack>,
    stop: watch::Sender<bool>,
    shutdown_timeout: Duration,
    /// The last acknowledged offset per partition (for the record count).
    last_ack: BTreeMap<u32, u64>,
}

impl Pipeline {
    pub fn new(rt: Handle, context: DeliveryContext, shutdown_timeout: Duration) -> Pipeline {
        let (acks_tx, acks) = mpsc::unbounded_channel();
        Pipeline {
            rt,
            context: Arc::new(context),
            workers: BTreeMap::new(),
            acks_tx,
            acks,
            stop: watch::channel(false).0,
            shutdown_timeout,
            last_ack: BTreeMap::new(),
        }
    }

    fn worker(&mut self, partition: u32) -> anyhow::Result<&mut Worker> {
        if !self.workers.contains_key(&partition) {
            let lanes = LaneSender::lanes(
                &self.context,
                partition,
                self.context.lanes,
                &self.stop.subscribe(),
            )?;
            let (tx, rx) = mpsc::channel(QUEUED_RECORDS);
            let task = self.rt.spawn(batcher::run(lanes, rx, self.acks_tx.clone()));
            self.workers.insert(partition, Worker { records: tx, task });
        }
        self.workers
            .get_mut(&partition)
            .ok_or_else(|| anyhow::anyhow!("worker for partition {partition} vanished"))
    }
}

impl Output for Pipeline {
    fn has_room(&mut self, partition: u32) -> anyhow::Result<bool> {
        let w = self.worker(partition)?;
        if w.records.is_closed() {
            anyhow::bail!("the worker of partition {partition} stopped");
        }
        Ok(w.records.capacity() > 0)
    }

    fn submit(&mut self, partition: u32, offset: u64, value: Bytes) -> anyhow::Result<()> {
        let w = self.worker(partition)?;
        // The consumer loop is the only sender: the room has_room saw is
        // still there.
        w.records
            .try_send(Submitted {
                offset,
                value,
                learn: false,
            })
            .map_err(|e| anyhow::anyhow!("partition {partition}: {e}"))
    }

    fn learn(&mut self, partition: u32, offset: u64, value: Bytes) -> anyhow::Result<()> {
        let w = self.worker(partition)?;
        w.records
            .try_send(Submitted {
                offset,
                value,
                learn: true,
            })
            .map_err(|e| anyhow::anyhow!("partition {partition}: {e}"))
    }

    fn acked(&mut self) -> anyhow::Result<Vec<(u32, u64)>> {
        let mut latest: BTreeMap<u32, u64> = BTreeMap::new();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        while let Ok(a) = self.acks.try_recv() {
            if !self.workers.contains_key(&a.partition) {
                continue; // released meanwhile: not ours to commit
            }
            let e = latest.entry(a.partition).or_insert(a.next);
            *e = (*e).max(a.next);
            if let Some(before) = self.last_ack.insert(a.partition, a.next) {
                self.context
                    .metrics
                    .records
                    .inc_by(a.next.saturating_sub(before));
            }
            self.context
                .metrics
                .lag_seconds
                .with_label_values(&[&a.partition.to_string()])
                .set((now_ms.saturating_sub(a.received_at) / 1000) as i64);
        }
        for (p, w) in &self.workers {
            if w.task.is_finished() && !*self.stop.borrow() {
                anyhow::bail!("the worker of partition {p} ended");
            }
        }
        Ok(latest.into_iter().collect())
    }

    fn release(&mut self, partition: u32) {
        if let Some(w) = self.workers.remove(&partition) {
            // Abandons what is in flight: the new owner sends it again.
            w.task.abort();
        }
    }

    fn close(&mut self) -> anyhow::Result<Vec<(u32, u64)>> {
        let _ = self.stop.send(true);
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut self.workers)
            .into_values()
            .map(|w| w.task)
            .collect();
        let aborts: Vec<_> = tasks.iter().map(JoinHandle::abort_handle).collect();
        let timeout = self.shutdown_timeout;
        let finished = self.rt.block_on(async {
            tokio::time::timeout(timeout, async {
                for t in tasks {
                    let _ = t.await;
                }
            })
            .await
        });
        if finished.is_err() {
            tracing::warn!("requests still in flight after {timeout:?}: abandoned (sent again at the next start)");
            for a in aborts {
                a.abort();
            }
        }
        let mut latest: BTreeMap<u32, u64> = BTreeMap::new();
        while let Ok(a) = self.acks.try_recv() {
            let e = latest.entry(a.partition).or_insert(a.next);
            *e = (*e).max(a.next);
        }
        Ok(latest.into_iter().collect())
    }
}
