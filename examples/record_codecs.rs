//! Compression of real stored records, codec by codec: reads every compact
//! record of a data dir (e.g. the one `benchmarks/record_size.py` keeps of
//! Prometheus scraping the node exporter), unpacks its body and series
//! table, and packs them again with each codec, counting bytes and time.
//! What chose the record's zstd level (BENCHMARKS.md "Stored record").
//!
//!     cargo run --release --example record_codecs -- DATA_DIR [ROUNDS]
//!
//! Prints one JSON object: per codec, bytes in, bytes out, and the best of
//! ROUNDS (default 5) packing times in MB/s of input.

use std::path::PathBuf;
use std::time::Instant;

use metricstream::data_dir::{partition_dir, stored_partitions};
use metricstream::log::LogReader;
use metricstream::record::read::unpacked_parts;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .ok_or_else(|| anyhow::anyhow!("usage: record_codecs DATA_DIR [ROUNDS]"))?,
    );
    let rounds: usize = args.next().map_or(Ok(5), |r| r.parse())?;
    let partitions =
        stored_partitions(&dir)?.ok_or_else(|| anyhow::anyhow!("no queue in {}", dir.display()))?;
    let mut parts: Vec<Vec<u8>> = Vec::new();
    let mut stored = 0usize;
    for p in 0..partitions {
        let mut reader = LogReader::open(&partition_dir(&dir, p))?;
        let mut next = reader.start_offset()?;
        let end = reader.high_watermark()?;
        while next < end {
            for r in reader.read(next, 1 << 20)? {
                next = r.offset + 1;
                stored += r.value.len();
                if let Some((table, body)) = unpacked_parts(r.offset, &r.value)? {
                    parts.push(table);
                    parts.push(body);
                }
            }
        }
    }
    let input: usize = parts.iter().map(Vec::len).sum();
    type Pack = Box<dyn Fn(&[u8]) -> anyhow::Result<usize>>;
    let mut codecs: Vec<(String, Pack)> = vec![("none".into(), Box::new(|b: &[u8]| Ok(b.len())))];
    for level in [-3, 1, 3, 6, 9] {
        // One context per level, reused, as the record writer does.
        let packer = std::cell::RefCell::new(zstd::bulk::Compressor::new(level)?);
        codecs.push((
            format!("zstd {level}"),
            Box::new(move |b: &[u8]| Ok(packer.borrow_mut().compress(b)?.len())),
        ));
    }
    codecs.push((
        "lz4".into(),
        Box::new(|b: &[u8]| Ok(lz4_flex::compress(b).len())),
    ));
    codecs.push((
        "snappy".into(),
        Box::new(|b: &[u8]| Ok(snap::raw::Encoder::new().compress_vec(b)?.len())),
    ));
    let mut rows = Vec::new();
    for (name, pack) in &codecs {
        let mut best = f64::INFINITY;
        let mut out = 0;
        for _ in 0..rounds {
            let started = Instant::now();
            out = 0;
            for p in &parts {
                // A part too small to pay for a frame stays as it is (as the writer does).
                out += if p.len() < 128 {
                    p.len()
                } else {
                    pack(p)?.min(p.len())
                };
            }
            best = best.min(started.elapsed().as_secs_f64());
        }
        rows.push(serde_json::json!({
            "codec": name, "bytes_in": input, "bytes_out": out,
            "mb_per_s": input as f64 / best / 1e6,
        }));
    }
    println!(
        "{}",
        serde_json::json!({"records_bytes": stored, "parts": parts.len(), "codecs": rows})
    );
    Ok(())
}
