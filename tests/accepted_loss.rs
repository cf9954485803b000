//! Accepted mode's exit code 3 (README, "Accepted ack" and "Shutdown"): a
//! batch answered 200 in accepted mode that is still not durable at
//! shutdown is counted as lost, logged with the counts, and `serve` exits
//! 3. The data directory is a 4 MiB tmpfs: once it is full the writer
//! keeps the accepted batches in memory, retrying, until SIGTERM makes it
//! give up on them. Afterwards (with room again) every 200 is either read
//! back or among the lost the log counted: none is gone uncounted, and no
//! loss is reported that did not happen.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::tmpfs::Tmpfs;
use common::{consume_all, request, Server};

/// A ~2.5 KB batch (ten metrics with a long tag) so a few MiB fill quickly.
fn padded_body(seq: u64) -> String {
    let pad = "x".repeat(200);
    let metrics: Vec<String> = (0..10)
        .map(|i| {
            format!(
                r#"{{"name":"m{i}","value":{i},"type":"gauge","tags":{{"seq":"{seq}","pad":"{pad}"}}}}"#
            )
        })
        .collect();
    format!(r#"{{"metrics":[{}]}}"#, metrics.join(","))
}

/// `key=value` of the first log line containing `what`.
fn logged(log: &str, what: &str, key: &str) -> Option<u64> {
    let line = log.lines().find(|l| l.contains(what))?;
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))?
        .parse()
        .ok()
}

#[test]
fn accepted_batches_lost_at_shutdown_exit_3_with_the_count() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let fs = Tmpfs::mount(&data, "4m");
    let args = [
        "--ack",
        "accepted",
        "--partitions",
        "2",
        "--segment-bytes",
        "65536",
        // The smallest budget: the accepted batches the full disk strands
        // stay few, and senders get 503s soon after it fills.
        "--queue-bytes",
        "1048576",
        "--enqueue-timeout",
        "100ms",
        "--shutdown-timeout",
        "5s",
    ];
    let mut s = Server::start(&data, &args);
    let acked: Arc<Mutex<BTreeSet<u64>>> = Arc::default();

    // Four clients until each has had several 503s in a row: the disk is
    // full and the memory budget held by the stranded batches.
    let start = Instant::now();
    let clients: Vec<_> = (0..4u64)
        .map(|c| {
            let (addr, acked) = (s.addr, acked.clone());
            std::thread::spawn(move || {
                let mut in_a_row = 0;
                for i in 0.. {
                    let seq = c * 1_000_000 + i;
                    let r = request(
                        addr,
                        "POST",
                        "/metrics",
                        &[("Authorization", &format!("client-{c}"))],
                        padded_body(seq).as_bytes(),
                    );
                    match r.status {
                        200 => {
                            acked.lock().unwrap().insert(seq);
                            in_a_row = 0;
                        }
                        503 => in_a_row += 1,
                        other => panic!("batch {seq}: {other} {}", r.body),
                    }
                    if in_a_row >= 5 {
                        return;
                    }
                    assert!(
                        start.elapsed() < Duration::from_secs(90),
                        "the 4 MiB disk never filled"
                    );
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    assert!(
        s.child.try_wait().unwrap().is_none(),
        "serve exited on a full disk:\n{}",
        s.log_text()
    );

    let status = s.terminate(Duration::from_secs(20));
    let log = s.log_text();
    assert_eq!(
        status.code(),
        Some(3),
        "exit status after losing accepted batches: {status:?}\n{log}"
    );
    let lost = logged(&log, "shutdown complete", "lost")
        .unwrap_or_else(|| panic!("no `shutdown complete ... lost=N` line:\n{log}"));
    assert!(lost > 0, "exit 3 with lost=0:\n{log}");
    let given_up: u64 = log
        .lines()
        .filter(|l| l.contains("giving up on accepted batches at shutdown"))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("lost="))?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert_eq!(
        given_up, lost,
        "the writer's give-up lines and the shutdown count disagree:\n{log}"
    );

    // Room again, to read back (consume writes its group's offsets).
    fs.resize("64m");
    let mut stored: BTreeMap<u64, usize> = BTreeMap::new();
    for l in consume_all(&data, "verify") {
        let seq = l["tags"]["seq"].as_str().expect("seq tag").parse().unwrap();
        *stored.entry(seq).or_default() += 1;
    }
    let acked = acked.lock().unwrap();
    let unknown: Vec<_> = stored.keys().filter(|s| !acked.contains(s)).collect();
    assert!(
        unknown.is_empty(),
        "stored but never answered 200: {unknown:?}"
    );
    assert!(
        stored.values().all(|&n| n == 10),
        "a batch stored partly or twice"
    );
    let missing = acked.len() - stored.len();
    assert_eq!(
        missing as u64,
        lost,
        "{} batches answered 200, {} read back: the {missing} missing must be exactly the \
         lost={lost} the log counted",
        acked.len(),
        stored.len()
    );
}
