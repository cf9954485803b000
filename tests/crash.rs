//! SIGKILL under load, repeatedly: every batch that got a 200 in durable
//! mode must be read back by `consume` after the restart, exactly once.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{consume_all, cpp_body, request, Server};

#[test]
fn sigkill_under_load_loses_no_acknowledged_batch() {
    let dir = tempfile::tempdir().unwrap();
    let acked: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let mut next_seq = 0u64;
    for round in 0..3 {
        let mut s = Server::start(dir.path(), &["--partitions", "4"]);
        if round > 0 {
            let log = s.log_text();
            assert!(
                log.contains("clean=false"),
                "round {round}: expected crash recovery:\n{log}"
            );
        }
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
    let mut s = Server::start(dir.path(), &[]);
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
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged batches lost: {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(10)]
    );
    let dup: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dup.is_empty(), "duplicated batches: {dup:?}");
}
