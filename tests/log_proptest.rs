//! Whatever happens to one file of a partition directory after a sync, the
//! writer reopens it to exactly the longest undamaged prefix of what was
//! written, readers see exactly that, and appends continue from there.

use std::fs;
use std::path::{Path, PathBuf};

use metricstream::log::{
    LogConfig, LogReader, NewRecord, PartitionLog, Record, Recovery, RECORD_OVERHEAD,
};
use proptest::prelude::*;
use proptest::sample::Index;

#[derive(Clone, Debug)]
struct Rec {
    timestamp_ms: i64,
    key: Vec<u8>,
    value: Vec<u8>,
}

impl Rec {
    fn size(&self) -> u64 {
        (RECORD_OVERHEAD + self.key.len() + self.value.len()) as u64
    }

    fn as_new(&self) -> NewRecord<'_> {
        NewRecord {
            timestamp_ms: self.timestamp_ms,
            key: &self.key,
            value: &self.value,
        }
    }

    fn at(&self, offset: u64) -> Record {
        Record {
            offset,
            timestamp_ms: self.timestamp_ms,
            key: self.key.clone().into(),
            value: self.value.clone().into(),
        }
    }
}

#[derive(Clone, Debug)]
enum Damage {
    Truncate,
    Zeros(usize),
    Garbage(Vec<u8>),
}

#[derive(Clone, Debug)]
struct Case {
    segment_bytes: u64,
    index_interval_bytes: u32,
    /// Each batch, and whether to sync after it (there is always a final sync).
    batches: Vec<(Vec<Rec>, bool)>,
    /// Close cleanly (only index files and the last segment's tail may then be damaged).
    clean: bool,
    target: Index,
    at: Index,
    damage: Damage,
    more: Vec<Rec>,
}

fn rec() -> impl Strategy<Value = Rec> {
    (
        any::<i64>(),
        prop::collection::vec(any::<u8>(), 0..16),
        prop::collection::vec(any::<u8>(), 0..160),
    )
        .prop_map(|(timestamp_ms, key, value)| Rec {
            timestamp_ms,
            key,
            value,
        })
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        Just(Damage::Truncate),
        (1..64usize).prop_map(Damage::Zeros),
        prop::collection::vec(any::<u8>(), 1..32).prop_map(Damage::Garbage),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        200..1500u64,
        8..400u32,
        prop::collection::vec((prop::collection::vec(rec(), 1..8), any::<bool>()), 1..10),
        any::<bool>(),
        any::<Index>(),
        any::<Index>(),
        damage(),
        prop::collection::vec(rec(), 1..6),
    )
        .prop_map(
            |(segment_bytes, index_interval_bytes, batches, clean, target, at, damage, more)| {
                Case {
                    segment_bytes,
                    index_interval_bytes,
                    batches,
                    clean,
                    target,
                    at,
                    damage,
                    more,
                }
            },
        )
}

fn segment_bases(dir: &Path) -> Vec<u64> {
    let mut bases: Vec<u64> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".log").map(|b| b.parse().unwrap())
        })
        .collect();
    bases.sort_unstable();
    bases
}

fn log_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

fn index_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.index"))
}

fn total_log_bytes(dir: &Path) -> u64 {
    segment_bases(dir)
        .iter()
        .map(|&b| fs::metadata(log_path(dir, b)).unwrap().len())
        .sum()
}

/// Everything a fresh reader returns, in reads of modest size.
fn read_all(dir: &Path) -> Vec<Record> {
    let mut reader = LogReader::open(dir).unwrap();
    let mut out: Vec<Record> = Vec::new();
    let mut next = 0;
    loop {
        let got = reader.read(next, 700).unwrap();
        let Some(last) = got.last() else { break };
        next = last.offset + 1;
        out.extend(got);
    }
    out
}

/// Applies the damage; returns the first byte that actually changed, if any.
fn apply(path: &Path, at: &Index, damage: &Damage) -> Option<u64> {
    let before = fs::read(path).unwrap();
    if before.is_empty() {
        return None;
    }
    let start = at.index(before.len());
    let mut after = before.clone();
    match damage {
        Damage::Truncate => after.truncate(start),
        Damage::Zeros(n) => {
            let end = (start + n).min(after.len());
            after[start..end].fill(0);
        }
        Damage::Garbage(bytes) => {
            let end = (start + bytes.len()).min(after.len());
            after[start..end].copy_from_slice(&bytes[..end - start]);
        }
    }
    fs::write(path, &after).unwrap();
    let changed = before
        .iter()
        .zip(&after)
        .position(|(a, b)| a != b)
        .or((after.len() < before.len()).then_some(after.len()));
    changed.map(|p| p as u64)
}

fn run(case: Case) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p0");
    let config = LogConfig {
        segment_bytes: case.segment_bytes,
        index_interval_bytes: case.index_interval_bytes,
        ..LogConfig::default()
    };

    // Write.
    let (mut log, _) = PartitionLog::open(&dir, config.clone()).unwrap();
    let mut written: Vec<Rec> = Vec::new();
    for (batch, sync) in &case.batches {
        let news: Vec<NewRecord<'_>> = batch.iter().map(Rec::as_new).collect();
        let first = log.append(&news).unwrap();
        assert_eq!(first, written.len() as u64);
        written.extend(batch.iter().cloned());
        if *sync {
            log.sync().unwrap();
        }
    }
    if case.clean {
        log.close().unwrap();
    } else {
        log.sync().unwrap();
        drop(log);
    }
    let total = written.len() as u64;

    // Damage one file.
    let bases = segment_bases(&dir);
    let last = *bases.last().unwrap();
    let mut targets: Vec<PathBuf> = bases.iter().map(|&b| index_path(&dir, b)).collect();
    if case.clean {
        targets.push(log_path(&dir, last));
    } else {
        targets.extend(bases.iter().map(|&b| log_path(&dir, b)));
        targets.push(dir.join("hwm"));
    }
    let target = &targets[case.target.index(targets.len())];
    let is_log = target.extension().is_some_and(|e| e == "log");
    // After a clean shutdown closed segments are trusted: only a torn tail is checked.
    let damage = if case.clean && is_log {
        Damage::Truncate
    } else {
        case.damage.clone()
    };
    let changed = apply(target, &case.at, &damage);
    let bytes_before = total_log_bytes(&dir);
    let last_before = fs::read(log_path(&dir, last)).unwrap();

    // The longest prefix that lies wholly before the first changed byte.
    let mut kept = total;
    if let (true, Some(q)) = (is_log, changed) {
        let i = bases
            .iter()
            .position(|b| log_path(&dir, *b) == *target)
            .unwrap();
        let end = bases.get(i + 1).copied().unwrap_or(total);
        let mut pos = 0;
        kept = bases[i];
        for r in &written[bases[i] as usize..end as usize] {
            pos += r.size();
            if pos > q {
                break;
            }
            kept += 1;
        }
    }

    // Recover.
    let (mut log, rec): (PartitionLog, Recovery) =
        PartitionLog::open(&dir, config.clone()).unwrap();
    assert_eq!(rec.clean, case.clean);
    assert_eq!(rec.next_offset, kept, "{rec:?} {target:?} {damage:?}");
    assert_eq!(log.next_offset(), kept);
    let removed = bytes_before - total_log_bytes(&dir);
    if rec.cut.is_none() {
        // Without a cut, recovery removes only the active segment's
        // preallocated zeros (or zeros that look like them).
        assert_eq!(rec.truncated_bytes, 0, "{rec:?}");
        let last_after = fs::metadata(log_path(&dir, last)).unwrap().len() as usize;
        assert_eq!(removed as usize, last_before.len() - last_after, "{rec:?}");
        assert!(last_before[last_after..].iter().all(|&b| b == 0), "{rec:?}");
    } else {
        assert_eq!(rec.truncated_bytes, removed, "{rec:?}");
    }
    assert_eq!(rec.segments, segment_bases(&dir).len());
    // A cut exactly at a record boundary of the last segment just looks like a shorter log.
    assert_eq!(rec.cut.is_some(), rec.truncated_bytes > 0, "{rec:?}");
    let expected: Vec<Record> = written[..kept as usize]
        .iter()
        .enumerate()
        .map(|(o, r)| r.at(o as u64))
        .collect();
    assert_eq!(read_all(&dir), expected);

    // Appends continue at next_offset, and survive another crash.
    let news: Vec<NewRecord<'_>> = case.more.iter().map(Rec::as_new).collect();
    assert_eq!(log.append(&news).unwrap(), kept);
    log.sync().unwrap();
    drop(log);
    let (log, rec) = PartitionLog::open(&dir, config).unwrap();
    let end = kept + case.more.len() as u64;
    assert_eq!((rec.next_offset, rec.truncated_bytes), (end, 0));
    assert_eq!(log.next_offset(), end);
    let mut expected = expected;
    expected.extend(
        case.more
            .iter()
            .enumerate()
            .map(|(i, r)| r.at(kept + i as u64)),
    );
    assert_eq!(read_all(&dir), expected);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn recovery_keeps_exactly_the_valid_prefix(case in case()) {
        run(case);
    }
}
