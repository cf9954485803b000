//! The bounded-memory figure the README states ("Bounded memory"): peak
//! memory is about 30 MiB + `--queue-bytes` + `--max-inflight` × 4 × the
//! request body size; with 200 requests of 100 KB in flight, and with the
//! defaults under the C++ client's 600-byte bodies ("well under 100
//! MiB"). `metricstream bench` drives each load at `serve` (durable, so
//! requests wait in flight for the group commit) and the server's peak
//! resident memory (VmHWM, which the kernel keeps) must stay under the
//! figure. The 100 KB load comes from twice as many clients as slots, so
//! the figure holds only while `--max-inflight` does (with the cap out of
//! the way, 1024 slots, the same load peaked at 146 MiB against 133 once).
//! The runs are the debug build: its code is bigger than the release
//! build's, so the check is, if anything, stricter.

mod common;

use common::Server;

const MIB: f64 = 1024.0 * 1024.0;
/// The README's fixed part of the figure.
const BASE_MIB: f64 = 30.0;
/// `--queue-bytes`' default.
const QUEUE_BYTES: f64 = 32.0 * MIB;

/// Peak resident memory of `pid` so far, in MiB (VmHWM).
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmHWM in KiB");
    kib / 1024.0
}

/// The largest JSON body `bench` sends with `metrics` metrics: its three
/// kinds of metric (loadgen/src/payload.rs) at their longest values,
/// host and region.
fn largest_body(metrics: usize) -> usize {
    let shapes = [
        r#"{"name":"cpu_usage","value":89.999999,"type":"gauge","tags":{"host":"cache1","region":"ap-south"}}"#,
        r#"{"name":"memory_usage","value":8000000000,"type":"gauge","tags":{"host":"cache1"}}"#,
        r#"{"name":"requests_total","value":1000,"type":"counter","tags":{"service":"api","host":"cache1"}}"#,
    ];
    let metrics_bytes: usize = (0..metrics).map(|i| shapes[i % 3].len() + 1).sum();
    r#"{"metrics":[]}"#.len() + metrics_bytes
}

/// Runs `bench` against `serve` at `addr` and returns its JSON report.
fn bench(addr: std::net::SocketAddr, args: &[&str]) -> serde_json::Value {
    let url = format!("http://{addr}/metrics");
    common::bench_report(&[&["--url", url.as_str()], args].concat())
}

/// `clients` clients send `metrics`-metric bodies for `secs` at a server
/// started with `serve_args`; returns (peak RSS MiB, successful
/// requests, the report).
fn peak_under(
    serve_args: &[&str],
    clients: u32,
    metrics: usize,
    secs: u32,
) -> (f64, u64, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), serve_args);
    let report = bench(
        s.addr,
        &[
            "--clients",
            &clients.to_string(),
            "--metrics-per-request",
            &metrics.to_string(),
            "--duration",
            &format!("{secs}s"),
            "--timeout",
            "30s",
        ],
    );
    let peak = peak_rss_mib(s.child.id());
    assert!(
        s.terminate(std::time::Duration::from_secs(30)).success(),
        "{}",
        s.log_text()
    );
    let ok = report["successful"].as_u64().expect("successful");
    // Only the server's own refusals (a full queue) may fail a request.
    for (kind, n) in report["failures"].as_object().expect("failures") {
        assert_eq!(kind, "status_503", "{n} failures: {report}");
    }
    (peak, ok, report)
}

#[test]
fn peak_memory_stays_under_the_readme_figure() {
    // 200 requests of ~100 KB in flight (1000 metrics, the batch limit).
    let inflight = 200u32;
    let body = largest_body(1000);
    assert!((90_000..130_000).contains(&body), "{body} bytes");
    let figure = BASE_MIB + (QUEUE_BYTES + f64::from(inflight) * 4.0 * body as f64) / MIB;
    // Twice as many clients as slots: the rest are refused (503), and the
    // figure holds only if the cap does.
    let (peak, ok, report) = peak_under(
        &["--partitions", "4", "--max-inflight", &inflight.to_string()],
        inflight * 2,
        1000,
        8,
    );
    // More answers than slots: the server held all of them at once.
    assert!(ok >= u64::from(inflight), "too little load: {report}");
    assert!(
        peak <= figure,
        "{inflight} requests of {body} bytes in flight: peak RSS {peak:.0} MiB over the \
         README's {figure:.0} MiB (30 MiB + --queue-bytes + --max-inflight × 4 × body)"
    );

    // The defaults (1024 slots, 32 MiB queue) and bodies of the C++
    // client's size: it sends three metrics pretty-printed in ~600 bytes,
    // bench's compact JSON takes six.
    let small = largest_body(6);
    assert!((500..700).contains(&small), "{small} bytes");
    let (peak, ok, report) = peak_under(&["--partitions", "4"], 256, 6, 8);
    assert!(ok >= 1000, "too little load: {report}");
    assert!(
        peak < 100.0,
        "defaults with {small}-byte bodies from 256 clients: peak RSS {peak:.0} MiB, not \
         under the README's 100 MiB"
    );
}
