//! Two `consume` processes in one group split the partitions, never read
//! the same message twice, and one takes over when the other dies.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{batches, cpp_body, wait_for, Lines, Server, BIN};

fn start_member(data: &std::path::Path) -> (Child, Lines) {
    let mut child = Command::new(BIN)
        .args([
            "consume",
            "--group",
            "pair",
            "--from-beginning",
            "--data-dir",
        ])
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let lines: Lines = Arc::default();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines() {
            let Ok(l) = l else { break };
            sink.lock().unwrap().push(serde_json::from_str(&l).unwrap());
        }
    });
    (child, lines)
}

fn post_batches(s: &Server, from: u64, n: u64) {
    for i in from..from + n {
        let r = s.post(
            &cpp_body("h", i),
            &[("Authorization", &format!("client-{}", i % 16))],
        );
        assert_eq!(r.status, 200, "{r:?}");
    }
}

#[test]
fn two_members_split_partitions_and_take_over() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["--partitions", "4"]);
    post_batches(&s, 0, 1); // creates the queue so members can join
    let (mut a, a_lines) = start_member(dir.path());
    let (mut b, b_lines) = start_member(dir.path());
    std::thread::sleep(Duration::from_millis(1500)); // both joined and balanced
    post_batches(&s, 1, 199);

    wait_for("all 200 batches", Duration::from_secs(20), || {
        batches(&a_lines).len() + batches(&b_lines).len() >= 200
    });
    std::thread::sleep(Duration::from_millis(300));
    let (ba, bb) = (batches(&a_lines), batches(&b_lines));
    assert_eq!(ba.len() + bb.len(), 200, "a message was read twice");
    assert!(ba.is_disjoint(&bb));
    let parts = |b: &BTreeSet<(u64, u64)>| b.iter().map(|(p, _)| *p).collect::<BTreeSet<_>>();
    let (pa, pb) = (parts(&ba), parts(&bb));
    assert!(
        !pa.is_empty() && !pb.is_empty(),
        "one member got nothing: {pa:?} {pb:?}"
    );
    // Only batch 0 (before b joined) may sit in a partition the other owns now.
    let shared: BTreeSet<_> = pa.intersection(&pb).collect();
    assert!(shared.len() <= 1, "partitions read by both: {shared:?}");

    // a dies; b takes its partitions over and reads what comes next.
    a.kill().unwrap();
    a.wait().unwrap();
    let before = bb.len();
    post_batches(&s, 200, 100);
    wait_for("b to take over", Duration::from_secs(20), || {
        batches(&b_lines).len() >= before + 100
    });
    let late: BTreeMap<u64, usize> =
        batches(&b_lines)
            .difference(&bb)
            .fold(BTreeMap::new(), |mut m, (p, _)| {
                *m.entry(*p).or_default() += 1;
                m
            });
    assert_eq!(
        late.keys().copied().collect::<BTreeSet<_>>(),
        (0..4).collect(),
        "b reads every partition now"
    );
    assert!(batches(&a_lines).is_disjoint(&batches(&b_lines)));
    b.kill().unwrap();
    b.wait().unwrap();
}
