//! What the fuzz targets in `fuzz/` check, in the library so that
//! `tests/fuzz_corpus.rs` replays the same corpus and crash reproducers with
//! the same checks on stable in every CI run, without a fuzzer.
//!
//! Each check panics on a violated property; any input is allowed.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::batch;
use crate::http;
use crate::log::{LogConfig, LogReader, NewRecord, PartitionLog};
use crate::record::json::{normalize, StoredBatch};
use crate::record::MetricType;

mod otlp;
pub use otlp::check_otlp;

/// Body limit used when the input asks for gzip (the server's default).
const MAX_BODY: usize = 1 << 20;

/// The request decoder: the first byte's low bit says `Content-Encoding:
/// gzip`, the rest is the body. A body is refused with a short message
/// (never a panic), or accepted within every limit, and what would be stored
/// is itself a valid request holding the same metrics.
pub fn check_decode(data: &[u8]) {
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    if flags & 1 == 1 {
        match http::body::gunzip(body, MAX_BODY) {
            Ok(plain) => check_body(&plain),
            Err(e) => assert!(
                e.status.is_client_error() && !e.message.is_empty(),
                "gunzip: {e:?}"
            ),
        }
    } else {
        check_body(body);
    }
}

fn check_body(body: &[u8]) {
    let metrics = match batch::decode(body) {
        Ok(m) => m,
        Err(e) => {
            assert!(!e.0.is_empty(), "empty error message");
            assert!(
                e.0.len() <= batch::MAX_ERROR_LEN + 8,
                "{}-byte error message",
                e.0.len()
            );
            return;
        }
    };
    assert!((1..=batch::MAX_METRICS).contains(&metrics.len()));
    for m in &metrics {
        assert!(!m.name.is_empty() && m.name.len() <= batch::MAX_NAME_LEN);
        assert!(!m.name.chars().any(char::is_control), "{:?}", m.name);
        assert!(m.value.is_finite());
        assert!(m.tags.len() <= batch::MAX_TAGS);
        for (k, v) in &m.tags {
            assert!(
                !k.is_empty() && k.len() <= batch::MAX_TAG_LEN && v.len() <= batch::MAX_TAG_LEN
            );
        }
    }
    let expected: Vec<(String, u64, MetricType, usize)> = metrics
        .iter()
        .map(|m| {
            (
                m.name.to_string(),
                m.value.as_f64().to_bits(),
                m.kind,
                m.tags.len(),
            )
        })
        .collect();
    let stored_bytes = normalize("fuzz", 1, metrics).expect("a batch is stored");
    let stored: StoredBatch<'_> =
        serde_json::from_slice(&stored_bytes).expect("a stored batch reads back");
    assert_eq!(stored.client_id, "fuzz");
    // A stored batch is a request body too (the extra fields are ignored).
    let again = batch::decode(&stored_bytes).expect("a stored batch is a valid request");
    for got in [&stored.metrics, &again] {
        assert_eq!(got.len(), expected.len());
        for (m, (name, bits, kind, tags)) in got.iter().zip(&expected) {
            assert_eq!(
                (&*m.name, m.kind, m.tags.len()),
                (name.as_str(), *kind, *tags)
            );
            // serde_json's default float parser may be one ulp off.
            assert!(
                m.value.as_f64().to_bits().abs_diff(*bits) <= 1,
                "{} vs {}",
                m.value.as_f64(),
                f64::from_bits(*bits)
            );
            assert!(m.timestamp.is_some());
        }
    }
}

/// Log recovery. The first byte's low bit chooses the input:
/// - 0: the bytes are the files themselves (segment 0, its index, and a
///   later segment, separated by [`FILE_SEPARATOR`]), as after a crash;
/// - 1: a valid log is written, closed cleanly or dropped as in a crash,
///   and then damaged by the operations the bytes describe.
///
/// Either way opening must succeed, every kept record must read back with
/// contiguous offsets up to the high watermark, appends must continue, and
/// a clean reopen must find the same log. For a damaged valid log, every
/// record before the first damaged byte must be kept, unchanged.
pub fn check_recovery(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let dir = TempDir::new();
    let path = dir.0.join("p");
    let intact = if flags & 1 == 0 {
        write_raw(&path, flags, rest);
        0
    } else {
        damage_valid_log(&path, flags, rest)
    };
    let config = LogConfig {
        segment_bytes: 300,
        index_interval_bytes: 64,
        ..LogConfig::default()
    };
    let (mut log, _) = PartitionLog::open(&path, config.clone())
        .unwrap_or_else(|e| panic!("recovery refused the directory: {e}"));
    let (start, next) = (log.start_offset(), log.next_offset());
    assert!(start <= next);
    assert_eq!(log.high_watermark(), next);
    assert!(
        next >= intact,
        "kept up to {next}, but {intact} records were intact"
    );
    let kept = read_all(&path, start);
    let offsets: Vec<u64> = kept.iter().map(|r| r.offset).collect();
    assert_eq!(
        offsets,
        (start..next).collect::<Vec<_>>(),
        "offsets read back"
    );
    for r in kept.iter().filter(|r| r.offset < intact) {
        assert_eq!(
            (r.key.to_vec(), r.value.to_vec()),
            original(r.offset),
            "record {}",
            r.offset
        );
    }

    let appended = NewRecord {
        timestamp_ms: 7,
        key: b"after",
        value: b"recovery",
    };
    assert_eq!(
        log.append(&[appended]).expect("append after recovery"),
        next
    );
    log.sync().expect("sync after recovery");
    let tail = read_all(&path, next);
    assert_eq!(tail.len(), 1);
    assert_eq!(
        (tail[0].offset, &tail[0].value[..]),
        (next, &b"recovery"[..])
    );
    log.close().expect("close");
    let (log, rec) = PartitionLog::open(&path, config).expect("reopen after a clean close");
    assert!(rec.clean && rec.cut.is_none(), "{rec:?}");
    assert_eq!((log.start_offset(), log.next_offset()), (start, next + 1));
}

/// Splits raw input into the files of [`check_recovery`]'s mode 0.
pub const FILE_SEPARATOR: &[u8] = b"\xff\xfeSEG\xfd\xfc";

fn write_raw(path: &Path, flags: u8, rest: &[u8]) {
    fs::create_dir_all(path).expect("create partition dir");
    let mut parts = split(rest, FILE_SEPARATOR);
    let log0 = parts.next().unwrap_or_default();
    fs::write(path.join(segment(0, "log")), log0).expect("write segment");
    if let Some(index0) = parts.next() {
        fs::write(path.join(segment(0, "index")), index0).expect("write index");
    }
    if let Some(log1) = parts.next() {
        let base = u64::from(flags >> 3).max(1);
        fs::write(path.join(segment(base, "log")), log1).expect("write segment");
    }
    // No clean-shutdown marker here: after a clean close recovery trusts
    // closed segments by design (as Kafka does), so arbitrary bytes under
    // the marker are outside its contract. Mode 1 covers clean closes.
    if flags & 4 != 0 {
        fs::write(path.join("hwm"), u64::MAX.to_le_bytes()).expect("write hwm");
    }
}

fn split<'a>(mut bytes: &'a [u8], sep: &'a [u8]) -> impl Iterator<Item = &'a [u8]> {
    std::iter::from_fn(move || {
        if bytes.is_empty() {
            return None;
        }
        match bytes.windows(sep.len()).position(|w| w == sep) {
            Some(i) => {
                let part = &bytes[..i];
                bytes = &bytes[i + sep.len()..];
                Some(part)
            }
            None => Some(std::mem::take(&mut bytes)),
        }
    })
}

fn segment(base: u64, ext: &str) -> String {
    format!("{base:020}.{ext}")
}

/// Key and value of record `offset` of the valid log.
fn original(offset: u64) -> (Vec<u8>, Vec<u8>) {
    (
        format!("k{offset}").into_bytes(),
        vec![offset as u8; (offset as usize * 7) % 50],
    )
}

/// Writes a valid log, then applies 5-byte operations `[file, op, pos lo,
/// pos hi, arg]`. Returns how many records lie wholly before the first
/// damaged byte of any segment (all of them if only other files changed).
fn damage_valid_log(path: &Path, flags: u8, rest: &[u8]) -> u64 {
    let (head, ops) = rest.split_at(rest.len().min(2));
    let count = u64::from(head.first().copied().unwrap_or(20) % 48) + 1;
    let config = LogConfig {
        segment_bytes: 200 + u64::from(head.get(1).copied().unwrap_or(0)) * 4,
        index_interval_bytes: 64,
        ..LogConfig::default()
    };
    let (mut log, _) = PartitionLog::open(path, config).expect("open a fresh log");
    let mut ends = Vec::new(); // (segment base, end position) of each record
    for offset in 0..count {
        let (key, value) = original(offset);
        let rec = NewRecord {
            timestamp_ms: offset as i64,
            key: &key,
            value: &value,
        };
        log.append(&[rec]).expect("append");
        ends.push(position_after(path, offset));
    }
    log.sync().expect("sync");
    let clean = flags & 2 != 0;
    if clean {
        log.close().expect("close");
    } else {
        drop(log);
    }

    let mut names: Vec<String> = fs::read_dir(path)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let last_log = names.iter().rfind(|n| n.ends_with(".log")).cloned();
    // First damaged (segment base, byte) of any segment.
    let mut damage: Option<(u64, u64)> = None;
    for op in ops.chunks_exact(5) {
        let name = &names[usize::from(op[0]) % names.len()];
        let file = path.join(name);
        let Ok(len) = fs::metadata(&file).map(|m| m.len()) else {
            continue; // deleted by an earlier operation
        };
        let pos = u64::from(u16::from_le_bytes([op[2], op[3]]));
        let base = name
            .strip_suffix(".log")
            .and_then(|b| b.parse::<u64>().ok());
        // After a clean close segments are trusted: only the last one's tail
        // is checked, so only it may be cut or extended (bit rot inside a
        // cleanly closed segment is not what recovery is for).
        if clean
            && base.is_some()
            && (Some(name) != last_log.as_ref() || op[1] % 5 == 0 || op[1] % 5 == 3)
        {
            continue;
        }
        let hit = match op[1] % 5 {
            0 if len > 0 => {
                let at = pos % len;
                let mut bytes = fs::read(&file).expect("read");
                bytes[at as usize] ^= op[4] | 1;
                fs::write(&file, bytes).expect("write");
                Some(at)
            }
            1 => {
                let at = pos % (len + 1);
                set_len(&file, at);
                Some(at)
            }
            2 => {
                set_len(&file, len + u64::from(op[4]) * 8 + 1);
                Some(len)
            }
            3 => {
                let at = pos.min(len);
                let mut bytes = fs::read(&file).expect("read");
                let end = (at as usize + usize::from(op[4]) + 1).min(bytes.len());
                bytes[at as usize..end].fill(0xff);
                fs::write(&file, bytes).expect("write");
                (end > at as usize).then_some(at)
            }
            4 => {
                fs::remove_file(&file).expect("remove");
                Some(0)
            }
            _ => None,
        };
        if let (Some(base), Some(at)) = (base, hit) {
            damage = Some(damage.map_or((base, at), |d| d.min((base, at))));
        }
    }
    match damage {
        None => count,
        Some(first) => ends.iter().take_while(|&&end| end <= first).count() as u64,
    }
}

/// (segment base, end position) of record `offset`, just appended: the
/// newest segment and its current length.
fn position_after(path: &Path, offset: u64) -> (u64, u64) {
    let newest = fs::read_dir(path)
        .expect("list")
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".log")?.parse::<u64>().ok()
        })
        .filter(|&base| base <= offset)
        .max()
        .expect("a segment");
    let len = fs::metadata(path.join(segment(newest, "log")))
        .expect("segment")
        .len();
    (newest, len)
}

fn set_len(file: &Path, len: u64) {
    fs::OpenOptions::new()
        .write(true)
        .open(file)
        .and_then(|f| f.set_len(len))
        .expect("set_len");
}

fn read_all(path: &Path, from: u64) -> Vec<crate::log::Record> {
    let mut reader = LogReader::open(path).expect("open reader");
    let mut out: Vec<crate::log::Record> = Vec::new();
    let mut next = from;
    loop {
        let got = reader
            .read(next, 256)
            .unwrap_or_else(|e| panic!("read at {next}: {e}"));
        let Some(last) = got.last() else { break };
        next = last.offset + 1;
        out.extend(got);
    }
    out
}

/// A fresh directory under the system temp dir (set TMPDIR=/dev/shm to keep
/// fsyncs cheap), removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("metricstream-fuzz-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Prometheus remote_write. The first byte's low bit chooses the version
/// the body is decoded as first, the next bit whether the rest is snappy
/// (else it is the protobuf itself). Both versions are decoded either way:
/// an error is a short message, and whatever is accepted obeys every rule
/// of [`crate::remote_write`].
pub fn check_remote_write(data: &[u8]) {
    use crate::remote_write::{self as rw, Decompress, Version};

    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let plain = if flags & 2 != 0 {
        match rw::decompress(body, MAX_BODY) {
            Ok(plain) => {
                assert!(plain.len() <= MAX_BODY);
                plain
            }
            Err(Decompress::TooLarge { declared, .. }) => {
                assert!(declared > MAX_BODY as u64);
                return;
            }
            Err(Decompress::Invalid(message)) => {
                assert!(!message.is_empty());
                return;
            }
        }
    } else {
        body.to_vec()
    };
    let versions = if flags & 1 == 0 {
        [Version::V1, Version::V2]
    } else {
        [Version::V2, Version::V1]
    };
    const NOW_MS: i64 = 1_700_000_000_000;
    for version in versions {
        match rw::decode(version, &plain, NOW_MS) {
            Ok(decoded) => check_remote_write_decoded(&decoded, NOW_MS),
            Err(message) => assert!(!message.is_empty() && message.len() <= 1000, "{message}"),
        }
    }
}

fn check_remote_write_decoded(d: &crate::remote_write::Decoded, now_ms: i64) {
    use crate::remote_write as rw;
    use prompb::v2::histogram::{Count, ZeroCount};

    let name_ok =
        |n: &str| !n.is_empty() && n.len() <= rw::MAX_NAME_LEN && !n.chars().any(char::is_control);
    let in_range = |ts: i64| (0..=now_ms + rw::MAX_FUTURE_MS).contains(&ts);
    let (mut samples, mut histograms, mut exemplars) = (0, 0, 0);
    for s in &d.series {
        assert!(name_ok(&s.name), "{:?}", s.name);
        assert!(s.labels.len() <= rw::MAX_LABELS);
        for pair in s.labels.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{:?}", s.labels);
        }
        for (name, value) in &s.labels {
            assert!(name != "__name__" && name_ok(name), "{name:?}");
            assert!(!value.is_empty() && value.len() <= rw::MAX_VALUE_LEN);
        }
        assert!(!(s.samples.is_empty() && s.histograms.is_empty() && s.exemplars.is_empty()));
        for sample in &s.samples {
            assert!(in_range(sample.timestamp_ms), "{sample:?}");
        }
        for h in &s.histograms {
            assert!(in_range(h.timestamp), "{h:?}");
            assert!(h.schema == -53 || (-4..=8).contains(&h.schema), "{h:?}");
            // Count and zero count are set, and of one kind.
            assert!(
                matches!(
                    (h.count, h.zero_count),
                    (Some(Count::CountInt(_)), Some(ZeroCount::ZeroCountInt(_)))
                        | (
                            Some(Count::CountFloat(_)),
                            Some(ZeroCount::ZeroCountFloat(_))
                        )
                ),
                "{h:?}"
            );
        }
        for e in &s.exemplars {
            assert!(e.timestamp_ms.is_none_or(in_range), "{e:?}");
            let runes: usize = e
                .labels
                .iter()
                .map(|(n, v)| n.chars().count() + v.chars().count())
                .sum();
            assert!(runes <= rw::MAX_EXEMPLAR_RUNES, "{e:?}");
            for pair in e.labels.windows(2) {
                assert!(pair[0].0 < pair[1].0, "{:?}", e.labels);
            }
        }
        samples += s.samples.len();
        histograms += s.histograms.len();
        exemplars += s.exemplars.len();
    }
    assert_eq!(
        (samples, histograms, exemplars),
        (d.samples, d.histograms, d.exemplars)
    );
    for (_, family) in &d.metadata {
        assert!(!family.is_empty());
        assert!(family
            .help
            .as_ref()
            .is_none_or(|h| h.len() <= rw::MAX_HELP_LEN));
    }
    assert!(d.refused.reasons.len() <= rw::MAX_REASONS);
    assert!(d
        .refused
        .reasons
        .iter()
        .all(|r| !r.is_empty() && r.len() <= rw::MAX_REASON_LEN));
    assert_eq!(d.refused.is_empty(), d.refused.reasons.is_empty());
}

/// InfluxDB line protocol: any body parses without a panic, every error
/// names its line, every accepted line prints back as line protocol
/// that parses to the same line, and its metrics are one per non-string
/// field (or the line is refused with a reason), each within the limits.
pub fn check_influx(data: &[u8]) {
    use crate::influx;

    let lines = data.split(|&b| b == b'\n').count();
    for result in influx::parse(data).lines {
        match result {
            Ok(line) => {
                check_influx_metrics(&line);
                let text = line.to_string();
                // Escaping may lengthen a line that was just under the limit.
                if text.len() > influx::MAX_LINE {
                    continue;
                }
                match influx::parse_line(text.as_bytes()) {
                    Ok(Some(again)) => assert_eq!(again, line, "{text:?}"),
                    other => panic!("{text:?} re-parses as {other:?}"),
                }
            }
            Err(e) => {
                assert!(e.line_number >= 1 && e.line_number <= lines, "{e}");
                assert!(!e.message.is_empty());
            }
        }
    }
}

fn check_influx_metrics(line: &crate::influx::Line<'_>) {
    use crate::influx::{metrics, metrics_of, FieldValue, Precision};

    for precision in [Precision::Nanoseconds, Precision::Hours] {
        let Ok(got) = metrics_of(line, "db", precision, 1) else {
            continue;
        };
        let strings = line
            .fields
            .iter()
            .filter(|(_, v)| matches!(v, FieldValue::Str(_)))
            .count();
        assert_eq!(got.string_fields.len(), strings);
        assert_eq!(got.metrics.len() + strings, line.fields.len());
        for m in &got.metrics {
            assert!(!m.name.is_empty() && m.name.len() <= batch::MAX_NAME_LEN);
            assert!(m.value.is_finite());
            assert!(m.tags.len() <= metrics::MAX_TAGS);
            let ms = m.timestamp.expect("a timestamp");
            if let Some(ns) = m.timestamp_ns {
                assert_eq!(ns / 1_000_000, ms);
            }
        }
    }
}
