//! Native histograms and exemplars end to end, with real programs only:
//! Prometheus A (2.42, `--enable-feature=native-histograms,exemplar-storage`)
//! scrapes `tests/clients/nh_target.py` (integer and float native
//! histograms in the protobuf exposition format, exemplars, a counter, a
//! gauge that is sometimes NaN) every second and remote-writes everything
//! (`send_native_histograms`, `send_exemplars`) to `metricstream serve`,
//! which is SIGKILLed and restarted once mid-run. Once A has stopped
//! scraping and its queue is drained (nothing failed or dropped), the log
//! holds every histogram point and exemplar A has, and `consume --sink
//! remote-write --exit-at-end` delivers it into Prometheus B (its
//! remote_write receiver and the same features on). Over the whole time
//! range, series by series, B answers its query API as A does: every float
//! sample, every native histogram point (the `{count, sum, buckets}`
//! object, and `histogram_count` / `histogram_sum` over time), every
//! exemplar. The same comparisons with A writing straight into B show the
//! harness asks nothing Prometheus does not do by itself.
//!
//! Needs Python with protobuf at `METRICSTREAM_PYTHON` and Prometheus:
//! `./scripts/test.sh` (or `source scripts/deps.sh`) installs them. Without
//! them the test fails, saying so: it never skips.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::broker::free_port;
use common::prometheus::{
    assert_same_exemplars, assert_same_histograms, assert_same_samples, diff_samples, now_ms,
    series_selector, Prometheus, PrometheusConfig, RemoteWriteConfig, Samples, Window,
};
use common::sink::{dead_letters, remote_write_args, Consumer};
use common::Server;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/nh_target.py");

/// The job A scrapes the target as; every series compared carries it.
const JOB: &str = r#"{job="nh"}"#;

/// The least number of points of each kind per series: the runs scrape for
/// ~20 s, once a second, so anything much lower means something was lost
/// or never scraped, and the equality would prove little.
const ENOUGH: usize = 15;

/// The venv's Python, checked to have what the target imports.
fn python() -> String {
    let python = std::env::var("METRICSTREAM_PYTHON").unwrap_or_else(|_| {
        panic!(
            "METRICSTREAM_PYTHON is not set: this test runs a Python scrape target that needs \
             protobuf. Run ./scripts/test.sh, or `source scripts/deps.sh` (it installs it in a \
             venv and exports METRICSTREAM_PYTHON), then run it again"
        )
    });
    let out = Command::new(&python)
        .args(["-c", "import google.protobuf.descriptor_pb2"])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "METRICSTREAM_PYTHON={python} cannot be run ({e}): run ./scripts/test.sh or \
                 `source scripts/deps.sh`"
            )
        });
    assert!(
        out.status.success(),
        "METRICSTREAM_PYTHON={python} lacks protobuf: run ./scripts/test.sh or \
         `source scripts/deps.sh` (it installs it). {}",
        String::from_utf8_lossy(&out.stderr)
    );
    python
}

/// `nh_target.py` on a free loopback port.
struct Target {
    child: Child,
    addr: SocketAddr,
}

impl Target {
    fn start() -> Target {
        let mut child = Command::new(python())
            .arg(SCRIPT)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start nh_target.py");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        let listen = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|j| j["listen"].as_str()?.parse().ok());
        let Some(addr) = listen else {
            let _ = child.kill();
            let status = child.wait();
            panic!("nh_target.py did not say where it listens ({read:?}, {line:?}, {status:?})");
        };
        Target { child, addr }
    }

    /// How many times it was scraped.
    fn scrapes(&self) -> u64 {
        let r = common::request(self.addr, "GET", "/scrapes", &[], b"");
        assert_eq!(r.status, 200, "{r:?}");
        r.json()["scrapes"].as_u64().expect("a count")
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `count` of each histogram point, in time order.
fn counts(points: &BTreeMap<i64, String>) -> Vec<f64> {
    points
        .values()
        .map(|h| {
            let h: serde_json::Value = serde_json::from_str(h).expect("a histogram object");
            let count = h["count"].as_str().expect("a count");
            count.parse().expect("a number")
        })
        .collect()
}

fn name(labels: &BTreeMap<String, String>) -> &str {
    labels.get("__name__").map_or("", String::as_str)
}

/// The harness proves itself: A remote-writes straight into B, and the
/// same comparisons hold. What the test through metricstream asks of it,
/// Prometheus does by itself.
#[test]
fn prometheus_native_histograms_and_exemplars_into_prometheus_directly() {
    let target = Target::start();
    let features: Vec<String> = vec!["native-histograms".into(), "exemplar-storage".into()];
    let b = Prometheus::launch(PrometheusConfig {
        receiver: true,
        features: features.clone(),
        ..PrometheusConfig::default()
    });
    let scraping = PrometheusConfig {
        scrape: vec![target.addr],
        scrape_job: "nh".into(),
        remote_write: Some(RemoteWriteConfig {
            send_native_histograms: true,
            send_exemplars: true,
            ..RemoteWriteConfig::new(format!("http://{}/api/v1/write", b.addr))
        }),
        features,
        ..PrometheusConfig::default()
    };
    let started = now_ms();
    let mut a = Prometheus::launch(scraping.clone());
    std::thread::sleep(Duration::from_secs(25));
    a.reconfigure(PrometheusConfig {
        scrape: Vec::new(),
        ..scraping
    });
    std::thread::sleep(Duration::from_secs(3));
    a.wait_remote_write_drained(Duration::from_secs(60));
    let window = Window::between(started, now_ms());
    let compared = assert_same_stores(&a, &b, window);
    eprintln!("A = B over {} ms: {compared}", window.len_ms);
}

#[test]
fn prometheus_native_histograms_and_exemplars_through_metricstream_into_prometheus() {
    let target = Target::start();
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let serve_args = ["--listen", listen.as_str(), "--api-key", "prom-a:s3cret"];
    let mut server = Server::start(dir.path(), &serve_args);
    let features: Vec<String> = vec!["native-histograms".into(), "exemplar-storage".into()];

    let scraping = PrometheusConfig {
        scrape: vec![target.addr],
        scrape_job: "nh".into(),
        remote_write: Some(RemoteWriteConfig {
            bearer_token: Some("s3cret".into()),
            send_native_histograms: true,
            send_exemplars: true,
            ..RemoteWriteConfig::new(format!("http://{listen}/api/v1/write"))
        }),
        features: features.clone(),
        ..PrometheusConfig::default()
    };
    let started = now_ms();
    let mut a = Prometheus::launch(scraping.clone());
    // Its first scrape comes up to 5 s after it is ready (its scrape manager
    // applies targets every 5 s): the crash lands mid-scraping.
    std::thread::sleep(Duration::from_secs(12));
    server.kill();
    // A keeps scraping and retries its queue meanwhile.
    std::thread::sleep(Duration::from_secs(2));
    server = Server::start(dir.path(), &serve_args);
    std::thread::sleep(Duration::from_secs(11));

    // A stops scraping (its staleness markers follow within two intervals),
    // then sends what it still holds.
    a.reconfigure(PrometheusConfig {
        scrape: Vec::new(),
        ..scraping
    });
    let scrapes = target.scrapes();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        target.scrapes(),
        scrapes,
        "A still scrapes after the reload"
    );
    a.wait_remote_write_drained(Duration::from_secs(60));
    let own = |m: &str| a.own_metric(&format!("prometheus_remote_storage_{m}"));
    for kind in ["samples", "histograms", "exemplars"] {
        for what in ["failed_total", "dropped_total"] {
            assert_eq!(
                own(&format!("{kind}_{what}")),
                0.0,
                "A counted {kind} {what}: serve refused some? /stats: {}\nserve's log:\n{}\n\
                 A's log:\n{}",
                server.get("/stats").body,
                server.log_text(),
                a.log_text()
            );
        }
    }
    let (sent, histograms_sent, exemplars_sent) = (
        own("samples_total"),
        own("histograms_total"),
        own("exemplars_total"),
    );
    let retried = own("samples_retried_total") + own("histograms_retried_total");
    assert!(
        retried > 0.0,
        "the SIGKILL of serve did not make A retry anything"
    );
    let status = server.terminate(Duration::from_secs(15));
    assert!(status.success(), "serve: {status:?}\n{}", server.log_text());
    // The whole run, both ends included: A gets nothing more.
    let window = Window::between(started, now_ms());
    let (stored_histograms, stored_exemplars) = assert_log_holds(&a, dir.path(), window);

    let b = Prometheus::launch(PrometheusConfig {
        receiver: true,
        features,
        ..PrometheusConfig::default()
    });
    let mut args = remote_write_args(&format!("http://{}/api/v1/write", b.addr));
    args.push("--exit-at-end".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut consumer = Consumer::start(dir.path(), "to-b", &args);
    let status = consumer.wait(Duration::from_secs(120));
    let log = consumer.log_text();
    assert!(status.success(), "consume: {status:?}\n{log}");
    let dead = dead_letters(dir.path(), "to-b");
    assert!(
        dead.is_empty(),
        "dead-lettered: {:?}\n{log}",
        &dead[..dead.len().min(5)]
    );

    let compared = assert_same_stores(&a, &b, window);
    let summary = log
        .lines()
        .rev()
        .find(|l| l.contains("consumer stopped"))
        .unwrap_or_default();
    eprintln!(
        "A = B over {} ms ({scrapes} scrapes): {compared}; A sent {sent} samples, \
         {histograms_sent} histograms, {exemplars_sent} exemplars, retried {retried}; the log \
         held {stored_histograms} histogram points, {stored_exemplars} exemplars; {summary}",
        window.len_ms
    );
}

/// A point's series (`__name__` and the other labels) and timestamp.
type Key = (BTreeMap<String, String>, i64);

/// The log in `data` holds every native histogram point and every exemplar
/// `a` holds in `window` (by series and timestamp; `consume --sink stdout`
/// reads it), so a difference between A and B is the sink's, not serve's.
/// Returns how many of each the log holds (retries may store some twice).
fn assert_log_holds(a: &Prometheus, data: &std::path::Path, window: Window) -> (usize, usize) {
    let lines = common::consume_all(data, "check");
    let stored = |field: &str| -> BTreeSet<Key> {
        lines
            .iter()
            .filter(|l| l.get(field).is_some_and(|v| !v.is_null()))
            .map(|l| {
                let mut labels: BTreeMap<String, String> = l["tags"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.as_str().expect("a tag").to_string()))
                    .collect();
                labels.insert(
                    "__name__".into(),
                    l["name"].as_str().expect("a name").into(),
                );
                (labels, l["timestamp"].as_i64().expect("a timestamp"))
            })
            .collect()
    };
    let keys = |samples: Samples| -> BTreeSet<Key> {
        samples
            .into_iter()
            .flat_map(|(l, p)| p.into_keys().map(move |t| (l.clone(), t)))
            .collect()
    };
    let mut histograms = Samples::new();
    for labels in a.series(JOB) {
        let one = series_selector(&labels);
        histograms.extend(a.raw_histograms(&one, window.end_ms, window.len_ms));
    }
    let start = window.end_ms - window.len_ms;
    for (what, field, expected) in [
        ("native histogram points", "histogram", keys(histograms)),
        (
            "exemplars",
            "exemplar",
            keys(a.exemplars(JOB, start, window.end_ms)),
        ),
    ] {
        let held = stored(field);
        let missing: Vec<&Key> = expected.difference(&held).collect();
        assert!(!expected.is_empty(), "A has no {what}");
        assert!(
            missing.is_empty(),
            "{} of A's {} {what} are not in the log ({} there); the first: {:?}",
            missing.len(),
            expected.len(),
            held.len(),
            &missing[..missing.len().min(5)]
        );
    }
    let count = |field: &str| {
        lines
            .iter()
            .filter(|l| l.get(field).is_some_and(|v| !v.is_null()))
            .count()
    };
    let held = (count("histogram"), count("exemplar"));
    eprintln!(
        "the log holds every histogram point and exemplar of A's ({} and {} records)",
        held.0, held.1
    );
    held
}

/// Everything of job `nh` is the same in `a` and `b` over `window`, series by
/// series, and there is enough of it (see [`ENOUGH`]): float samples (a NaN
/// among them), native histogram points (each series' counts growing, as
/// the target's do), `histogram_count` and `histogram_sum` every second,
/// exemplars. Returns what was compared, in words.
fn assert_same_stores(a: &Prometheus, b: &Prometheus, window: Window) -> String {
    let within = Duration::from_secs(20);

    let (float_series, floats) = assert_same_samples(a, b, JOB, window, within);
    let a_floats = a.raw_samples(JOB, window.end_ms, window.len_ms);
    for series in ["nh_requests_total", "nh_temperature_celsius", "up"] {
        let n = a_floats
            .iter()
            .filter(|(l, _)| name(l) == series)
            .map(|(_, p)| p.len())
            .sum::<usize>();
        assert!(n >= ENOUGH, "only {n} samples of {series}");
    }
    let nans = a_floats
        .iter()
        .filter(|(l, _)| name(l) == "nh_temperature_celsius")
        .flat_map(|(_, p)| p.values())
        .filter(|v| *v == "NaN")
        .count();
    assert!(nans > 0, "the gauge was never NaN: NaN was not compared");
    eprintln!("floats: A = B, {float_series} series / {floats} samples");

    let per_series = assert_same_histograms(a, b, JOB, window, within);
    let names: Vec<(&str, Option<&str>)> = per_series
        .keys()
        .map(|l| (name(l), l.get("path").map(String::as_str)))
        .collect();
    assert_eq!(
        names,
        [
            ("nh_payload_bytes", None),
            ("nh_queue_ratio", None),
            ("nh_request_seconds", Some("/api")),
            ("nh_request_seconds", Some("/health")),
        ],
        "the histogram series A holds"
    );
    let mut histograms = 0;
    let mut by_function: BTreeMap<&str, usize> = BTreeMap::new();
    for (labels, n) in &per_series {
        assert!(*n >= ENOUGH, "only {n} histograms of {labels:?}");
        histograms += n;
        let one = series_selector(labels);
        // The target's counts only grow: A's points are the scrapes', not
        // copies of one another (see the module doc of common::prometheus).
        let points = a.raw_histograms(&one, window.end_ms, window.len_ms);
        let c = counts(&points[labels]);
        assert!(
            c.windows(2).all(|w| w[0] < w[1]),
            "{labels:?}: counts not increasing {c:?}"
        );
        // histogram_count and histogram_sum over time, every second: the
        // functions read the same on both sides.
        for f in ["histogram_count", "histogram_sum"] {
            let expr = format!("{f}({one})");
            let start = window.end_ms - window.len_ms;
            let on =
                |p: &Prometheus| -> Samples { p.range_query(&expr, start, window.end_ms, 1000) };
            let (fa, fb) = (on(a), on(b));
            let diff = diff_samples(&fa, &fb, &window, 10);
            assert!(
                diff.is_empty(),
                "{expr}: A and B differ:\n{}",
                diff.join("\n")
            );
            let steps: usize = fa.values().map(|p| p.len()).sum();
            assert!(steps >= ENOUGH, "{expr}: only {steps} steps");
            *by_function.entry(f).or_default() += steps;
        }
    }

    eprintln!(
        "native histograms: A = B, {} series / {histograms} points, {by_function:?} steps",
        per_series.len()
    );

    // 2.42's receiver appends a time series' exemplars before its
    // histograms: exemplars sent in the same `TimeSeries` as the first
    // histograms of a series it does not have yet are dropped (answered
    // 204, logged at debug level only). The target sends none with the
    // first scrape, so Prometheus to Prometheus loses none; B missing the
    // exemplars of the histogram series only points there.
    let (exemplar_series, exemplars) = assert_same_exemplars(a, b, JOB, window, within);
    let a_exemplars = a.exemplars(JOB, window.end_ms - window.len_ms, window.end_ms);
    let with_exemplars: Vec<(&str, usize)> = a_exemplars
        .iter()
        .map(|(l, p)| (name(l), p.len()))
        .collect();
    assert_eq!(
        with_exemplars.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        [
            "nh_request_seconds",
            "nh_request_seconds",
            "nh_requests_total"
        ],
        "the series with exemplars in A"
    );
    for (series, n) in &with_exemplars {
        assert!(*n >= ENOUGH, "only {n} exemplars of {series}");
    }

    format!(
        "{float_series} float series / {floats} samples, {} histogram series / {histograms} \
         histograms ({by_function:?} steps), {exemplar_series} series / {exemplars} exemplars",
        per_series.len()
    )
}
