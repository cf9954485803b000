//! Data directories of earlier releases read back: a small data dir written
//! by the release before record versions (JSON records only, committed in
//! tests/fixtures/v1-data-dir, with what that release's `consume` printed
//! of it), read by this release as it was; then the same directory served
//! by this release, which appends compact records behind the old ones, and
//! a consumer that reads both in order.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{consume_all, request, Server};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1-data-dir")
}

/// A copy of the fixture to work in (serve writes into a data dir).
fn copy_fixture(to: &Path) {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let target = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &target);
            } else {
                std::fs::copy(e.path(), target).unwrap();
            }
        }
    }
    copy(&fixture(), to);
}

fn expected() -> Vec<serde_json::Value> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1-data-dir.expected.jsonl");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Lines in the order a consumer meets them: by partition, then offset.
fn by_partition(mut lines: Vec<serde_json::Value>) -> Vec<serde_json::Value> {
    lines.sort_by_key(|l| (l["partition"].as_u64(), l["offset"].as_u64()));
    lines
}

#[test]
fn a_data_dir_of_the_json_release_reads_back_as_it_did() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture(dir.path());
    let got = consume_all(dir.path(), "old");
    let want = expected();
    assert_eq!(got.len(), 52, "every line the old release printed");
    assert_eq!(by_partition(got), by_partition(want));
}

#[test]
fn new_records_follow_old_ones_and_a_consumer_reads_both_in_order() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture(dir.path());
    let mut server = Server::start(dir.path(), &["--partitions", "2"]);
    // The client the fixture's JSON batch came from, so it lands in the
    // same partition behind the old records.
    let r = server.post(
        r#"{"metrics":[{"name":"after_upgrade","value":7.25,"type":"gauge","tags":{"host":"web1"}}]}"#,
        &[("Authorization", "web"), ("Content-Type", "application/json")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let line = "cpu,host=a usage=3.5,n=4i 1732646402000000001\n";
    let r = request(
        server.addr,
        "POST",
        "/write?db=tele&precision=ns",
        &[("Authorization", "influx")],
        line.as_bytes(),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(server.terminate(Duration::from_secs(10)).success());

    let got = by_partition(consume_all(dir.path(), "mixed"));
    let want = by_partition(expected());
    assert_eq!(got.len(), want.len() + 3);
    // The old records first in their partitions, unchanged...
    let old: Vec<_> = got
        .iter()
        .filter(|l| {
            want.iter()
                .any(|w| w["partition"] == l["partition"] && w["offset"] == l["offset"])
        })
        .cloned()
        .collect();
    assert_eq!(old, want);
    // ...then the new ones, after every old offset of their partition.
    let new: Vec<_> = got.iter().filter(|l| !old.contains(l)).collect();
    assert_eq!(new.len(), 3);
    for l in &new {
        let last_old = want
            .iter()
            .filter(|w| w["partition"] == l["partition"])
            .map(|w| w["offset"].as_u64().unwrap())
            .max()
            .unwrap_or(0);
        assert!(l["offset"].as_u64().unwrap() > last_old, "{l}");
    }
    let after = new
        .iter()
        .find(|l| l["name"] == "after_upgrade")
        .expect("the JSON metric");
    assert_eq!(after["client_id"], "web");
    assert_eq!(after["value"], 7.25);
    assert_eq!(after["tags"]["host"], "web1");
    let usage = new
        .iter()
        .find(|l| l["name"] == "cpu_usage" && l["tags"]["db"] == "tele" && l["value"] == 3.5)
        .expect("the line's float field");
    assert_eq!(usage["timestamp"], 1_732_646_402_000u64);
    assert_eq!(usage["timestamp_ns"], 1_732_646_402_000_000_001u64);
    let n = new
        .iter()
        .find(|l| l["name"] == "cpu_n")
        .expect("the line's integer field");
    assert!(n["value"].is_u64() && n["value"] == 4, "{n}");
}
