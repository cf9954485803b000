//! Bringing a partition directory back to a valid log when the writer opens it.
//!
//! After a clean shutdown the segments are trusted (only index sanity checks
//! and the last segment's tail are verified). After a crash every record is
//! CRC-checked and exactly the valid prefix of the whole log is kept: the
//! first invalid record truncates its segment and every later segment goes.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

use tracing::warn;

use super::config::LogConfig;
use super::files::{self, CLEAN_SHUTDOWN, HWM_TMP};
use super::index::{self, IndexEntry, IndexPolicy, IndexWriter};
use super::record::Invalid;
use super::segment::{self, delete_segment, ActiveSegment, ClosedSegment, ScanEnd};

/// What [`PartitionLog::open`](super::PartitionLog::open) found; the caller logs it.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Segments in the log after recovery.
    pub segments: usize,
    pub next_offset: u64,
    /// The clean-shutdown marker was present.
    pub clean: bool,
    /// Log bytes cut: torn or corrupt tail plus any deleted later segments.
    pub truncated_bytes: u64,
    /// Which file was cut, at which byte, and why.
    pub cut: Option<String>,
}

/// The recovered state the writer starts from.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub closed: Vec<ClosedSegment>,
    pub active: ActiveSegment,
    pub next_offset: u64,
    pub report: Recovery,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Clean shutdown, not the last segment: check the index only.
    Trust,
    /// Clean shutdown, last segment: also verify records after the last index entry.
    Tail,
    /// After a crash: verify every record and rebuild the index.
    Full,
}

/// One segment after checking.
#[derive(Debug)]
struct Checked {
    base: u64,
    file: File,
    /// Valid bytes (the file has been truncated to this).
    size: u64,
    /// Unknown for trusted segments: the next segment's base stands in.
    next_offset: Option<u64>,
    index_entries: usize,
    last_index_pos: Option<u64>,
    /// Where and why the segment was cut, with the bytes cut.
    cut: Option<(u64, Invalid, u64)>,
}

/// Brings `dir` back to a valid log, in the order a crash anywhere in it
/// survives: tidy the directory, check the segments in order, delete those
/// after the end of the valid log, reopen the last one as the active
/// segment, then make the directory and the high watermark durable.
pub(crate) fn recover(dir: &Path, dir_file: &File, config: &LogConfig) -> io::Result<Recovered> {
    // Remove the marker first: from here on a crash must mean a full scan.
    let clean = files::remove_if_exists(&dir.join(CLEAN_SHUTDOWN))?;
    let (logs, tidied) = tidy(dir)?;
    let mut report = Recovery {
        clean,
        ..Recovery::default()
    };
    let mut kept = check_segments(dir, &logs, clean, config, &mut report)?;
    let deleted = delete_after_end(dir, &logs[kept.len()..], &mut report)?;
    let last = kept.pop();
    let created = last.is_none();
    let (active, next_offset) = open_active(dir, last, config)?;
    if clean || tidied || deleted || created {
        dir_file.sync_all()?;
    }
    files::write_hwm(dir, next_offset)?;

    let closed: Vec<ClosedSegment> = kept
        .iter()
        .map(|c| ClosedSegment {
            base: c.base,
            size: c.size,
        })
        .collect();
    report.segments = closed.len() + 1;
    report.next_offset = next_offset;
    Ok(Recovered {
        closed,
        active,
        next_offset,
        report,
    })
}

/// Removes what a crash can leave beside the segments (a half-written
/// high watermark, indexes whose segment is gone); the segments' bases in
/// order, and whether anything was removed.
fn tidy(dir: &Path) -> io::Result<(Vec<u64>, bool)> {
    let mut removed = files::remove_if_exists(&dir.join(HWM_TMP))?;
    let listing = files::list(dir)?;
    for base in &listing.indexes {
        if listing.logs.binary_search(base).is_err() {
            removed |= files::remove_if_exists(&files::index_path(dir, *base))?;
        }
    }
    Ok((listing.logs, removed))
}

/// Checks the segments `logs` in order and returns those that belong to
/// the valid log: all of them, or those before a gap in the offsets, up to
/// and including the first one that had to be cut (noted in `report`).
fn check_segments(
    dir: &Path,
    logs: &[u64],
    clean: bool,
    config: &LogConfig,
    report: &mut Recovery,
) -> io::Result<Vec<Checked>> {
    let mut kept: Vec<Checked> = Vec::new();
    for (i, &base) in logs.iter().enumerate() {
        if let Some(end) = kept.last().and_then(|prev| prev.next_offset) {
            if end != base {
                let why = format!(
                    "{}: gap, previous segment ends at offset {end}",
                    files::log_name(base)
                );
                warn!(dir = %dir.display(), "{why}");
                report.cut = Some(why);
                break;
            }
        }
        let mode = match (clean, i + 1 == logs.len()) {
            (false, _) => Mode::Full,
            (true, false) => Mode::Trust,
            (true, true) => Mode::Tail,
        };
        let checked = check_segment(dir, base, mode, config)?;
        let was_cut = checked.cut.is_some();
        if let Some((pos, invalid, bytes)) = &checked.cut {
            let why = format!("{}: {invalid} at byte {pos}", files::log_name(base));
            warn!(dir = %dir.display(), truncated_bytes = bytes, "{why}");
            report.truncated_bytes += bytes;
            report.cut = Some(why);
        }
        kept.push(checked);
        if was_cut {
            break;
        }
    }
    Ok(kept)
}

/// Deletes the segments `doomed`, which follow the end of the valid log,
/// adding them to `report`; whether there were any.
fn delete_after_end(dir: &Path, doomed: &[u64], report: &mut Recovery) -> io::Result<bool> {
    if doomed.is_empty() {
        return Ok(false);
    }
    let mut bytes = 0;
    for &base in doomed {
        bytes += delete_segment(dir, base)?;
    }
    warn!(
        dir = %dir.display(),
        segments = doomed.len(),
        bytes,
        "deleted segments after the end of the valid log"
    );
    report.truncated_bytes += bytes;
    if let Some(cut) = &mut report.cut {
        cut.push_str(&format!(
            "; deleted {} later segment(s), {bytes} bytes",
            doomed.len()
        ));
    }
    Ok(true)
}

/// The segment appends continue in (the last valid one, or a new empty
/// one at offset 0) and the offset the next append gets.
fn open_active(
    dir: &Path,
    last: Option<Checked>,
    config: &LogConfig,
) -> io::Result<(ActiveSegment, u64)> {
    let Some(last) = last else {
        let active = ActiveSegment::create(dir, 0, config.index_interval_bytes)?;
        return Ok((active, 0));
    };
    let next = last
        .next_offset
        .ok_or_else(|| io::Error::other("recovery left the end of the last segment unknown"))?;
    let active = ActiveSegment::reopen(
        dir,
        last.base,
        last.file,
        last.size,
        last.index_entries,
        last.last_index_pos,
        config.index_interval_bytes,
    )?;
    Ok((active, next))
}

fn check_segment(dir: &Path, base: u64, mode: Mode, config: &LogConfig) -> io::Result<Checked> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(files::log_path(dir, base))?;
    let len = file.metadata()?.len();
    let index_path = files::index_path(dir, base);

    if mode != Mode::Full {
        let (entries, index_ok) = index::load(&index_path, len)?;
        if index_ok {
            let last = entries.last().copied();
            if mode == Mode::Trust {
                return Ok(Checked {
                    base,
                    file,
                    size: len,
                    next_offset: None,
                    index_entries: entries.len(),
                    last_index_pos: last.map(|e| u64::from(e.position)),
                    cut: None,
                });
            }
            let (pos, offset) = last.map_or((0, base), |e| {
                (u64::from(e.position), base + u64::from(e.rel_offset))
            });
            let end = segment::scan(&file, len, pos, offset, |_, _, _| {})?;
            // An entry that does not point at its record means the index lies: rescan all.
            let index_lies = last.is_some() && end.position == pos && end.invalid.is_some();
            if !index_lies {
                return finish(base, file, len, entries.len(), last, end);
            }
            warn!(
                dir = %dir.display(),
                segment = base,
                "offset index does not match its segment; rebuilding it"
            );
        }
    }

    let mut policy = IndexPolicy::new(config.index_interval_bytes, 0);
    let mut entries = Vec::new();
    let end = segment::scan(&file, len, 0, base, |offset, pos, size| {
        let (Ok(rel), Ok(pos)) = (u32::try_from(offset - base), u32::try_from(pos)) else {
            return;
        };
        entries.extend(policy.observe(rel, pos, size));
    })?;
    if let Err(e) = IndexWriter::rewrite(&index_path, &entries) {
        // A full disk must not keep the log from opening: an empty index is
        // valid (readers scan from the segment start), and truncating frees space.
        warn!(dir = %dir.display(), segment = base, error = %e, "cannot rewrite the offset index; leaving it empty");
        File::create(&index_path)?;
        entries.clear();
    }
    if end.invalid.is_none() {
        // The records may only have been in the page cache of a crashed process.
        file.sync_data()?;
    }
    let last = entries.last().copied();
    finish(base, file, len, entries.len(), last, end)
}

/// Truncates the segment where its scan stopped early.
fn finish(
    base: u64,
    file: File,
    len: u64,
    index_entries: usize,
    last_index: Option<IndexEntry>,
    end: ScanEnd,
) -> io::Result<Checked> {
    let cut = match end.invalid {
        // Space the writer preallocated and never filled: not a cut.
        Some(_) if segment::is_zeros(&file, end.position, len)? => {
            file.set_len(end.position)?;
            file.sync_data()?;
            None
        }
        Some(invalid) => {
            file.set_len(end.position)?;
            file.sync_data()?;
            Some((end.position, invalid, len - end.position))
        }
        None => None,
    };
    Ok(Checked {
        base,
        file,
        size: end.position,
        next_offset: Some(end.next_offset),
        index_entries,
        last_index_pos: last_index.map(|e| u64::from(e.position)),
        cut,
    })
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::FileExt;

    use super::*;
    use crate::log::testutil::{append, config, fill, frames, read_all, records, segment_bases};
    use crate::log::PartitionLog;

    /// A log of 100 records over several segments, left as after a crash.
    fn crashed_log(dir: &Path) -> Vec<u64> {
        let (mut log, _) = PartitionLog::open(dir, config(500)).unwrap();
        fill(&mut log, 100, 3);
        drop(log);
        let bases = segment_bases(dir);
        assert!(bases.len() >= 5);
        bases
    }

    fn log_len(dir: &Path, base: u64) -> u64 {
        fs::metadata(files::log_path(dir, base)).unwrap().len()
    }

    fn reopen(dir: &Path) -> (PartitionLog, Recovery) {
        PartitionLog::open(dir, config(500)).unwrap()
    }

    #[test]
    fn empty_directory_is_an_empty_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/partition");
        let (log, rec) = PartitionLog::open(&path, config(500)).unwrap();
        assert_eq!((rec.segments, rec.next_offset, rec.clean), (1, 0, false));
        assert_eq!((rec.truncated_bytes, rec.cut), (0, None));
        assert_eq!((log.start_offset(), log.next_offset()), (0, 0));
        assert_eq!(segment_bases(&path), vec![0]);
        assert_eq!(files::read_hwm(&path).unwrap(), 0);
    }

    #[test]
    fn clean_shutdown_is_trusted_and_marker_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path(), config(500)).unwrap();
        fill(&mut log, 100, 3);
        log.close().unwrap();
        assert!(dir.path().join(CLEAN_SHUTDOWN).exists());
        let bases = segment_bases(dir.path());
        let (mut log, rec) = reopen(dir.path());
        assert!(rec.clean);
        assert!(!dir.path().join(CLEAN_SHUTDOWN).exists());
        assert_eq!(rec.segments, bases.len());
        assert_eq!(
            (rec.next_offset, rec.truncated_bytes, rec.cut),
            (100, 0, None)
        );
        append(&mut log, 100..110);
        log.sync().unwrap();
        assert_eq!(read_all(dir.path(), 0), records(0..110));
    }

    #[test]
    fn crash_without_damage_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let bases = crashed_log(dir.path());
        let (_log, rec) = reopen(dir.path());
        assert!(!rec.clean);
        assert_eq!((rec.segments, rec.next_offset), (bases.len(), 100));
        assert_eq!((rec.truncated_bytes, rec.cut), (0, None));
    }

    #[test]
    fn crc_corruption_cuts_there_and_drops_later_segments() {
        let dir = tempfile::tempdir().unwrap();
        let bases = crashed_log(dir.path());
        let victim = bases[2];
        let frames = frames(dir.path(), victim);
        let (offset, pos, size) = frames[2];
        let path = files::log_path(dir.path(), victim);
        let mut bytes = fs::read(&path).unwrap();
        bytes[(pos + size - 1) as usize] ^= 1;
        fs::write(&path, &bytes).unwrap();
        let later: u64 = bases[3..].iter().map(|&b| log_len(dir.path(), b)).sum();

        let (mut log, rec) = reopen(dir.path());
        assert_eq!(rec.next_offset, offset);
        assert_eq!(rec.segments, 3);
        assert_eq!(rec.truncated_bytes, bytes.len() as u64 - pos + later);
        let cut = rec.cut.unwrap();
        assert!(cut.contains(&files::log_name(victim)), "{cut}");
        assert!(
            cut.contains(&format!("crc mismatch at offset {offset}")),
            "{cut}"
        );
        assert!(cut.contains(&format!("at byte {pos}")), "{cut}");
        assert_eq!(segment_bases(dir.path()), bases[..3]);
        assert_eq!(log_len(dir.path(), victim), pos);
        assert_eq!(files::read_hwm(dir.path()).unwrap(), offset);
        assert_eq!(read_all(dir.path(), 0), records(0..offset));
        // Appends continue right where the valid log ended.
        append(&mut log, offset..offset + 20);
        log.sync().unwrap();
        assert_eq!(read_all(dir.path(), 0), records(0..offset + 20));
    }

    #[test]
    fn torn_tail_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let bases = crashed_log(dir.path());
        let last = *bases.last().unwrap();
        let frames = frames(dir.path(), last);
        let (offset, pos, size) = *frames.last().unwrap();
        let path = files::log_path(dir.path(), last);
        let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(pos + size / 2).unwrap();

        let (_log, rec) = reopen(dir.path());
        assert_eq!(rec.next_offset, offset);
        assert_eq!(rec.truncated_bytes, size / 2);
        assert!(rec.cut.unwrap().contains("past end of file"));
        assert_eq!(log_len(dir.path(), last), pos);
        assert_eq!(read_all(dir.path(), 0), records(0..offset));
    }

    /// Where the records of segment `base` end.
    fn data_len(dir: &Path, base: u64) -> u64 {
        frames(dir, base)
            .last()
            .map_or(0, |&(_, pos, size)| pos + size)
    }

    #[test]
    fn preallocated_zeros_are_not_a_cut() {
        let dir = tempfile::tempdir().unwrap();
        let bases = crashed_log(dir.path());
        let last = *bases.last().unwrap();
        let len = data_len(dir.path(), last);
        // The writer's own preallocation, plus more zeros (as a file system
        // that grew the file but never wrote the data leaves it).
        assert!(
            log_len(dir.path(), last) > len,
            "the active segment is preallocated"
        );
        let file = fs::OpenOptions::new()
            .write(true)
            .open(files::log_path(dir.path(), last))
            .unwrap();
        file.set_len(len + 4096).unwrap();

        let (_log, rec) = reopen(dir.path());
        assert_eq!((rec.next_offset, rec.truncated_bytes), (100, 0));
        assert_eq!(rec.cut, None);
        assert_eq!(read_all(dir.path(), 0), records(0..100));
    }

    #[test]
    fn garbage_after_zeros_is_a_cut() {
        let dir = tempfile::tempdir().unwrap();
        let bases = crashed_log(dir.path());
        let last = *bases.last().unwrap();
        let len = data_len(dir.path(), last);
        let file = fs::OpenOptions::new()
            .write(true)
            .open(files::log_path(dir.path(), last))
            .unwrap();
        file.set_len(len + 4096).unwrap();
        file.write_all_at(b"x", len + 4000).unwrap();

        let (_log, rec) = reopen(dir.path());
        assert_eq!((rec.next_offset, rec.truncated_bytes), (100, 4096));
        let cut = rec.cut.unwrap();
        assert!(
            cut.contains(&format!("length 0 below the 24-byte header at byte {len}")),
            "{cut}"
        );
        assert_eq!(log_len(dir.path(), last), len);
    }

    #[test]
    fn missing_segment_is_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        let bases = crashed_log(dir.path());
        fs::remove_file(files::log_path(dir.path(), bases[2])).unwrap();
        let (_log, rec) = reopen(dir.path());
        assert_eq!(rec.next_offset, bases[2]);
        assert!(rec.cut.unwrap().contains("gap"));
        assert_eq!(segment_bases(dir.path()), bases[..2]);
        assert!(!files::index_path(dir.path(), bases[2]).exists());
        assert!(!files::index_path(dir.path(), bases[3]).exists());
        assert_eq!(read_all(dir.path(), 0), records(0..bases[2]));
    }

    #[test]
    fn bad_or_missing_indexes_are_rebuilt_after_clean_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path(), config(500)).unwrap();
        fill(&mut log, 100, 3);
        log.close().unwrap();
        let bases = segment_bases(dir.path());
        let good = fs::read(files::index_path(dir.path(), bases[1])).unwrap();
        assert!(!good.is_empty());
        fs::remove_file(files::index_path(dir.path(), bases[1])).unwrap();
        fs::write(files::index_path(dir.path(), bases[2]), [0xff; 13]).unwrap();
        let last = *bases.last().unwrap();
        fs::write(files::index_path(dir.path(), last), [0; 64]).unwrap();

        let (_log, rec) = reopen(dir.path());
        assert!(rec.clean);
        assert_eq!((rec.next_offset, rec.truncated_bytes), (100, 0));
        assert_eq!(
            fs::read(files::index_path(dir.path(), bases[1])).unwrap(),
            good
        );
        assert_eq!(
            fs::metadata(files::index_path(dir.path(), bases[2]))
                .unwrap()
                .len()
                % 8,
            0
        );
        assert_eq!(read_all(dir.path(), 0), records(0..100));
    }

    #[test]
    fn clean_shutdown_still_checks_the_last_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path(), config(5000)).unwrap();
        fill(&mut log, 100, 3);
        log.close().unwrap();
        let last = *segment_bases(dir.path()).last().unwrap();
        let (offset, pos, _) = *frames(dir.path(), last).last().unwrap();
        let path = files::log_path(dir.path(), last);
        let mut bytes = fs::read(&path).unwrap();
        bytes[pos as usize + 30] ^= 0xff;
        fs::write(&path, &bytes).unwrap();

        let (_log, rec) = reopen(dir.path());
        assert!(rec.clean);
        assert_eq!(rec.next_offset, offset);
        assert!(rec.cut.unwrap().contains("crc mismatch"));
    }

    #[test]
    fn stray_files_are_cleaned_up() {
        let dir = tempfile::tempdir().unwrap();
        crashed_log(dir.path());
        fs::write(files::index_path(dir.path(), 5000), [1; 8]).unwrap();
        fs::write(dir.path().join(HWM_TMP), [1; 8]).unwrap();
        fs::write(dir.path().join("unrelated"), b"x").unwrap();
        let (_log, rec) = reopen(dir.path());
        assert_eq!(rec.next_offset, 100);
        assert!(!files::index_path(dir.path(), 5000).exists());
        assert!(!dir.path().join(HWM_TMP).exists());
        assert!(dir.path().join("unrelated").exists());
    }
}
