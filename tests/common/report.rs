//! Figures for RELIABILITY.md. A fault test calls `record` with what it
//! measured; `scripts/reliability.sh` sets METRICSTREAM_RELIABILITY_OUT and
//! renders the lines into the report. In a plain `cargo test` nothing is
//! written. `scale` lets the script run the same tests longer.

use std::io::Write;

/// One scenario's outcome. `acknowledged`, `lost` and `duplicated` count
/// batches; `recovery_ms` is the slowest restart or recovery seen (0 if the
/// scenario has none). `detail` is free-form figures for the report's last
/// column.
pub struct Figures<'a> {
    pub scenario: &'a str,
    pub checks: &'a str,
    pub acknowledged: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub recovery_ms: u64,
    pub detail: String,
}

pub fn record(f: Figures) {
    let Ok(path) = std::env::var("METRICSTREAM_RELIABILITY_OUT") else {
        return;
    };
    let line = serde_json::json!({
        "scenario": f.scenario,
        "checks": f.checks,
        "acknowledged": f.acknowledged,
        "lost": f.lost,
        "duplicated": f.duplicated,
        "recovery_ms": f.recovery_ms,
        "detail": f.detail,
    });
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("open {path}: {e}"));
    writeln!(file, "{line}").unwrap_or_else(|e| panic!("write {path}: {e}"));
}

/// `n` times METRICSTREAM_FAULT_SCALE (default 1): how many rounds, kills
/// or seconds a fault test runs. CI runs the default; the script more.
pub fn scale(n: u64) -> u64 {
    let k = std::env::var("METRICSTREAM_FAULT_SCALE")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1)
        .max(1);
    n * k
}
