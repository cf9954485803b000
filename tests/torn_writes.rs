//! Torn writes with the real binary: acknowledged batches, SIGKILL, then
//! the newest segment of each partition is damaged the way a crash or a
//! power loss leaves it (cut inside a record, a span of garbage, a
//! zero-filled tail, which is not a cut: the writer preallocates zeros)
//! along with its `.index` and `hwm`. After a restart the
//! log output names, per partition, the file and byte recovery cut at and
//! the offset the kept prefix ends at; `consume` reads back exactly the
//! batches before the damage, each once and whole; new batches continue at
//! the next offset. Seeded: METRICSTREAM_TORN_SEED=<n> replays a run.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use common::report::{record, scale, Figures};
use common::{consume_all, cpp_body, Server};

const PARTITIONS: u64 = 3;
const ARGS: [&str; 4] = ["--partitions", "3", "--segment-bytes", "4096"];

/// What was done to a partition, and what recovery must keep.
#[derive(Debug)]
struct Damage {
    what: String,
    /// Records recovery must keep (offsets 0..kept).
    kept: u64,
    /// (segment file name, byte it must cut at), if there is anything to cut.
    cut: Option<(String, u64)>,
}

/// Byte ranges of the frames of a valid segment (`u32 len` + `len` bytes),
/// up to the zeros the writer preallocates past them.
fn frames(bytes: &[u8]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + 4 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        if len == 0 {
            assert!(
                bytes[pos..].iter().all(|&b| b == 0),
                "only zeros may follow the records"
            );
            break;
        }
        let end = pos + 4 + len;
        assert!(end <= bytes.len(), "the server left a torn record behind");
        out.push((pos as u64, end as u64));
        pos = end;
    }
    out
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs
}

fn base_of(path: &Path) -> u64 {
    path.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

/// Damages partition directory `dir` in way `kind` (0 cut, 1 garbage,
/// 2 zero tail, 3 data untouched), plus its newest index and its hwm.
fn damage(dir: &Path, kind: u64, rng: &mut StdRng) -> Damage {
    let logs = segments(dir);
    let newest = logs.last().expect("a partition without segments").clone();
    let base = base_of(&newest);
    let mut bytes = fs::read(&newest).unwrap();
    let frames = frames(&bytes);
    let len = bytes.len() as u64;
    let name = newest.file_name().unwrap().to_str().unwrap().to_string();
    let all = base + frames.len() as u64;
    // One of the last three records holds the damage.
    let (hit, &(start, end)) = match frames.len() {
        0 => (0, &(0, 0)),
        n => {
            let i = rng.random_range(n.saturating_sub(3)..n);
            (i, &frames[i])
        }
    };
    let mut out = match kind {
        _ if frames.is_empty() => Damage {
            what: "empty segment, untouched".into(),
            kept: all,
            cut: None,
        },
        0 => {
            let at = rng.random_range(start + 1..end);
            bytes.truncate(at as usize);
            Damage {
                what: format!("{name} cut at byte {at} of {len}"),
                kept: base + hit as u64,
                cut: Some((name, start)),
            }
        }
        1 => {
            let from = rng.random_range(start..end);
            let to = rng.random_range(from + 1..=len.min(from + 64));
            for b in &mut bytes[from as usize..to as usize] {
                // XOR with a non-zero byte: every byte of the span changes.
                *b ^= rng.random_range(1..=255u8);
            }
            Damage {
                what: format!("{name} bytes {from}..{to} of {len} garbled"),
                kept: base + hit as u64,
                cut: Some((name, start)),
            }
        }
        2 => {
            // As a file system that grew the file but never wrote the data
            // leaves it: to recovery the same as preallocated space.
            let zeros = rng.random_range(1..8192);
            bytes.resize(bytes.len() + zeros, 0);
            Damage {
                what: format!("{name} + {zeros} zero bytes"),
                kept: all,
                cut: None,
            }
        }
        _ => Damage {
            what: "segment untouched".into(),
            kept: all,
            cut: None,
        },
    };
    fs::write(&newest, &bytes).unwrap();

    // The index and hwm are hints and caches: damage them every time.
    let index = newest.with_extension("index");
    let mut idx = fs::read(&index).unwrap_or_default();
    match rng.random_range(0..3) {
        0 => idx.truncate(rng.random_range(0..=idx.len())),
        1 => idx.extend((0..rng.random_range(1..64)).map(|_| rng.random::<u8>())),
        _ => idx.resize(idx.len() + rng.random_range(1..64), 0),
    }
    fs::write(&index, &idx).unwrap();
    let hwm = dir.join("hwm");
    match rng.random_range(0..3) {
        0 => fs::remove_file(&hwm).unwrap(),
        1 => fs::write(
            &hwm,
            (0..16).map(|_| rng.random::<u8>()).collect::<Vec<_>>(),
        )
        .unwrap(),
        _ => fs::write(&hwm, [0xff; 5]).unwrap(),
    }
    out.what
        .push_str(&format!(", index {} bytes, hwm damaged", idx.len()));
    out
}

/// The server's log line for `partition` that contains `what`.
fn line_for<'a>(log: &'a str, what: &str, partition: u64) -> Option<&'a str> {
    let tag = format!("partition={partition}");
    log.lines()
        .find(|l| l.contains(what) && l.split_whitespace().any(|w| w == tag))
}

/// One round: load, kill, damage, restart, check. Returns (acked, cut, restart ms).
fn round(seed: u64) -> (u64, u64, u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let mut s = Server::start(data, &ARGS);
    // seq → (partition, offset)
    let mut acked: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for seq in 0..rng.random_range(120..200) {
        let client = format!("client-{}", seq % 12);
        let r = s.post(&cpp_body("h", seq), &[("Authorization", &client)]);
        assert_eq!(r.status, 200, "seed {seed}: {}", r.body);
        let j = r.json();
        acked.insert(
            seq,
            (
                j["partition"].as_u64().unwrap(),
                j["offset"].as_u64().unwrap(),
            ),
        );
    }
    s.kill();

    let mut damages = Vec::new();
    for p in 0..PARTITIONS {
        let kind = (seed + p) % 4;
        let d = damage(&data.join(format!("metrics-{p}")), kind, &mut rng);
        eprintln!("seed {seed} partition {p}: {}", d.what);
        damages.push(d);
    }

    let started = Instant::now();
    let mut s = Server::start(data, &ARGS);
    let restart_ms = started.elapsed().as_millis() as u64;
    let log = s.log_text();
    for (p, d) in damages.iter().enumerate() {
        let p = p as u64;
        let ctx = format!("seed {seed} partition {p} ({})", d.what);
        let opened = line_for(&log, "partition log opened", p)
            .unwrap_or_else(|| panic!("{ctx}: no open line:\n{log}"));
        assert!(
            opened.contains(&format!("next_offset={} ", d.kept)),
            "{ctx}: expected to keep {} records: {opened}",
            d.kept
        );
        let cut_line = line_for(&log, "recovery cut the log", p);
        match (&d.cut, cut_line) {
            (Some((name, at)), Some(l)) => assert!(
                l.contains(&format!("{name}: ")) && l.contains(&format!("at byte {at}")),
                "{ctx}: expected a cut of {name} at byte {at}: {l}"
            ),
            (Some(_), None) => panic!("{ctx}: recovery did not say what it cut:\n{log}"),
            (None, Some(l)) => panic!("{ctx}: nothing to cut, yet: {l}"),
            (None, None) => {}
        }
    }

    // New batches continue right after the kept prefix.
    let mut next: Vec<u64> = damages.iter().map(|d| d.kept).collect();
    for seq in 1_000_000..1_000_024 {
        let client = format!("client-{}", seq % 12);
        let r = s.post(&cpp_body("h", seq), &[("Authorization", &client)]);
        assert_eq!(r.status, 200, "seed {seed}: {}", r.body);
        let j = r.json();
        let (p, off) = (
            j["partition"].as_u64().unwrap(),
            j["offset"].as_u64().unwrap(),
        );
        assert_eq!(
            off, next[p as usize],
            "seed {seed} partition {p}: offset after restart"
        );
        next[p as usize] += 1;
        acked.insert(seq, (p, off));
    }
    assert!(
        s.terminate(Duration::from_secs(10)).success(),
        "seed {seed}"
    );

    // Read back: exactly the kept prefix plus the new batches, each whole
    // (all three metrics of cpp_body, one with the seq tag) and once.
    let mut got: BTreeMap<(u64, u64), (usize, Vec<u64>)> = BTreeMap::new();
    for l in consume_all(data, "verify") {
        let at = (
            l["partition"].as_u64().unwrap(),
            l["offset"].as_u64().unwrap(),
        );
        let entry = got.entry(at).or_default();
        entry.0 += 1;
        entry
            .1
            .extend(l["tags"]["seq"].as_str().map(|s| s.parse::<u64>().unwrap()));
    }
    let mut expected: BTreeMap<(u64, u64), (usize, Vec<u64>)> = BTreeMap::new();
    let mut cut = 0;
    for (&seq, &(p, off)) in &acked {
        if off < damages[p as usize].kept || seq >= 1_000_000 {
            expected.insert((p, off), (3, vec![seq]));
        } else {
            cut += 1;
        }
    }
    let lost: Vec<_> = expected.keys().filter(|k| !got.contains_key(k)).collect();
    assert!(
        lost.is_empty(),
        "seed {seed}: kept batches missing: {lost:?}"
    );
    let wrong: Vec<_> = got
        .iter()
        .filter(|(k, v)| expected.get(k) != Some(v))
        .collect();
    assert!(
        wrong.is_empty(),
        "seed {seed}: records read back that are not one whole kept batch once: {wrong:?}"
    );
    (acked.len() as u64, cut, restart_ms)
}

#[test]
fn torn_segments_recover_to_the_valid_prefix() {
    let base: u64 = std::env::var("METRICSTREAM_TORN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                % 1_000_000
        });
    let rounds = scale(3);
    let (mut acked, mut cut, mut worst) = (0, 0, 0);
    for r in 0..rounds {
        let seed = base + r;
        eprintln!("torn writes round {r}: seed {seed} (replay: METRICSTREAM_TORN_SEED={base})");
        let (a, c, ms) = round(seed);
        acked += a;
        cut += c;
        worst = worst.max(ms);
    }
    record(Figures {
        scenario: "torn writes",
        checks: "after SIGKILL the newest segment of each partition is cut inside a record, \
                 garbled, or given a zero tail, and its index and hwm damaged: the restart \
                 logs the file and byte cut and the offset kept, consume reads exactly the \
                 batches before the damage once each, new batches continue at the next offset",
        acknowledged: acked,
        lost: 0,
        duplicated: 0,
        recovery_ms: worst,
        detail: format!(
            "{rounds} rounds × {PARTITIONS} partitions (seeds {base}..{}); {cut} acknowledged \
             batches deliberately destroyed by the damage; worst restart {worst} ms",
            base + rounds
        ),
    });
}
