//! A valid request within the body limit is storable on both backends and
//! in both ack modes: 1 MB of the shortest line protocol lines (`m f=1`,
//! ~170,000 points) is stored as as many records as `--max-record-bytes`
//! makes of it, every one under Kafka's default message size, and every
//! point is read back. (Stored as one JSON record it was 20+ MB: over
//! Kafka's `message.max.bytes`, a 503 for ever, which the sender retried
//! for ever.)

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{consume_all, request, Server};

/// `m f=1` lines (the shortest a point can be: no tags, no timestamp),
/// `bytes` long at most, and how many.
fn short_lines(bytes: usize) -> (String, usize) {
    let n = bytes / "m f=1\n".len();
    ("m f=1\n".repeat(n), n)
}

fn post_lines(server: &Server, body: &str) {
    let r = request(
        server.addr,
        "POST",
        "/write?db=big",
        &[("Authorization", "telegraf")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 204, "{}", r.body);
}

/// Every point read back: `n` of them, each `m_f` = 1.
fn assert_all_points<'a>(points: impl Iterator<Item = &'a serde_json::Value>, n: usize) {
    let mut total = 0usize;
    for p in points {
        assert_eq!(
            (p["name"].as_str(), p["value"].as_f64()),
            (Some("m_f"), Some(1.0)),
            "{p}"
        );
        total += 1;
    }
    assert_eq!(total, n, "every point, once");
}

#[test]
fn a_megabyte_of_short_lines_is_stored_in_the_embedded_log() {
    for ack in ["durable", "accepted"] {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Server::start(dir.path(), &["--ack", ack, "--rate-limit", "0"]);
        let (body, n) = short_lines(1_000_000);
        assert!(n > 150_000, "{n} lines");
        post_lines(&server, &body);
        assert!(server.terminate(Duration::from_secs(20)).success());
        let lines = consume_all(dir.path(), "big");
        let records: BTreeSet<_> = lines
            .iter()
            .map(|l| (l["partition"].as_u64(), l["offset"].as_u64()))
            .collect();
        assert!(records.len() > 1, "{ack}: cut into records");
        assert_all_points(lines.iter(), n);
    }
}

#[cfg(feature = "external")]
#[test]
fn a_megabyte_of_short_lines_is_stored_in_kafka_in_both_ack_modes() {
    use common::broker::{kafka_args, Broker};
    let broker = Broker::start();
    let addr = broker.addr();
    for (ack, format) in [
        ("durable", "compact"),
        ("accepted", "compact"),
        ("durable", "json"),
        ("accepted", "json"),
    ] {
        let topic = format!("big-{ack}-{format}");
        let dir = tempfile::tempdir().unwrap();
        let mut args = kafka_args(&addr, &topic);
        args.extend(["--ack", ack, "--kafka-format", format, "--rate-limit", "0"]);
        let mut server = Server::start(dir.path(), &args);
        let (body, n) = short_lines(1_000_000);
        post_lines(&server, &body);
        assert!(server.terminate(Duration::from_secs(30)).success());
        // Read back by the independent reader (confluent-kafka, records
        // decoded from the .proto for the compact format).
        let records = broker.read_until(&topic, Duration::from_secs(60), |r| {
            r.iter()
                .map(|r| r.value["metrics"].as_array().map_or(0, Vec::len))
                .sum::<usize>()
                >= n
        });
        assert!(records.len() > 1, "{ack}/{format}: cut into records");
        assert_all_points(
            records
                .iter()
                .flat_map(|r| r.value["metrics"].as_array().unwrap().iter()),
            n,
        );
    }
}
