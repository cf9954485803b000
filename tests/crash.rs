//! SIGKILL under load, repeatedly: every batch that got a 200 in durable
//! mode must be read back by `consume` after the restart, exactly once,
//! and every restart must run crash recovery on every partition and come
//! up listening (its time is measured).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::report::{record, scale, Figures};
use common::{consume_all, cpp_body, request, Server};

const PARTITIONS: usize = 4;

/// Starts the server on a killed data dir; checks that every partition was
/// recovered as after a crash. Returns it, the ms to listening and the cuts.
fn restart(dir: &Path, round: u64) -> (Server, u64, usize) {
    let started = Instant::now();
    let s = Server::start(dir, &["--partitions", "4"]);
    let ms = started.elapsed().as_millis() as u64;
    let log = s.log_text();
    for p in 0..PARTITIONS {
        let tag = format!("partition={p}");
        let opened = log
            .lines()
            .find(|l| l.contains("partition log opened") && l.split_whitespace().any(|w| w == tag));
        assert!(
            opened.is_some_and(|l| l.contains("clean=false")),
            "round {round}: partition {p} not reopened by crash recovery:\n{log}"
        );
    }
    // A cut is legal (a write torn by the kill was never acknowledged); the
    // read-back below proves it took nothing acknowledged.
    (s, ms, log.matches("recovery cut the log").count())
}

#[test]
fn sigkill_under_load_loses_no_acknowledged_batch() {
    let dir = tempfile::tempdir().unwrap();
    let acked: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let mut next_seq = 0u64;
    let kills = scale(5);
    let (mut worst_ms, mut cuts) = (0, 0);
    for round in 0..kills {
        let mut s = if round == 0 {
            Server::start(dir.path(), &["--partitions", "4"])
        } else {
            let (s, ms, cut) = restart(dir.path(), round);
            worst_ms = worst_ms.max(ms);
            cuts += cut;
            s
        };
        let stop = Arc::new(AtomicBool::new(false));
        let addr = s.addr;
        let clients: Vec<_> = (0..12)
            .map(|c| {
                let (stop, acked) = (stop.clone(), acked.clone());
                let base = next_seq + c * 1_000_000;
                std::thread::spawn(move || {
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let seq = format!("{}", base + i);
                        let body = cpp_body(&format!("c{c}"), base + i);
                        let r = request(
                            addr,
                            "POST",
                            "/metrics",
                            &[("Authorization", &format!("client-{c}"))],
                            body.as_bytes(),
                        );
                        if r.status == 200 {
                            acked.lock().unwrap().insert(seq);
                        } else if r.status == 0 {
                            break; // the server is gone
                        }
                        i += 1;
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(1500));
        s.kill(); // SIGKILL mid-load
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.join().unwrap();
        }
        next_seq += 100_000_000;
    }

    // Restart once more so recovery runs, then read everything back.
    let (mut s, ms, cut) = restart(dir.path(), kills);
    worst_ms = worst_ms.max(ms);
    cuts += cut;
    let status = s.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status:?}\n{}", s.log_text());
    let lines = consume_all(dir.path(), "verify");
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for l in &lines {
        if let Some(seq) = l["tags"]["seq"].as_str() {
            *seen.entry(seq.to_string()).or_default() += 1;
        }
    }
    let acked = acked.lock().unwrap();
    assert!(
        acked.len() > 100,
        "too little load to prove anything: {}",
        acked.len()
    );
    let lost: Vec<_> = acked.iter().filter(|s| !seen.contains_key(*s)).collect();
    let dup: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    record(Figures {
        scenario: &format!("SIGKILL under load ×{kills}"),
        checks: "12 durable clients, server SIGKILLed mid-load and restarted; every restart \
                 recovers every partition as after a crash; every 200 read back exactly once",
        acknowledged: acked.len() as u64,
        lost: lost.len() as u64,
        duplicated: dup.len() as u64,
        recovery_ms: worst_ms,
        detail: format!(
            "{kills} kills; worst restart (spawn to listening) {worst_ms} ms; \
             {cuts} torn tails of unacknowledged writes cut"
        ),
    });
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged batches lost: {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(10)]
    );
    assert!(dup.is_empty(), "duplicated batches: {dup:?}");
}
