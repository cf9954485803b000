//! The consumer's replay after a SIGKILL is real and bounded (README,
//! "Delivering into a store", at-least-once): consume commits what the
//! store acknowledged every 200 ms, so a SIGKILL re-sends what came after
//! the last commit, "at most 200 ms of acknowledgements, plus what faster
//! lanes delivered beyond the slowest one".
//!
//! A scripted store that takes ~20 ms per request paces the delivery of a
//! backlog; `consume --sink remote-write` is SIGKILLed mid-stream and
//! restarted. Every point must reach the store (none missing), some twice
//! (the replay happened), and the points delivered twice must be at most
//! what the store took in 200 ms at the rate measured just before the
//! kill, plus one batch per lane and one record per partition (a record
//! partly delivered when its partition's acknowledgement stopped is sent
//! again whole). Tolerance: the 200 ms are doubled, for the consumer's
//! loop turn and commit on two cores shared with the store and the test.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::fake_store::{FakeStore, Point};
use common::prometheus::now_ms;
use common::sink::{
    expected_points, metric, remote_write_args, store_requests, wait_committed, Consumer,
    StoredRequest,
};
use metricstream::record::{MetricType, Value};

const PARTITIONS: u32 = 2;
const RECORDS_PER_PARTITION: u64 = 300;
const SERIES: u64 = 50;
/// Points per series per record: a record holds SERIES × this many.
const STEPS: u64 = 4;
const BATCH_SAMPLES: u64 = 200;
const LANES_PER_PARTITION: u64 = 2;
/// How long the store takes to answer a request.
const STORE_DELAY: Duration = Duration::from_millis(20);
/// What the README promises: at most this much of acknowledgements re-sent.
const COMMIT_EVERY: Duration = Duration::from_millis(200);
/// The tolerance on it (see the module doc).
const TIME_TOLERANCE: f64 = 2.0;

/// The backlog: per partition, records of SERIES series × STEPS points.
fn backlog(base: i64) -> Vec<StoredRequest> {
    let mut out = Vec::new();
    for r in 0..RECORDS_PER_PARTITION {
        for p in 0..PARTITIONS {
            let mut metrics = Vec::new();
            for s in 0..SERIES {
                for k in 0..STEPS {
                    let t = base + (r * STEPS + k) as i64;
                    let (ps, ss) = (p.to_string(), s.to_string());
                    metrics.push(metric(
                        "replay_test",
                        &[("p", &ps), ("s", &ss)],
                        Value::Float((r * STEPS + k) as f64),
                        MetricType::Gauge,
                        t,
                    ));
                }
            }
            out.push((p, format!("sender-{p}"), metrics));
        }
    }
    out
}

/// The requests the store answered 204 so far, as (arrival, points).
/// Copied out under the store's lock and decoded after it: the store's
/// threads take that lock for every request, and decoding under it would
/// pace the delivery instead of the store's delay.
fn accepted(store: &FakeStore) -> Vec<(Instant, Vec<Point>)> {
    let answered: Vec<_> = store
        .received
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.status == Some(204))
        .cloned()
        .collect();
    answered
        .into_iter()
        .map(|r| (r.at, r.decoded().points))
        .collect()
}

/// How many requests the store has answered 204 so far.
fn answered(store: &FakeStore) -> u64 {
    let received = store.received.lock().unwrap();
    received.iter().filter(|r| r.status == Some(204)).count() as u64
}

#[test]
fn a_sigkill_of_consume_resends_a_bounded_replay_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let mut requests = backlog(now_ms() - 3_600_000);
    store_requests(data, PARTITIONS, &mut requests);
    let expected = expected_points(&requests, 1);
    let total = expected.len() as u64;
    let store = FakeStore::start(Box::new(|_| {
        std::thread::sleep(STORE_DELAY);
        Some((204, vec![]))
    }));
    let mut args = remote_write_args(&store.url());
    args.extend(
        [
            "--batch-samples",
            &BATCH_SAMPLES.to_string(),
            "--in-flight",
            &LANES_PER_PARTITION.to_string(),
        ]
        .map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let mut first = Consumer::start(data, "replay", &args);
    // Mid-stream: a third of the backlog delivered, and at least 1.5 s of
    // delivery to measure the rate over.
    let started = Instant::now();
    let mut streaming_since = None;
    loop {
        // Requests are at most BATCH_SAMPLES samples each.
        let requests = answered(&store);
        if requests > 0 && streaming_since.is_none() {
            streaming_since = Some(Instant::now());
        }
        let enough = requests * BATCH_SAMPLES >= total / 2;
        if enough && streaming_since.is_some_and(|t| t.elapsed() > Duration::from_millis(1500)) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "delivery too slow: {requests} requests; log:\n{}",
            first.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    first.sigkill();
    let killed = Instant::now();
    // The requests in flight at the kill get their answers (the store
    // answers whoever asked): count them as delivered, as a store would.
    std::thread::sleep(STORE_DELAY * 5);
    let window = Duration::from_secs(1);
    let before: Vec<(Instant, Vec<Point>)> = accepted(&store);
    let in_window: usize = before
        .iter()
        .filter(|(at, _)| *at >= killed - window && *at < killed)
        .map(|(_, points)| points.len())
        .sum();
    let rate = in_window as f64 / window.as_secs_f64();
    let before_restart: usize = before.iter().map(|(_, points)| points.len()).sum();
    assert!(
        (before_restart as u64) < total,
        "the whole backlog went before the kill"
    );

    let mut second = Consumer::start(data, "replay", &args);
    let ends: BTreeMap<u32, u64> = (0..PARTITIONS)
        .map(|p| (p, RECORDS_PER_PARTITION))
        .collect();
    wait_committed(data, "replay", &ends, Duration::from_secs(120), &|| {
        second.log_text()
    });
    second.terminate(Duration::from_secs(10));

    let mut got: BTreeMap<Point, u64> = BTreeMap::new();
    for (_, points) in accepted(&store) {
        for p in points {
            *got.entry(p).or_default() += 1;
        }
    }
    let missing: Vec<&Point> = expected
        .iter()
        .filter(|p| !got.contains_key(p))
        .take(3)
        .collect();
    assert!(missing.is_empty(), "never delivered: {missing:#?}");
    assert_eq!(
        got.len() as u64,
        total,
        "points nobody stored were delivered"
    );
    let twice: u64 = got.values().map(|n| n - 1).sum();
    let lanes = u64::from(PARTITIONS) * LANES_PER_PARTITION;
    let record = SERIES * STEPS;
    let bound = rate * COMMIT_EVERY.as_secs_f64() * TIME_TOLERANCE
        + (lanes * BATCH_SAMPLES) as f64
        + (u64::from(PARTITIONS) * record) as f64;
    let figures = format!(
        "{total} points; {before_restart} delivered before the restart at {rate:.0} samples/s; \
         {twice} delivered twice; bound {bound:.0} = {rate:.0}/s × {:?} × {TIME_TOLERANCE} + \
         {lanes} lanes × {BATCH_SAMPLES} + {PARTITIONS} records × {record}",
        COMMIT_EVERY
    );
    assert!(twice > 0, "no replay after a SIGKILL mid-stream: {figures}");
    assert!(
        (twice as f64) <= bound,
        "the replay is more than the README's bound: {figures}"
    );
    eprintln!("{figures}");
}
