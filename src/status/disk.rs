//! The data directory's disk: what it uses (as `du` counts it: allocated
//! blocks), what is free on its file system (statvfs), and how long an
//! outage of every consumer it could ride out at the current write rate.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

/// Bytes allocated under `path` (files and directories, `du -s -B1`'s
/// figure): `st_blocks` counts 512-byte units whatever the block size.
/// Files that vanish while walked (retention, a rename) are skipped.
pub fn allocated_bytes(path: &Path) -> io::Result<u64> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut total = meta.blocks() * 512;
    if meta.is_dir() {
        let entries = match fs::read_dir(path) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        for entry in entries {
            total += allocated_bytes(&entry?.path())?;
        }
    }
    Ok(total)
}

/// The file system holding `path`: (free for unprivileged users, total).
pub fn free_and_total(path: &Path) -> io::Result<(u64, u64)> {
    let s = rustix::fs::statvfs(path).map_err(io::Error::from)?;
    Ok((
        s.f_bavail.saturating_mul(s.f_frsize),
        s.f_blocks.saturating_mul(s.f_frsize),
    ))
}

/// What ends an outage's buffering first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutageLimit {
    /// Writes fail once the file system is full.
    DiskFull,
    /// Size retention deletes the oldest segments, records nobody read among them.
    RetentionBytes,
    /// Time retention deletes them.
    RetentionTime,
}

/// How long the log could keep everything written during an outage of
/// every consumer, in hours, and what ends it; `None` when nothing is
/// being written (no end at this rate).
///
/// The first of: the disk fills (free ÷ write rate; retention may free
/// space sooner, so this is the pessimistic end), size retention starts
/// deleting records written since the outage began (partitions × limit ÷
/// write rate: a record survives until that many more bytes were written
/// after it in its partition, the load spread evenly), time retention
/// deletes them (the limit itself).
pub fn outage(
    free: u64,
    write_bytes_per_second: f64,
    partitions: u32,
    retention_bytes: Option<u64>,
    retention: Option<Duration>,
) -> Option<(f64, OutageLimit)> {
    if write_bytes_per_second <= 0.0 {
        return None;
    }
    let hours = |bytes: f64| bytes / write_bytes_per_second / 3600.0;
    let mut best = (hours(free as f64), OutageLimit::DiskFull);
    if let Some(limit) = retention_bytes {
        let h = hours(limit as f64 * f64::from(partitions));
        if h < best.0 {
            best = (h, OutageLimit::RetentionBytes);
        }
    }
    if let Some(limit) = retention {
        let h = limit.as_secs_f64() / 3600.0;
        if h < best.0 {
            best = (h, OutageLimit::RetentionTime);
        }
    }
    Some(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_limit_wins() {
        let gib = 1u64 << 30;
        // 1 MiB/s: 10 GiB free lasts 2.84 h; 4 × 1 GiB of retention 1.14 h.
        let rate = (1 << 20) as f64;
        let (h, why) = outage(10 * gib, rate, 4, Some(gib), None).unwrap();
        assert_eq!(why, OutageLimit::RetentionBytes);
        assert!((h - 4096.0 / 3600.0).abs() < 1e-9, "{h}");
        let (h, why) = outage(gib, rate, 4, Some(gib), None).unwrap();
        assert_eq!(why, OutageLimit::DiskFull);
        assert!((h - 1024.0 / 3600.0).abs() < 1e-9, "{h}");
        let hour = Duration::from_secs(600);
        let (h, why) = outage(10 * gib, rate, 4, None, Some(hour)).unwrap();
        assert_eq!((h, why), (600.0 / 3600.0, OutageLimit::RetentionTime));
        assert_eq!(outage(gib, 0.0, 4, None, None), None);
    }

    #[test]
    fn allocated_bytes_counts_what_du_counts() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("a")).unwrap();
        fs::write(dir.path().join("a/f"), vec![1u8; 100_000]).unwrap();
        let n = allocated_bytes(dir.path()).unwrap();
        // The file's 100 000 bytes take whole blocks, plus two directories.
        assert!((100_000..200_000).contains(&n), "{n}");
        assert_eq!(allocated_bytes(&dir.path().join("none")).unwrap(), 0);
        let (free, total) = free_and_total(dir.path()).unwrap();
        assert!(free > 0 && free <= total);
    }
}
