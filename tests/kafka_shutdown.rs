//! SIGTERM under load in accepted mode: every 200 reaches Kafka by the end of
//! the drain, exit 0. A full producer queue: bounded wait, then 503 with
//! Retry-After, and nothing answered 200 is missing.

mod common;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::broker::{assert_all_acked_in_kafka, kafka_args, seq_counts, Broker, Load};
use common::{cpp_body, request, Server};

#[test]
fn accepted_sigterm_under_load_delivers_everything() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let addr = broker.addr();
    let mut args = kafka_args(&addr, "metrics");
    args.extend(["--ack", "accepted"]);
    let mut s = Server::start(dir.path(), &args);
    let load = Load::start(s.addr, 8, 0, Duration::ZERO);
    std::thread::sleep(Duration::from_secs(2));
    let status = s.terminate(Duration::from_secs(20));
    let outcomes = load.stop();
    let log = s.log_text();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("lost=0"), "{log}");
    let acked = outcomes.iter().filter(|o| o.status == 200).count();
    assert!(acked > 200, "too little load: {acked}");
    // Right after the exit: the drain delivered (nothing was spilled).
    assert!(log.contains("spilled=0"), "{log}");
    let records = broker.read_topic("metrics");
    assert_all_acked_in_kafka(&outcomes, &records);
    let dups = seq_counts(&records).values().filter(|n| **n > 1).count();
    assert_eq!(dups, 0, "duplicates without any failure");
}

#[test]
fn full_producer_queue_answers_503_after_a_bounded_wait() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let addr = broker.addr();
    let mut args = kafka_args(&addr, "metrics");
    // Room for one batch, which lingers half a second: the others wait
    // --enqueue-timeout for room, then get a 503.
    args.extend([
        "-X",
        "queue.buffering.max.messages=1",
        "-X",
        "linger.ms=500",
        "--enqueue-timeout",
        "100ms",
    ]);
    let mut s = Server::start(dir.path(), &args);
    let n = 12;
    let barrier = Arc::new(Barrier::new(n));
    let addr = s.addr;
    let threads: Vec<_> = (0..n as u64)
        .map(|i| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let started = std::time::Instant::now();
                let r = request(
                    addr,
                    "POST",
                    "/metrics",
                    &[("Authorization", "c")],
                    cpp_body("h", i).as_bytes(),
                );
                (i, r, started.elapsed())
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let full: Vec<_> = results.iter().filter(|(_, r, _)| r.status == 503).collect();
    let ok: Vec<_> = results.iter().filter(|(_, r, _)| r.status == 200).collect();
    assert_eq!(full.len() + ok.len(), n, "{results:?}");
    assert!(!full.is_empty(), "no 503 from a full queue: {results:?}");
    assert!(!ok.is_empty(), "nothing went through");
    for (_, r, took) in &full {
        assert!(r.body.contains("full"), "{r:?}");
        assert!(r.header("retry-after").is_some(), "{r:?}");
        assert!(*took < Duration::from_secs(2), "waited {took:?}");
    }
    let stats = s.get("/stats").json();
    assert_eq!(stats["delivered"].as_u64().unwrap(), ok.len() as u64);
    let records = broker.read_until("metrics", Duration::from_secs(30), |r| r.len() >= ok.len());
    assert_eq!(records.len(), ok.len(), "only what got a 200 is stored");
    let seen = seq_counts(&records);
    for (i, _, _) in ok {
        assert!(seen.contains_key(&i.to_string()));
    }
    let status = s.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status:?}");
}
