//! The whole server in-process (no spawned binary): what a request gets,
//! what the shutdown report says, and that the log holds exactly the
//! acknowledged batches afterwards.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::in_process::InProcess;
use common::{consume_all, cpp_body, request};
use metricstream::queue::AckMode;

const JSON: (&str, &str) = ("Content-Type", "application/json");

#[test]
fn durable_requests_are_answered_with_offsets_and_read_back_after_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let server = InProcess::start(dir.path(), AckMode::Durable);
    let mut acked = Vec::new();
    let mut partitions: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for seq in 0..20 {
        let client = format!("client-{}", seq % 5);
        let r = request(
            server.addr,
            "POST",
            "/metrics",
            &[JSON, ("Authorization", &client)],
            cpp_body("web1", seq).as_bytes(),
        );
        assert_eq!(r.status, 200, "{r:?}");
        let j = r.json();
        let at = (
            j["partition"].as_u64().unwrap(),
            j["offset"].as_u64().unwrap(),
        );
        partitions.entry(client).or_default().insert(at.0);
        acked.push(at);
    }
    // A client is a partition key: one partition each.
    assert!(partitions.values().all(|p| p.len() == 1), "{partitions:?}");
    // Offsets are dense per partition, and no two answers name one record.
    acked.sort();
    for p in partitions.values().flatten().collect::<BTreeSet<_>>() {
        let offsets: Vec<u64> = acked.iter().filter(|a| a.0 == *p).map(|a| a.1).collect();
        assert_eq!(offsets, (0..offsets.len() as u64).collect::<Vec<_>>());
    }

    let r = request(server.addr, "GET", "/stats", &[], b"");
    assert_eq!(r.json()["batches_processed"], 20);
    assert_eq!(r.json()["metrics_received"], 60);

    let report = server.stop();
    assert_eq!(report.lost, 0);

    let lines = consume_all(dir.path(), "check");
    assert_eq!(lines.len(), 60, "3 metrics per acknowledged batch");
    let mut read: Vec<(u64, u64)> = lines
        .iter()
        .map(|l| {
            (
                l["partition"].as_u64().unwrap(),
                l["offset"].as_u64().unwrap(),
            )
        })
        .collect();
    read.sort();
    read.dedup();
    assert_eq!(read, acked);
}

#[test]
fn accepted_batches_are_all_in_the_log_after_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let server = InProcess::start(dir.path(), AckMode::Accepted);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let addr = server.addr;
            std::thread::spawn(move || {
                for seq in 0..25 {
                    let r = request(
                        addr,
                        "POST",
                        "/metrics",
                        &[JSON, ("Authorization", &format!("c{t}"))],
                        cpp_body("h", seq).as_bytes(),
                    );
                    assert_eq!(r.status, 200, "{r:?}");
                    // Accepted mode promises no offset.
                    assert!(r.json().get("offset").is_none(), "{r:?}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let report = server.stop();
    assert_eq!(report.lost, 0);
    assert_eq!(consume_all(dir.path(), "check").len(), 8 * 25 * 3);
}

#[test]
fn shutdown_turns_ready_off_and_refuses_new_connections() {
    let dir = tempfile::tempdir().unwrap();
    let server = InProcess::start(dir.path(), AckMode::Durable);
    let addr = server.addr;
    assert_eq!(request(addr, "GET", "/ready", &[], b"").status, 200);
    let app = server.app.clone();
    let report = server.stop();
    assert_eq!(report.lost, 0);
    assert!(app.shutting_down.load(std::sync::atomic::Ordering::Acquire));
    // The listener is closed: nothing answers any more.
    let gone = common::try_request(addr, "GET", "/health", &[], b"");
    assert!(gone.is_err(), "{gone:?}");
}
