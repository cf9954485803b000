//! `consume --sink remote-write --remote-write-version 2` into another
//! `metricstream serve` (a remote_write 2.0 receiver; Prometheus 2.42 takes
//! 1.0 only): what the second queue holds is what the first held — names,
//! tags, values (NaN and ±Inf included), timestamps, and the types, which
//! 2.0 carries in each series' metadata. And at a scripted store that
//! decodes what it gets: native histograms and exemplars (UTF-8 names,
//! start timestamps, unit, help) arrive in their own lists, once each,
//! none as a float.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::fake_store::FakeStore;
use common::prometheus::now_ms;
use common::sink::{
    assert_delivered, dead_letters, ends, expected_metadata, expected_points, native_requests,
    post_rw, store_requests, wait_committed, Consumer,
};
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

/// Native histograms (integer, float with custom buckets) and exemplars,
/// with UTF-8 names, start timestamps, unit and help, stored as `serve`
/// stores them, reach a remote_write 2.0 store each in its series'
/// `histograms` or `exemplars`, once, in order, nothing as a float that
/// was not one; each series' metadata carries its type, unit and help;
/// every offset is committed.
#[test]
fn native_histograms_and_exemplars_reach_a_2_0_store_as_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let mut requests = native_requests(30, now_ms() - 60_000);
    store_requests(dir.path(), 2, &mut requests);
    let store = FakeStore::start(Box::new(|_| Some((204, vec![]))));
    let url = store.url();
    let args = [
        "--sink",
        "remote-write",
        "--remote-write-version",
        "2",
        "--url",
        &url,
        "--batch-samples",
        "7",
        "--linger",
        "50ms",
        "--exit-at-end",
    ];
    let mut consumer = Consumer::start(dir.path(), "g", &args);
    let status = consumer.wait(Duration::from_secs(60));
    assert!(status.success(), "{status:?}: {}", consumer.log_text());
    let ends = ends(&consume_all(dir.path(), "reference"));
    wait_committed(dir.path(), "g", &ends, Duration::from_secs(1), &|| {
        consumer.log_text()
    });
    let received = store.received.lock().unwrap();
    assert!(received.len() >= 20, "{} requests", received.len());
    assert!(received.iter().all(|r| r
        .content_type
        .ends_with("proto=io.prometheus.write.v2.Request")));
    assert_delivered(
        &received,
        &expected_points(&requests, 2),
        &expected_metadata(),
    );
    assert!(dead_letters(dir.path(), "g").is_empty());
}
