//! `consume --in-flight N`: one partition's requests go out together (its
//! series split into lanes by hash), and still every series' samples reach
//! the store in order and once. Checked at a scripted store that answers
//! slowly and counts the requests in flight.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::fake_store::FakeStore;
use common::prometheus::now_ms;
use common::sink::{ends, post_rw, remote_write_args, wait_committed, Consumer};
use common::{consume_all, Server};
use prost::Message;

const SERIES: i64 = 40;
const REQUESTS: i64 = 30;

/// (series label, timestamps) of every sample in a remote_write body.
fn samples_in(body: &[u8]) -> Vec<(String, i64)> {
    let proto = snap::raw::Decoder::new()
        .decompress_vec(body)
        .expect("snappy");
    let req = prompb::v1::WriteRequest::decode(proto.as_slice()).expect("a WriteRequest");
    let mut out = Vec::new();
    for ts in &req.timeseries {
        let s = ts
            .labels
            .iter()
            .find(|l| l.name == "s")
            .map(|l| l.value.clone())
            .expect("label s");
        out.extend(ts.samples.iter().map(|x| (s.clone(), x.timestamp)));
    }
    out
}

fn run(in_flight: &str) -> (usize, BTreeMap<String, Vec<i64>>) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--partitions", "1"]);
    let base = now_ms() - 60_000;
    for i in 0..REQUESTS {
        let series: Vec<common::sink::Series> = (0..SERIES)
            .map(|s| {
                (
                    "lanes_test".to_string(),
                    vec![("s".to_string(), s.to_string())],
                    vec![(i as f64, base + i * 10)],
                )
            })
            .collect();
        post_rw(&server, "client-a", &series);
    }
    let now = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (n, m) = (now.clone(), most.clone());
    let store = FakeStore::start(Box::new(move |_| {
        let c = n.fetch_add(1, Ordering::SeqCst) + 1;
        m.fetch_max(c, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(30));
        n.fetch_sub(1, Ordering::SeqCst);
        Some((204, vec![]))
    }));
    let mut args = remote_write_args(&store.url());
    args.extend(["--batch-samples", "50", "--in-flight", in_flight].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut consumer = Consumer::start(dir.path(), "g", &args);
    let lines = consume_all(dir.path(), "reference");
    assert_eq!(lines.len() as i64, SERIES * REQUESTS);
    wait_committed(
        dir.path(),
        "g",
        &ends(&lines),
        Duration::from_secs(60),
        &|| consumer.log_text(),
    );
    let status = consumer.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status:?}");

    // A lane sends its next request only after the answer to the last, so
    // the order requests arrived in is each series' order of sending.
    let mut series: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for r in store.received.lock().unwrap().iter() {
        assert_eq!(r.status, Some(204));
        for (s, t) in samples_in(&r.body) {
            series.entry(s).or_default().push(t);
        }
    }
    (most.load(Ordering::SeqCst), series)
}

#[test]
fn one_partition_keeps_several_requests_in_flight_each_series_in_order() {
    let (most, series) = run("4");
    assert!(
        (2..=4).contains(&most),
        "{most} requests in flight at most, expected 2 to 4"
    );
    assert_eq!(series.len() as i64, SERIES);
    let base = series.values().next().unwrap()[0];
    for (s, ts) in &series {
        let want: Vec<i64> = (0..REQUESTS).map(|i| base + i * 10).collect();
        assert_eq!(ts, &want, "series {s}: every sample once, in order");
    }
}

#[test]
fn in_flight_one_sends_one_request_at_a_time() {
    let (most, series) = run("1");
    assert_eq!(most, 1);
    assert!(series.values().all(|ts| ts.len() as i64 == REQUESTS));
}
