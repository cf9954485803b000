//! Replays the fuzz corpus (fuzz/corpus/<target>) and every crash
//! reproducer (fuzz/regressions/<target>) through the fuzz targets' own
//! checks, `metricstream::fuzzing`: every CI run, on stable, no fuzzer needed.
//! The checks live in the library, not in fuzz/, so both the fuzz targets
//! and this test call one copy and neither can drift from the other.

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use metricstream::fuzzing::check_otlp;
use metricstream::fuzzing::{check_decode, check_influx, check_recovery, check_remote_write};

/// Every input file of fuzz/<kind>/<target>, sorted.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str, check: fn(&[u8])) {
    let corpus = inputs("corpus", target);
    assert!(
        corpus.len() >= 10,
        "fuzz/corpus/{target} has {} inputs; it is committed with the code (scripts/fuzz.sh refills it)",
        corpus.len()
    );
    let mut failed = Vec::new();
    for path in corpus.iter().chain(&inputs("regressions", target)) {
        let data = fs::read(path).expect("read corpus file");
        if catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: these inputs fail the fuzz check (panic messages above):\n{}",
        failed.join("\n")
    );
}

#[test]
fn decode_corpus_and_regressions_pass() {
    replay("decode", check_decode);
}

#[test]
fn recovery_corpus_and_regressions_pass() {
    replay("recovery", check_recovery);
}

#[test]
fn remote_write_corpus_and_regressions_pass() {
    replay("remote_write", check_remote_write);
}

#[test]
fn influx_corpus_and_regressions_pass() {
    replay("influx", check_influx);
}

#[test]
fn otlp_corpus_and_regressions_pass() {
    replay("otlp", check_otlp);
}
