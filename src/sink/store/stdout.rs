//! `--sink stdout` (the default): one JSON line per metric on stdout,
//! acknowledged once the lines are written and flushed.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Stdout as StdStdout, Write};

use bytes::Bytes;
use serde::Serialize;

use crate::batch::{Metric, StoredBatch};
use crate::sink::Output;

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

pub struct Stdout {
    out: BufWriter<StdStdout>,
    written: BTreeMap<u32, u64>,
}

impl Stdout {
    pub fn new() -> Stdout {
        Stdout {
            out: BufWriter::new(io::stdout()),
            written: BTreeMap::new(),
        }
    }
}

impl Default for Stdout {
    fn default() -> Stdout {
        Stdout::new()
    }
}

impl Output for Stdout {
    fn has_room(&mut self, _partition: u32) -> anyhow::Result<bool> {
        Ok(true)
    }

    fn submit(&mut self, partition: u32, offset: u64, value: Bytes) -> anyhow::Result<()> {
        write_record(&mut self.out, partition, offset, &value)?;
        self.written.insert(partition, offset + 1);
        Ok(())
    }

    fn acked(&mut self) -> anyhow::Result<Vec<(u32, u64)>> {
        if self.written.is_empty() {
            return Ok(Vec::new());
        }
        self.out.flush()?;
        Ok(std::mem::take(&mut self.written).into_iter().collect())
    }

    fn release(&mut self, partition: u32) {
        self.written.remove(&partition);
    }

    fn close(&mut self) -> anyhow::Result<Vec<(u32, u64)>> {
        self.acked()
    }
}

/// The lines of one queue message (one batch).
pub fn write_record(
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
