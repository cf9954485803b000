//! The re-sender: while the spill log holds batches and a broker answers,
//! it reads them in log order, produces them, waits for every ack of the
//! chunk and records the delivered prefix durably (`spill/progress`).
//! Once the log is drained and nothing more is on its way to it, requests
//! switch back to producing directly and the log is emptied.
//!
//! A chunk with a failure is retried from its first undelivered batch: a
//! batch can be sent twice (at-least-once), never skipped.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::DeliveryFuture;

use super::spill::SpillItem;
use super::{is_queue_full, permanent, Inner};
use crate::log::{LogReader, Record};

/// Bytes read (and produced) per chunk.
const CHUNK_BYTES: usize = 1 << 20;
const IDLE: Duration = Duration::from_millis(50);
const BROKER_WAIT: Duration = Duration::from_millis(200);
const AFTER_FAILURE: Duration = Duration::from_secs(1);

pub(super) async fn run(inner: Arc<Inner>, mut committed: u64) {
    let mut reader: Option<LogReader> = None;
    let mut generation = inner.spill.generation();
    while !inner.closing.load(Ordering::Acquire) {
        if inner.spill.generation() != generation {
            generation = inner.spill.generation();
            reader = None;
            committed = 0;
        }
        let backlog = committed < inner.spill.end();
        if !backlog && !inner.diverting.load(Ordering::Acquire) {
            tokio::time::sleep(IDLE).await;
            continue;
        }
        if !inner.link.reachable() {
            tokio::time::sleep(BROKER_WAIT).await;
            continue;
        }
        if !backlog {
            switch_back(&inner, &mut reader, &mut committed, &mut generation).await;
            continue;
        }
        let r = match reader.take() {
            Some(r) => r,
            None => match inner.spill.reader() {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!("opening the spill log to re-send it: {e}");
                    tokio::time::sleep(AFTER_FAILURE).await;
                    continue;
                }
            },
        };
        let from = committed;
        let read = tokio::task::spawn_blocking(move || {
            let mut r = r;
            let records = r.read(from, CHUNK_BYTES);
            (r, records)
        })
        .await;
        let records = match read {
            Ok((r, Ok(records))) => {
                reader = Some(r);
                records
            }
            Ok((_, Err(e))) => {
                tracing::error!("reading the spill log: {e}");
                tokio::time::sleep(AFTER_FAILURE).await;
                continue;
            }
            Err(_) => continue,
        };
        if records.is_empty() {
            tokio::time::sleep(IDLE).await;
            continue;
        }
        let (done, complete) = resend_chunk(&inner, &records).await;
        if done > 0 {
            committed = records[done - 1].offset + 1;
            inner.spill.commit(committed).await;
        }
        if !complete {
            tokio::time::sleep(AFTER_FAILURE).await;
        }
    }
}

/// Produces the chunk in order and waits for it; returns how many of its
/// first records are settled (delivered, or refused for good) and whether
/// that is all of them.
async fn resend_chunk(inner: &Inner, records: &[Record]) -> (usize, bool) {
    let t = &inner.telemetry;
    let mut futures: Vec<DeliveryFuture> = Vec::with_capacity(records.len());
    'produce: for r in records {
        let item = SpillItem {
            key: r.key.to_vec(),
            value: r.value.to_vec(),
            timestamp_ms: r.timestamp_ms,
        };
        loop {
            match inner.produce(&item) {
                Ok(f) => {
                    futures.push(f);
                    break;
                }
                Err(e) if is_queue_full(&e) && !inner.closing.load(Ordering::Acquire) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(e) => {
                    tracing::warn!("re-sending spilled batches: {e}");
                    break 'produce;
                }
            }
        }
    }
    let produced = futures.len();
    let mut done = 0;
    let mut failed = false;
    for (i, f) in futures.into_iter().enumerate() {
        match f.await {
            Ok(Ok(_)) => {
                if !failed {
                    done = i + 1;
                    t.delivered.inc();
                    t.resent.inc();
                }
            }
            Ok(Err((e, _))) if permanent(&e) && !failed => {
                let r = &records[i];
                tracing::error!(
                    offset = r.offset,
                    key = %String::from_utf8_lossy(&r.key),
                    "Kafka refuses a spilled batch for good ({e}); it is dropped"
                );
                inner.lost.fetch_add(1, Ordering::AcqRel);
                t.failed.inc();
                done = i + 1;
            }
            Ok(Err((e, _))) => {
                if !failed {
                    tracing::warn!(
                        offset = records[i].offset,
                        "re-sending a spilled batch failed: {e}"
                    );
                    t.failed.inc();
                }
                failed = true;
            }
            Err(_) => failed = true,
        }
    }
    if done > 0 {
        tracing::info!(batches = done, "re-sent spilled batches");
    }
    (done, !failed && produced == records.len())
}

/// Caught up: switch requests back to the producer, unless something is
/// still on its way into the log, then empty the log.
async fn switch_back(
    inner: &Inner,
    reader: &mut Option<LogReader>,
    committed: &mut u64,
    generation: &mut u64,
) {
    let switched = {
        let _all = crate::sync::write(&inner.switch);
        let drained = inner.spill.drained(*committed);
        if drained {
            inner.diverting.store(false, Ordering::Release);
        }
        drained
    };
    if !switched {
        tokio::time::sleep(Duration::from_millis(5)).await;
        return;
    }
    *reader = None;
    if inner.spill.reset(*committed).await {
        *generation = inner.spill.generation();
        *committed = 0;
        tracing::info!("spill log delivered; producing directly again");
    }
}
