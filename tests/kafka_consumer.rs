//! `consume --queue kafka`: Kafka's consumer groups. Two members split the
//! partitions and read each batch once; `--exit-at-end` reads a topic to
//! its end and stops, printing the same lines as the embedded-log consumer.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::broker::{kafka_args, Broker};
use common::{batches, cpp_body, wait_for, Lines, Server, BIN};

struct Member {
    child: Child,
    lines: Lines,
    log: Arc<Mutex<String>>,
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_member(broker: &str, group: &str) -> Member {
    let mut child = Command::new(BIN)
        .args(["consume", "--queue", "kafka", "--brokers", broker])
        .args(["--topic", "metrics", "--group", group, "--from-beginning"])
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let lines: Lines = Arc::default();
    let log: Arc<Mutex<String>> = Arc::default();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines() {
            let Ok(l) = l else { break };
            sink.lock().unwrap().push(serde_json::from_str(&l).unwrap());
        }
    });
    let sink = log.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines() {
            let Ok(l) = l else { break };
            let mut s = sink.lock().unwrap();
            s.push_str(&l);
            s.push('\n');
        }
    });
    Member { child, lines, log }
}

fn post(s: &Server, from: u64, n: u64) {
    for i in from..from + n {
        let client = format!("client-{}", i % 16);
        let r = s.post(&cpp_body("h", i), &[("Authorization", &client)]);
        assert_eq!(r.status, 200, "{r:?}");
    }
}

#[test]
fn two_members_split_the_partitions() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let addr = broker.addr();
    let mut s = Server::start(dir.path(), &kafka_args(&addr, "metrics"));

    let a = start_member(&addr, "pair");
    let b = start_member(&addr, "pair");
    // Both in the group, with a share each, before anything is sent.
    wait_for(
        "both members to get partitions",
        Duration::from_secs(60),
        || {
            let has = |m: &Member| {
                m.log
                    .lock()
                    .unwrap()
                    .lines()
                    .rev()
                    .find(|l| l.contains("assigned partitions"))
                    .is_some_and(|l| !l.contains("[]"))
            };
            has(&a) && has(&b)
        },
    );
    std::thread::sleep(Duration::from_secs(1));
    post(&s, 0, 200);
    wait_for("all 200 batches", Duration::from_secs(60), || {
        batches(&a.lines).len() + batches(&b.lines).len() >= 200
    });
    std::thread::sleep(Duration::from_millis(500));
    let (ba, bb) = (batches(&a.lines), batches(&b.lines));
    assert_eq!(ba.len() + bb.len(), 200, "a batch was read twice");
    assert!(ba.is_disjoint(&bb));
    let parts = |b: &BTreeSet<(u64, u64)>| b.iter().map(|(p, _)| *p).collect::<BTreeSet<_>>();
    let (pa, pb) = (parts(&ba), parts(&bb));
    assert!(
        !pa.is_empty() && !pb.is_empty(),
        "one member got nothing: {pa:?} {pb:?}"
    );
    assert!(
        pa.is_disjoint(&pb),
        "partitions read by both: {pa:?} {pb:?}"
    );
    // Three metrics per batch, one line each, every field there.
    let lines = a.lines.lock().unwrap();
    assert_eq!(lines.len(), ba.len() * 3);
    let l = &lines[0];
    for field in [
        "client_id",
        "partition",
        "offset",
        "name",
        "value",
        "type",
        "tags",
        "timestamp",
        "received_at",
    ] {
        assert!(l.get(field).is_some(), "no {field} in {l}");
    }
    drop(lines);
    drop(a);
    drop(b);

    // A new group reads everything from the beginning and exits at the end;
    // offsets are committed, so running it again prints nothing new.
    let read = |group: &str| {
        let out = Command::new(BIN)
            .args(["consume", "--queue", "kafka", "--brokers", &addr])
            .args(["--topic", "metrics", "--group", group])
            .args(["--from-beginning", "--exit-at-end"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "consume failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    assert_eq!(read("all"), 600);
    assert_eq!(read("all"), 0, "committed offsets were not used");
    let status = s.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status:?}");
}
