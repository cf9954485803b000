//! `consume --queue kafka --sink remote-write`: Kafka's consumer groups
//! feed the same sink. Every sample in the topic reaches a real Prometheus
//! with its labels, value and timestamp; the group's offsets are committed
//! (a second run delivers nothing).

mod common;

use std::process::Command;
use std::time::Duration;

use common::broker::{kafka_args, Broker};
use common::prometheus::{consumed_samples, missing_from, now_ms, Prometheus, PrometheusConfig};
use common::sink::{post_rw, remote_write_args, Consumer, Series};
use common::{Server, BIN};

#[test]
fn kafka_records_reach_prometheus_and_offsets_are_committed() {
    let broker = Broker::start();
    let addr = broker.addr();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &kafka_args(&addr, "metrics"));
    let base = now_ms() - 10 * 60 * 1000;
    for i in 0..40i64 {
        for c in 0..3 {
            let series: Vec<Series> = (0..6)
                .map(|s| {
                    (
                        "kafka_sink_test".to_string(),
                        vec![("c".into(), c.to_string()), ("s".into(), s.to_string())],
                        vec![(i as f64 + 0.5, base + i * 1000)],
                    )
                })
                .collect();
            post_rw(&server, &format!("client-{c}"), &series);
        }
    }
    let out = Command::new(BIN)
        .args([
            "consume",
            "--queue",
            "kafka",
            "--brokers",
            &addr,
            "--topic",
            "metrics",
        ])
        .args(["--group", "reference", "--from-beginning", "--exit-at-end"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let expected = consumed_samples(&lines);
    assert_eq!(lines.len(), 40 * 3 * 6);

    let prom = Prometheus::launch(PrometheusConfig {
        receiver: true,
        ..PrometheusConfig::default()
    });
    let mut args = remote_write_args(&format!("http://{}/api/v1/write", prom.addr));
    args.extend(
        [
            "--queue",
            "kafka",
            "--brokers",
            &addr,
            "--topic",
            "metrics",
            "--exit-at-end",
        ]
        .map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut first = Consumer::start(dir.path(), "to-prom", &args);
    let status = first.wait(Duration::from_secs(60));
    assert!(status.success(), "{status:?}: {}", first.log_text());
    let got = prom.raw_samples(
        r#"{__name__="kafka_sink_test"}"#,
        now_ms() + 60_000,
        3_600_000,
    );
    let missing = missing_from(&expected, &got, 20);
    assert!(
        missing.is_empty(),
        "not in Prometheus:\n{}\n{}",
        missing.join("\n"),
        first.log_text()
    );
    assert!(missing_from(&got, &expected, 1).is_empty());
    assert!(
        first.log_text().contains(&format!("sent={}", lines.len())),
        "{}",
        first.log_text()
    );

    let mut again = Consumer::start(dir.path(), "to-prom", &args);
    let status = again.wait(Duration::from_secs(60));
    assert!(status.success(), "{status:?}: {}", again.log_text());
    assert!(
        again.log_text().contains("sent=0 "),
        "the committed offsets were not used:\n{}",
        again.log_text()
    );
}
