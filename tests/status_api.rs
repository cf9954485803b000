//! `GET /api/status` against independent measurements of the same data
//! directory: record counts and offsets read back with `consume`, lag from
//! the committed offsets in the group's files, disk free from statvfs
//! (rustix), bytes from walking the directory; rates and refusals from the
//! requests this test sent; a 401 without a key when keys are configured.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use common::{consume_all, cpp_body, request, wait_for, Server};
use serde_json::Value;

const PARTITIONS: u64 = 3;

fn status(server: &Server) -> Value {
    let r = server.get("/api/status");
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// What `du -s -B1` counts: allocated blocks of every file and directory.
fn walk(path: &Path) -> u64 {
    let meta = std::fs::symlink_metadata(path).unwrap();
    let mut total = meta.blocks() * 512;
    if meta.is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            total += walk(&e.unwrap().path());
        }
    }
    total
}

/// Records per partition and the highest offset, as `consume` reads them.
fn read_back(dir: &Path, group: &str) -> Vec<(u64, Option<u64>)> {
    let lines = consume_all(dir, group);
    (0..PARTITIONS)
        .map(|p| {
            let offsets: std::collections::BTreeSet<u64> = lines
                .iter()
                .filter(|l| l["partition"].as_u64() == Some(p))
                .map(|l| l["offset"].as_u64().unwrap())
                .collect();
            (offsets.len() as u64, offsets.last().copied())
        })
        .collect()
}

fn committed(dir: &Path, group: &str, p: u64) -> Option<u64> {
    let path = dir
        .join("groups")
        .join(group)
        .join("offsets")
        .join(p.to_string());
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().parse().unwrap())
}

fn post_batches(server: &Server, clients: &[&str], each: u64) {
    for c in clients {
        for seq in 0..each {
            let r = server.post(&cpp_body(c, seq), &[("Authorization", c)]);
            assert_eq!(r.status, 200, "{}", r.body);
        }
    }
}

#[test]
fn figures_match_what_consume_the_group_files_and_the_file_system_say() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--partitions", &PARTITIONS.to_string()]);
    let clients = ["alpha", "bravo", "charlie", "delta", "echo"];
    post_batches(&server, &clients, 20);
    // One refused request of each kind the page counts: a 400 and a 415.
    assert_eq!(server.post("{", &[]).status, 400);
    let r = request(
        server.addr,
        "POST",
        "/metrics",
        &[("Content-Type", "text/plain")],
        b"x",
    );
    assert_eq!(r.status, 415);

    // Records and offsets per partition, as the reader of the queue sees them.
    let seen = read_back(dir.path(), "reader");
    let s = status(&server);
    let parts = s["partitions"].as_array().unwrap();
    assert_eq!(parts.len() as u64, PARTITIONS);
    let mut total = 0;
    for (p, (records, last)) in parts.iter().zip(&seen) {
        assert_eq!(p["records"].as_u64(), Some(*records), "{p}");
        assert_eq!(p["last_offset"].as_u64(), *last, "{p}");
        assert_eq!(p["first_offset"].as_u64(), last.map(|_| 0), "{p}");
        if *records > 0 {
            let age = p["oldest_record_age_seconds"].as_f64().unwrap();
            assert!((0.0..60.0).contains(&age), "{p}");
        }
        total += records;
    }
    assert_eq!(total, 100, "one record per batch: {seen:?}");

    // The protocol figures: 100 batches of 3 metrics, two refusals.
    let json = &s["protocols"][0];
    assert_eq!(json["name"], "json");
    assert_eq!(json["samples_total"].as_u64(), Some(300));
    let refusals: Vec<(String, u64)> = json["refusals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["status"].as_str().unwrap().to_string(),
                r["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(refusals, vec![("400".into(), 1), ("415".into(), 1)]);
    // The sampler ticks every second; within its 5 s window the batches show.
    wait_for("a JSON rate", Duration::from_secs(5), || {
        status(&server)["protocols"][0]["samples_per_second"]
            .as_f64()
            .unwrap()
            > 0.0
    });

    // The reader group caught up: no lag, by its own committed offsets.
    let s = status(&server);
    let group = |s: &Value, name: &str| -> Value {
        s["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no group {name}: {s}"))
    };
    assert_eq!(group(&s, "reader")["lag_records"].as_u64(), Some(0));
    // No member is left once consume exited.
    assert_eq!(group(&s, "reader")["members_alive"].as_u64(), Some(0));

    // 30 more batches: the lag of each partition is its end less what the
    // group's offset file says.
    post_batches(&server, &clients[..3], 10);
    let s = status(&server);
    let g = group(&s, "reader");
    let mut lag_sum = 0;
    for (gp, p) in g["partitions"].as_array().unwrap().iter().zip(parts) {
        let n = gp["partition"].as_u64().unwrap();
        let end = s["partitions"][n as usize]["end_offset"].as_u64().unwrap();
        let expected = match committed(dir.path(), "reader", n) {
            Some(c) => end - c,
            None => {
                assert_eq!(p["records"].as_u64(), Some(0), "{gp}");
                end
            }
        };
        assert_eq!(gp["lag_records"].as_u64(), Some(expected), "{gp}");
        if expected > 0 {
            assert!(gp["lag_seconds"].as_f64().unwrap() >= 0.0);
        }
        lag_sum += expected;
    }
    assert_eq!(lag_sum, 30);
    assert_eq!(g["lag_records"].as_u64(), Some(30));
    let seen = read_back(dir.path(), "reader");
    assert_eq!(seen.iter().map(|s| s.0).sum::<u64>(), 30);
    assert_eq!(
        group(&status(&server), "reader")["lag_records"].as_u64(),
        Some(0)
    );

    // Disk: statvfs of the data directory, and its walked size, both read
    // around the answer (free space moves with everything else on the disk).
    let before = rustix::fs::statvfs(dir.path()).unwrap();
    let walked = walk(dir.path());
    let s = status(&server);
    let after = rustix::fs::statvfs(dir.path()).unwrap();
    let free = |v: &rustix::fs::StatVfs| v.f_bavail * v.f_frsize;
    let d = &s["disk"];
    let shown_free = d["free_bytes"].as_u64().unwrap();
    let (lo, hi) = (
        free(&before).min(free(&after)),
        free(&before).max(free(&after)),
    );
    let slack = 64 << 20;
    assert!(
        shown_free + slack >= lo && shown_free <= hi + slack,
        "free {shown_free} vs statvfs {lo}..{hi}"
    );
    assert_eq!(
        d["total_bytes"].as_u64(),
        Some(before.f_blocks * before.f_frsize)
    );
    assert_eq!(d["data_dir_bytes"].as_u64(), Some(walked), "{d}");
    let log: u64 = (0..PARTITIONS)
        .map(|p| walk(&dir.path().join(format!("metrics-{p}"))))
        .sum();
    assert_eq!(d["log_bytes"].as_u64(), Some(log));
    assert_eq!(s["queue"], "embedded");
    assert_eq!(s["ack"], "durable");
    assert_eq!(s["dead_letters"], serde_json::json!([]));
}

#[test]
fn with_api_keys_the_figures_need_a_key_and_the_page_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--api-key", "ops:s3cret"]);
    let r = server.get("/api/status");
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.json()["error"].as_str().unwrap().contains("API key"));
    let wrong = request(
        server.addr,
        "GET",
        "/api/status",
        &[("Authorization", "Bearer nope")],
        b"",
    );
    assert_eq!(wrong.status, 401);
    let ok = request(
        server.addr,
        "GET",
        "/api/status",
        &[("Authorization", "Bearer s3cret")],
        b"",
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(!ok.body.contains("s3cret"));
    // The page and its files are static and carry no figures.
    for (path, kind) in [
        ("/", "text/html"),
        ("/status", "text/html"),
        ("/status/style.css", "text/css"),
        ("/status/app.js", "text/javascript"),
    ] {
        let r = server.get(path);
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.header("content-type").unwrap().starts_with(kind),
            "{path}"
        );
        assert!(r
            .header("content-security-policy")
            .unwrap()
            .contains("connect-src 'self'"));
    }
}
