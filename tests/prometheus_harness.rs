//! The real-Prometheus harness proves itself: Prometheus A scrapes the node
//! exporter and itself every second and remote-writes to Prometheus B (a
//! store: its remote_write receiver on, scraping nothing). Every raw sample
//! A holds for jobs `node` and `prometheus` in a window is in B, the same,
//! and B holds nothing else there; A counts no failed or dropped sample.
//! The later A → metricstream → B tests lean on exactly this comparison.
//!
//! The comparison's own test needs no program; the one that starts
//! Prometheus and the node exporter is behind the `external` feature.

mod common;

use common::prometheus::{diff_samples, Samples, Window};

#[cfg(feature = "external")]
#[test]
fn prometheus_remote_writes_to_prometheus_sample_for_sample() {
    use std::time::{Duration, Instant};

    use common::prometheus::{
        assert_same_samples, now_ms, NodeExporter, Prometheus, PrometheusConfig, RemoteWriteConfig,
    };

    let t0 = Instant::now();
    let node = NodeExporter::start();
    let b = Prometheus::launch(PrometheusConfig {
        receiver: true,
        ..PrometheusConfig::default()
    });
    let a = Prometheus::launch(PrometheusConfig {
        scrape: vec![node.addr],
        scrape_self: true,
        remote_write: Some(RemoteWriteConfig::new(format!(
            "http://{}/api/v1/write",
            b.addr
        ))),
        ..PrometheusConfig::default()
    });
    let ready = now_ms();
    std::thread::sleep(Duration::from_secs(14));
    // The window starts 2 s after A was ready, past its first scrapes' start
    // up, and ends 2 s before now, which still leaves a few batches in
    // flight: assert_same_samples waits those out rather than hiding them.
    // Both stores are queried at the same end time with the same range, so
    // they are cut at the same timestamps and no edge is allowed to differ.
    let window = Window::between(ready + 2_000, now_ms() - 2_000);

    let within = Duration::from_secs(15);
    let (node_series, node_samples) =
        assert_same_samples(&a, &b, r#"{job="node"}"#, window, within);
    let (prom_series, prom_samples) =
        assert_same_samples(&a, &b, r#"{job="prometheus"}"#, window, within);
    assert!(node_series > 100, "only {node_series} node series");
    assert!(prom_series > 100, "only {prom_series} prometheus series");
    // B stores only what it was sent.
    let jobs: std::collections::BTreeSet<String> = b
        .series(r#"{__name__=~".+"}"#)
        .into_iter()
        .filter_map(|l| l.get("job").cloned())
        .collect();
    assert_eq!(jobs, ["node", "prometheus"].map(String::from).into());
    let names = b.series_names();
    for name in [
        "up",
        "node_cpu_seconds_total",
        "prometheus_tsdb_head_series",
    ] {
        assert!(names.iter().any(|n| n == name), "B has no {name}");
    }

    let failed = a.own_metric("prometheus_remote_storage_samples_failed_total");
    let dropped = a.own_metric("prometheus_remote_storage_samples_dropped_total");
    let sent = a.own_metric("prometheus_remote_storage_samples_total");
    let retried = a.own_metric("prometheus_remote_storage_samples_retried_total");
    let metadata_failed = a.own_metric("prometheus_remote_storage_metadata_failed_total");
    assert_eq!(
        failed,
        0.0,
        "A counted failed samples; A's log:\n{}",
        a.log_text()
    );
    assert_eq!(dropped, 0.0, "A counted dropped samples");
    assert_eq!(metadata_failed, 0.0, "A counted failed metadata");
    assert!(
        sent >= (node_samples + prom_samples) as f64,
        "A sent {sent} samples, fewer than the {} compared",
        node_samples + prom_samples
    );
    eprintln!(
        "window {} ms: node {node_series} series / {node_samples} samples, prometheus \
         {prom_series} series / {prom_samples} samples identical in A and B; A sent {sent}, \
         retried {retried}; {:.1} s in all",
        window.len_ms,
        t0.elapsed().as_secs_f64()
    );
}

/// The comparison itself sees a missing sample, an extra one, another value
/// text (NaN is not 0, "1" is not "1.0") and an extra series, and ignores
/// only the edges it is told to.
#[test]
fn diff_samples_sees_every_kind_of_difference() {
    let series = |name: &str| {
        [("__name__", name), ("job", "node")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into()
    };
    let points = |p: &[(i64, &str)]| p.iter().map(|(t, v)| (*t, v.to_string())).collect();
    let a: Samples = [(
        series("x"),
        points(&[(1_000, "1"), (2_000, "NaN"), (3_000, "+Inf")]),
    )]
    .into();
    let window = Window::between(1_000, 3_000);
    assert!(diff_samples(&a, &a.clone(), &window, 10).is_empty());

    let mut b = a.clone();
    b.get_mut(&series("x")).unwrap().remove(&2_000);
    b.get_mut(&series("x")).unwrap().insert(3_000, "1.0".into());
    b.insert(series("y"), points(&[(2_500, "0")]));
    let d = diff_samples(&a, &b, &window, 10);
    assert_eq!(d.len(), 3, "{d:#?}");
    assert!(
        d[0].contains(r#"x{job="node"} @2000: A NaN, B has none"#),
        "{d:#?}"
    );
    assert!(d[1].contains("@3000: A +Inf, B 1.0"), "{d:#?}");
    assert!(
        d[2].contains(r#"y{job="node"} @2500: A has none, B 0"#),
        "{d:#?}"
    );
    assert_eq!(
        diff_samples(&a, &b, &window, 1).last().unwrap(),
        "... and 2 more"
    );

    let edges = Window {
        edge_ms: 400,
        ..window
    };
    let d = diff_samples(&a, &b, &edges, 10);
    assert_eq!(d.len(), 2, "only the inside differs: {d:#?}");
}
