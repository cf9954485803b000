//! The whole chain: Prometheus A (scraping the node exporter and itself
//! every second) → remote_write → `metricstream serve` → embedded log →
//! `metricstream consume --sink remote-write` → Prometheus B. Over a window
//! of more than 20 s, with `serve` SIGKILLed and restarted in the middle,
//! the raw samples of every series in A equal those in B (read with the
//! same range selector at the same instant), and nothing is dead-lettered.

mod common;

use std::time::Duration;

use common::broker::free_port;
use common::prometheus::{
    assert_same_samples, now_ms, NodeExporter, Prometheus, PrometheusConfig, RemoteWrite, Window,
};
use common::sink::{dead_letters, remote_write_args, Consumer};
use common::Server;

#[test]
fn prometheus_to_metricstream_to_prometheus_with_serve_sigkilled() {
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let serve_args = ["--listen", listen.as_str(), "--api-key", "prom-a:s3cret"];
    let mut server = Server::start(dir.path(), &serve_args);
    let node = NodeExporter::start();
    let b = Prometheus::launch(PrometheusConfig {
        receiver: true,
        ..PrometheusConfig::default()
    });
    let args = remote_write_args(&format!("http://{}/api/v1/write", b.addr));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut consumer = Consumer::start(dir.path(), "to-b", &args);

    let started = now_ms();
    let a = Prometheus::start(
        &[node.addr],
        Some(RemoteWrite {
            url: format!("http://{listen}/api/v1/write"),
            bearer_token: Some("s3cret".into()),
        }),
        false,
    );
    std::thread::sleep(Duration::from_secs(12));
    server.kill();
    std::thread::sleep(Duration::from_secs(2));
    server = Server::start(dir.path(), &serve_args);
    std::thread::sleep(Duration::from_secs(12));

    let window_end = now_ms() - 1_000;
    common::wait_for(
        "A to remote-write past the window",
        Duration::from_secs(60),
        || {
            let sent_s =
                a.own_metric("prometheus_remote_storage_queue_highest_sent_timestamp_seconds");
            sent_s * 1000.0 >= window_end as f64
        },
    );
    let window = Window::between(started, window_end);
    assert!(window.len_ms >= 20_000, "{window:?}");
    let (series, samples) = assert_same_samples(
        &a,
        &b,
        r#"{__name__=~".+"}"#,
        window,
        Duration::from_secs(60),
    );
    let retried = a.own_metric("prometheus_remote_storage_samples_retried_total");
    assert_eq!(
        a.own_metric("prometheus_remote_storage_samples_failed_total"),
        0.0
    );
    assert!(
        retried > 0.0,
        "the SIGKILL of serve did not make A retry anything"
    );
    assert!(
        series > 100 && samples > 5_000,
        "{series} series, {samples} samples"
    );

    let status = consumer.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status:?}");
    let log = consumer.log_text();
    let dead = dead_letters(dir.path(), "to-b");
    assert!(
        dead.is_empty(),
        "dead-lettered: {:?}\n{log}",
        &dead[..dead.len().min(5)]
    );
    let summary = log
        .lines()
        .rev()
        .find(|l| l.contains("consumer stopped"))
        .unwrap_or_default();
    eprintln!(
        "A = B for {series} series, {samples} samples in {} ms; A retried {retried}; {summary}",
        window.len_ms
    );
    let _ = server.terminate(Duration::from_secs(15));
}
