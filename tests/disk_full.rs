//! Disk full: the data directory lives on a 4 MiB tmpfs. Load it until
//! writes fail: every refused batch gets a 503 that says the disk is full,
//! the server keeps running and `/ready` turns 503, also after a SIGKILL
//! and restart on the full disk. Then give the file system more room:
//! `/ready` turns 200 and the same process takes writes again. After a restart
//! with a full CRC scan, every 200 is read back exactly once at its offset,
//! no refused batch is stored, and recovery cuts nothing (no torn bytes
//! were left behind by the failed writes).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::report::{record, Figures};
use common::tmpfs::Tmpfs;
use common::{consume_all, request, wait_for, Server};

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

#[derive(Default)]
struct Outcome {
    /// seq → (partition, offset)
    acked: BTreeMap<u64, (u64, u64)>,
    refused: BTreeSet<u64>,
    refusals: Vec<String>,
}

/// POSTs batch `seq`; records a 200 or a 503 and fails on anything else.
fn post(addr: std::net::SocketAddr, client: u64, seq: u64, out: &Mutex<Outcome>) -> u16 {
    let r = request(
        addr,
        "POST",
        "/metrics",
        &[("Authorization", &format!("client-{client}"))],
        padded_body(seq).as_bytes(),
    );
    let mut o = out.lock().unwrap();
    match r.status {
        200 => {
            let j = r.json();
            let at = (
                j["partition"].as_u64().unwrap(),
                j["offset"].as_u64().unwrap(),
            );
            o.acked.insert(seq, at);
        }
        503 => {
            assert!(
                r.header("Retry-After").is_some(),
                "503 without Retry-After: {r:?}"
            );
            o.refused.insert(seq);
            o.refusals.push(r.body);
        }
        s => panic!("batch {seq}: unexpected status {s}: {}", r.body),
    }
    r.status
}

#[test]
fn disk_full_answers_503_and_recovers_when_space_returns() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let fs = Tmpfs::mount(&data, "4m");
    let args = ["--partitions", "2", "--segment-bytes", "65536"];
    let mut s = Server::start(&data, &args);
    let out = Arc::new(Mutex::new(Outcome::default()));

    // Fill it: four clients until each has seen several 503s in a row.
    let start = Instant::now();
    let clients: Vec<_> = (0..4u64)
        .map(|c| {
            let (addr, out) = (s.addr, out.clone());
            std::thread::spawn(move || {
                let mut in_a_row = 0;
                for i in 0.. {
                    let status = post(addr, c, c * 1_000_000 + i, &out);
                    in_a_row = if status == 503 { in_a_row + 1 } else { 0 };
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
    let fill_ms = start.elapsed().as_millis();
    assert!(
        s.child.try_wait().unwrap().is_none(),
        "server exited on a full disk:\n{}",
        s.log_text()
    );
    {
        let o = out.lock().unwrap();
        assert!(o.acked.len() > 100, "only {} batches fit", o.acked.len());
        for body in &o.refusals {
            assert!(
                body.contains("disk is full") && body.contains("ENOSPC"),
                "a 503 that does not say the disk is full: {body}"
            );
        }
    }
    assert_eq!(s.get("/health").status, 200);
    assert_eq!(s.get("/ready").status, 503, "ready while writes fail");

    // A crash while the disk is full: the restart must still come up
    // (recovery writes nothing new) and keep refusing with the same 503.
    s.kill();
    let mut s = Server::start(&data, &args);
    let mut seq = 8_000_000;
    for _ in 0..5 {
        seq += 1;
        assert_eq!(
            post(s.addr, seq % 4, seq, &out),
            503,
            "stored on a full disk"
        );
    }
    assert_eq!(s.get("/ready").status, 503, "ready while writes fail");

    // Space returns: the same process takes writes again.
    fs.resize("64m");
    // Ready again before any write: a load balancer that stopped sending
    // because of /ready must get a reason to send again.
    assert_eq!(s.get("/ready").status, 200, "not ready once space is back");
    let back = Instant::now();
    wait_for(
        "a 200 after space returned",
        Duration::from_secs(30),
        || {
            seq += 1;
            post(s.addr, seq % 4, seq, &out) == 200
        },
    );
    let recovery_ms = back.elapsed().as_millis() as u64;
    for _ in 0..50 {
        seq += 1;
        assert_eq!(
            post(s.addr, seq % 4, seq, &out),
            200,
            "after space returned"
        );
    }
    assert_eq!(
        s.get("/ready").status,
        200,
        "not ready after space returned"
    );

    let status = s.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status:?}\n{}", s.log_text());
    // Force the full CRC scan of a crash recovery: any torn bytes a failed
    // write left behind would show up as a cut.
    for p in 0..2 {
        let marker = data.join(format!("metrics-{p}")).join("clean-shutdown");
        std::fs::remove_file(&marker).expect("clean-shutdown marker after SIGTERM");
    }
    let restarted = Instant::now();
    let mut s = Server::start(&data, &args);
    let restart_ms = restarted.elapsed().as_millis() as u64;
    let log = s.log_text();
    assert!(
        log.matches("clean=false").count() == 2 && !log.contains("recovery cut"),
        "recovery found damage after the disk-full episode:\n{log}"
    );
    assert_eq!(s.terminate(Duration::from_secs(10)).code(), Some(0));

    let o = out.lock().unwrap();
    let lines = consume_all(&data, "verify");
    // consume prints one line per metric: group them back into records.
    let mut records: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
    for l in &lines {
        let at = (
            l["partition"].as_u64().unwrap(),
            l["offset"].as_u64().unwrap(),
        );
        let seq = l["tags"]["seq"].as_str().unwrap_or("?").to_string();
        records.entry(at).or_default().push(seq);
    }
    let mut seen: BTreeMap<u64, Vec<(u64, u64)>> = BTreeMap::new();
    let mut per_partition: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for (at, seqs) in &records {
        assert!(
            seqs.len() == 10 && seqs.iter().all(|s| s == &seqs[0]),
            "record {at:?} is not one whole batch: {seqs:?}"
        );
        per_partition.entry(at.0).or_default().push(at.1);
        let seq: u64 = seqs[0].parse().unwrap();
        seen.entry(seq).or_default().push(*at);
    }
    for (p, offsets) in &per_partition {
        let want: Vec<u64> = (0..offsets.len() as u64).collect();
        assert_eq!(offsets, &want, "partition {p}: offsets not contiguous");
    }
    let lost: Vec<_> = o.acked.keys().filter(|s| !seen.contains_key(s)).collect();
    let dup: Vec<_> = seen.iter().filter(|(_, at)| at.len() > 1).collect();
    let moved: Vec<_> = o
        .acked
        .iter()
        .filter(|(s, at)| seen.get(s).is_some_and(|v| v[0] != **at))
        .collect();
    let stored_refused: Vec<_> = o.refused.iter().filter(|s| seen.contains_key(s)).collect();
    let unknown: Vec<_> = seen.keys().filter(|s| !o.acked.contains_key(s)).collect();
    record(Figures {
        scenario: "disk full",
        checks: "4 MiB tmpfs filled: 503 + Retry-After naming ENOSPC, /ready 503, no crash; \
                 a SIGKILL on the full disk restarts and still refuses; writes resume without \
                 restart once space returns; every 200 read back once at its offset, no \
                 refused batch stored, full rescan cuts nothing",
        acknowledged: o.acked.len() as u64,
        lost: lost.len() as u64,
        duplicated: dup.len() as u64,
        recovery_ms,
        detail: format!(
            "{} refused with 503 after filling in {fill_ms} ms; first 200 {recovery_ms} ms \
             after space returned; restart with full scan {restart_ms} ms",
            o.refused.len()
        ),
    });
    assert!(lost.is_empty(), "acknowledged batches lost: {lost:?}");
    assert!(dup.is_empty(), "duplicated batches: {dup:?}");
    assert!(
        moved.is_empty(),
        "batches at another offset than acked: {moved:?}"
    );
    assert!(
        stored_refused.is_empty(),
        "batches answered 503 but stored: {stored_refused:?}"
    );
    assert!(unknown.is_empty(), "batches nobody sent: {unknown:?}");
}
