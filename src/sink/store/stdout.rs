//! `--sink stdout` (the default): one JSON line per metric on stdout,
//! acknowledged once the lines are written and flushed.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Stdout as StdStdout, Write};

use bytes::Bytes;
use serde::Serialize;

use crate::record::json::StoredBatch;
use crate::record::metric::{ExemplarPoint, HistogramPoint};
use crate::record::{format_of, Format, Metric, PartitionReader, Sample};
use crate::sink::Output;

/// One output line.
#[derive(Serialize)]
struct Line<'a> {
    client_id: &'a str,
    /// The record's tenant, on the lines of records that have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<&'a str>,
    partition: u32,
    offset: u64,
    #[serde(flatten)]
    metric: &'a Metric<'a>,
    received_at: u64,
}

pub struct Stdout {
    out: BufWriter<StdStdout>,
    written: BTreeMap<u32, u64>,
    /// Per partition: the compact records' series ids.
    readers: BTreeMap<u32, PartitionReader>,
}

impl Stdout {
    pub fn new() -> Stdout {
        Stdout {
            out: BufWriter::new(io::stdout()),
            written: BTreeMap::new(),
            readers: BTreeMap::new(),
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
        let reader = self.readers.entry(partition).or_default();
        write_record(&mut self.out, reader, partition, offset, &value)?;
        self.written.insert(partition, offset + 1);
        Ok(())
    }

    fn learn(&mut self, partition: u32, offset: u64, value: Bytes) -> anyhow::Result<()> {
        let reader = self.readers.entry(partition).or_default();
        if let Err(e) = reader.learn(offset, &value) {
            tracing::error!(partition, offset, "{e}");
        }
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
        self.readers.remove(&partition);
    }

    fn close(&mut self) -> anyhow::Result<Vec<(u32, u64)>> {
        self.acked()
    }
}

/// The lines of one queue message (one batch): a version 1 record as it
/// was stored, a version 2 one from its samples, in the same shape.
pub fn write_record(
    out: &mut impl Write,
    reader: &mut PartitionReader,
    partition: u32,
    offset: u64,
    value: &[u8],
) -> anyhow::Result<()> {
    match format_of(offset, value) {
        Ok(Format::Json) => write_json(out, partition, offset, value),
        Ok(Format::Compact) => {
            let mut samples = Vec::new();
            match reader.read(offset, value, &mut samples) {
                Ok(head) => write_samples(out, partition, &head, &samples),
                Err(e) => {
                    tracing::error!(partition, offset, "undecodable message: {e}");
                    Ok(())
                }
            }
        }
        Err(e) => {
            // Not ours to judge: report it and go on rather than stall the partition.
            tracing::error!(partition, offset, "{e}");
            Ok(())
        }
    }
}

fn write_json(
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
            tenant: batch.tenant.as_deref(),
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

/// A version 2 record's samples as the lines a version 1 record gives.
fn write_samples(
    out: &mut impl Write,
    partition: u32,
    head: &crate::record::Head,
    samples: &[Sample],
) -> anyhow::Result<()> {
    for s in samples {
        let extra = s.extra.as_deref();
        let metric = Metric {
            name: s.name().into(),
            value: s.value,
            kind: s.kind,
            tags: std::sync::Arc::new(
                s.labels()
                    .iter()
                    .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
                    .collect(),
            ),
            timestamp: Some(s.timestamp as u64),
            timestamp_ns: extra.and_then(|e| e.timestamp_ns),
            created_timestamp: extra.and_then(|e| e.start_timestamp),
            unit: extra.and_then(|e| e.unit.as_deref()).map(Into::into),
            help: extra.and_then(|e| e.help.as_deref()).map(Into::into),
            histogram: s.histogram().map(|h| Box::new(HistogramPoint(h.clone()))),
            exemplar: s.exemplar().map(|labels| {
                Box::new(ExemplarPoint {
                    labels: labels.iter().cloned().collect(),
                })
            }),
        };
        let line = Line {
            client_id: &head.client_id,
            tenant: head.tenant.as_deref(),
            partition,
            offset: s.offset,
            metric: &metric,
            received_at: head.received_at,
        };
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
