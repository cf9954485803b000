//! `consume --sink influx` into a real InfluxDB 1.6 (`/write`, db,
//! precision ms): every finite sample is a point `name,tags value=x t` as
//! `/query` reads it back; NaN and ±Inf, which InfluxDB cannot store, and
//! the points InfluxDB refuses (a tag named `time`) are in the dead-letter
//! file and nothing else is. A second group delivering everything again
//! (a replay: InfluxDB overwrites the same points) changes nothing. Native
//! histograms and exemplars, which line protocol has no form for, are
//! dead-lettered whole with a reason that says so, never written as a
//! float, and their offsets are committed all the same.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::influxdb::{InfluxDb, Points};
use common::prometheus::now_ms;
use common::sink::{
    dead_letters, ends, native_requests, post_rw, store_requests, wait_committed, Consumer, Series,
};
use common::{consume_all, Server};

fn is_refused(line: &serde_json::Value) -> bool {
    line["value"].is_string() || line["tags"].get("time").is_some()
}

fn deliver(dir: &std::path::Path, db: &InfluxDb, group: &str) -> Consumer {
    let url = db.write_url();
    let args = [
        "--sink",
        "influx",
        "--url",
        &url,
        "--influx-db",
        "metrics",
        "--linger",
        "50ms",
        "--min-backoff",
        "50ms",
        "--max-backoff",
        "1s",
        "--exit-at-end",
    ];
    let mut c = Consumer::start(dir, group, &args);
    let status = c.wait(Duration::from_secs(60));
    assert!(status.success(), "{status:?}: {}", c.log_text());
    c
}

#[test]
fn influx_gets_every_storable_sample_and_refusals_are_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--partitions", "2"]);
    let base = now_ms() - 20 * 60 * 1000;
    for i in 0..40i64 {
        for c in 0..2 {
            let mut req: Vec<Series> = (0..6)
                .map(|s| {
                    let value = match (s, i % 9) {
                        (0, 1) => f64::INFINITY,
                        (0, 2) => f64::NAN,
                        _ => i as f64 * 0.75 - s as f64,
                    };
                    (
                        format!("influx_test_{}", s % 3),
                        vec![
                            ("client".into(), format!("c{c}")),
                            ("s".into(), s.to_string()),
                        ],
                        vec![(value, base + i * 1000)],
                    )
                })
                .collect();
            if i % 10 == 3 {
                req.push((
                    "influx_test_bad".into(),
                    vec![("time".into(), "x".into())],
                    vec![(1.0, base + i * 1000)],
                ));
            }
            post_rw(&server, &format!("client-{c}"), &req);
        }
    }
    let lines = consume_all(dir.path(), "reference");
    let ends = ends(&lines);
    let db = InfluxDb::start("metrics");

    let first = deliver(dir.path(), &db, "to-influx");
    wait_committed(
        dir.path(),
        "to-influx",
        &ends,
        Duration::from_secs(1),
        &|| first.log_text(),
    );

    let mut expected = Points::new();
    let mut refused = Vec::new();
    for l in &lines {
        let tags: BTreeMap<String, String> =
            serde_json::from_value(l["tags"].clone()).expect("tags");
        let name = l["name"].as_str().unwrap().to_string();
        let ts = l["timestamp"].as_i64().unwrap();
        if is_refused(l) {
            refused.push((name, tags, ts));
        } else {
            expected
                .entry((name, tags))
                .or_default()
                .insert(ts, l["value"].clone());
        }
    }
    assert!(
        refused.len() >= 8 + 8,
        "the test sends too few refusals: {refused:?}"
    );
    let got = db.points("metrics");
    let total: usize = expected.values().map(|p| p.len()).sum();
    for (series, points) in &expected {
        for (ts, v) in points {
            let found = got.get(series).and_then(|p| p.get(ts));
            assert!(
                found.and_then(|f| f.as_f64()) == v.as_f64(),
                "{series:?} @{ts}: expected {v}, InfluxDB has {found:?}"
            );
        }
    }
    let stored: usize = got.values().map(|p| p.len()).sum();
    assert_eq!(stored, total, "InfluxDB holds points never queued");

    let check_dead = |group: &str| {
        let mut dead: Vec<(String, BTreeMap<String, String>, i64)> =
            dead_letters(dir.path(), group)
                .iter()
                .map(|d| {
                    let reason = d["reason"].as_str().unwrap();
                    if d["name"] == "influx_test_bad" {
                        assert_eq!(d["status"], 400, "{d}");
                        assert!(reason.contains("invalid tag key"), "{d}");
                    } else {
                        assert!(reason.contains("NaN or infinite"), "{d}");
                    }
                    (
                        d["name"].as_str().unwrap().to_string(),
                        serde_json::from_value(d["tags"].clone()).unwrap(),
                        d["timestamp"].as_i64().unwrap(),
                    )
                })
                .collect();
        dead.sort();
        let mut want = refused.clone();
        want.sort();
        assert_eq!(
            dead, want,
            "the dead-letter file of {group} must hold exactly the refused samples"
        );
    };
    check_dead("to-influx");

    // Everything again: InfluxDB overwrites, nothing new is refused.
    let again = deliver(dir.path(), &db, "again");
    wait_committed(dir.path(), "again", &ends, Duration::from_secs(1), &|| {
        again.log_text()
    });
    check_dead("again");
    assert_eq!(
        db.points("metrics"),
        got,
        "a replay changed what InfluxDB holds"
    );
    eprintln!(
        "{total} points checked in InfluxDB, {} refusals dead-lettered",
        refused.len()
    );
}

#[test]
fn native_histograms_and_exemplars_are_dead_lettered_whole_and_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut requests = native_requests(10, now_ms() - 60_000);
    // Only the floats that InfluxDB takes beside them: its own refusals
    // (NaN, a field type conflict) are the test above's.
    for (_, _, metrics) in &mut requests {
        metrics.retain(|m| m.name != "temperature.celsius");
    }
    store_requests(dir.path(), 2, &mut requests);
    let lines = consume_all(dir.path(), "reference");
    let ends = ends(&lines);
    let db = InfluxDb::start("metrics");
    let c = deliver(dir.path(), &db, "to-influx");
    wait_committed(
        dir.path(),
        "to-influx",
        &ends,
        Duration::from_secs(1),
        &|| c.log_text(),
    );

    let is_float =
        |l: &serde_json::Value| l.get("histogram").is_none() && l.get("exemplar").is_none();
    // InfluxDB holds the float samples, and nothing else (values by
    // their bits: it reads 0.0 back as 0).
    type Bits = BTreeMap<(String, BTreeMap<String, String>), BTreeMap<i64, u64>>;
    let bits = |v: &serde_json::Value| v.as_f64().expect("a number").to_bits();
    let mut expected = Bits::new();
    for l in lines.iter().filter(|l| is_float(l)) {
        let tags: BTreeMap<String, String> = serde_json::from_value(l["tags"].clone()).unwrap();
        let name = l["name"].as_str().unwrap().to_string();
        expected
            .entry((name, tags))
            .or_default()
            .insert(l["timestamp"].as_i64().unwrap(), bits(&l["value"]));
    }
    assert_eq!(expected.values().map(|p| p.len()).sum::<usize>(), 10);
    let got: Bits = db
        .points("metrics")
        .into_iter()
        .map(|(series, points)| (series, points.iter().map(|(t, v)| (*t, bits(v))).collect()))
        .collect();
    assert_eq!(got, expected, "InfluxDB holds what it should not");

    // Each histogram and exemplar is in the dead-letter file once, as
    // `consume` prints it (the histogram in the record's JSON shape, the
    // exemplar's labels), with the reason.
    let key = |l: &serde_json::Value| {
        (
            l["partition"].as_u64(),
            l["offset"].as_u64(),
            l["name"].to_string(),
            l["timestamp"].as_i64(),
            l["histogram"].to_string(),
            l["exemplar"].to_string(),
        )
    };
    let dead = dead_letters(dir.path(), "to-influx");
    for d in &dead {
        let why = d["reason"].as_str().unwrap();
        if d.get("histogram").is_some() {
            assert!(why.contains("no native histograms"), "{d}");
        } else {
            assert!(why.contains("no exemplars"), "{d}");
        }
        assert!(d["status"].is_null(), "refused before sending: {d}");
        let printed = lines.iter().find(|l| key(l) == key(d)).unwrap_or_else(|| {
            panic!("dead letter {d} is not a queued point as consume prints it")
        });
        assert_eq!(d["value"], printed["value"], "{d}");
        assert_eq!(d["tags"], printed["tags"], "{d}");
    }
    let mut got: Vec<_> = dead.iter().map(key).collect();
    let mut want: Vec<_> = lines.iter().filter(|l| !is_float(l)).map(key).collect();
    got.sort();
    want.sort();
    assert_eq!(
        want.len(),
        10 * 4,
        "two histograms and two exemplars a request"
    );
    assert_eq!(got, want, "the dead-letter file must hold exactly them");
}
