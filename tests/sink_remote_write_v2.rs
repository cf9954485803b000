//! `consume --sink remote-write --remote-write-version 2` into another
//! `metricstream serve` (a remote_write 2.0 receiver; Prometheus 2.42 takes
//! 1.0 only): what the second queue holds is what the first held — names,
//! tags, values (NaN and ±Inf included), timestamps, and the types, which
//! 2.0 carries in each series' metadata.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::prometheus::now_ms;
use common::sink::{dead_letters, post_rw, Consumer};
use common::{consume_all, cpp_body, Server};

/// (name, tags, value, timestamp, type) of every metric, as text.
fn content(lines: &[serde_json::Value]) -> BTreeSet<String> {
    lines
        .iter()
        .map(|l| {
            format!(
                "{} {} {} {} {}",
                l["name"], l["tags"], l["value"], l["timestamp"], l["type"]
            )
        })
        .collect()
}

#[test]
fn remote_write_2_carries_samples_and_types_into_a_2_0_receiver() {
    let a_dir = tempfile::tempdir().unwrap();
    let a = Server::start(a_dir.path(), &["--partitions", "2"]);
    for i in 0..30 {
        let r = a.post(
            &cpp_body(&format!("h{}", i % 3), i),
            &[("Authorization", "json-client")],
        );
        assert_eq!(r.status, 200, "{r:?}");
    }
    let base = now_ms() - 60_000;
    for i in 0..10i64 {
        let special = [f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1.5][i as usize % 4];
        post_rw(
            &a,
            "rw-client",
            &[(
                "rw_v2_test".into(),
                vec![("i".into(), (i % 2).to_string())],
                vec![(special, base + i * 1000)],
            )],
        );
    }
    let b_dir = tempfile::tempdir().unwrap();
    let b = Server::start(b_dir.path(), &["--partitions", "3"]);
    let url = format!("http://{}/api/v1/write", b.addr);
    let args = [
        "--sink",
        "remote-write",
        "--remote-write-version",
        "2",
        "--url",
        &url,
        "--bearer-token",
        "ignored-without-keys",
        "--linger",
        "50ms",
        "--exit-at-end",
    ];
    let mut c = Consumer::start(a_dir.path(), "to-b", &args);
    let status = c.wait(Duration::from_secs(60));
    assert!(status.success(), "{status:?}: {}", c.log_text());

    let sent = content(&consume_all(a_dir.path(), "check"));
    let got = content(&consume_all(b_dir.path(), "check"));
    assert_eq!(sent.len(), 30 * 3 + 10);
    let missing: Vec<_> = sent.difference(&got).take(10).collect();
    let extra: Vec<_> = got.difference(&sent).take(10).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing in B: {missing:?}\nonly in B: {extra:?}\n{}",
        c.log_text()
    );
    assert!(
        got.iter().any(|l| l.ends_with("\"counter\"")),
        "types lost: {got:?}"
    );
    assert!(dead_letters(a_dir.path(), "to-b").is_empty());
}
