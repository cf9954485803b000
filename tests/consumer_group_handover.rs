//! A consumer group reads every record exactly once across clean
//! handovers (README, "Consumer groups": a member commits what it wrote
//! before it lets a partition go, and the next owner starts at that
//! commit). Lines are counted, not collected into a set, so a record read
//! twice shows. Two members split four partitions; a third joins (taking
//! a partition from one and moving another between the first two), reads,
//! and leaves with SIGTERM (handing its partition back), all while
//! batches keep coming.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{cpp_body, sigterm, wait_for, Server, BIN};

const GROUP: &str = "handover";
/// Metrics in a `cpp_body` batch: one line each.
const LINES_PER_BATCH: usize = 3;

/// A member: its process and the lines it printed, in order.
struct Member {
    name: &'static str,
    child: Child,
    lines: Arc<Mutex<Vec<serde_json::Value>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Member {
    fn start(name: &'static str, data: &std::path::Path) -> Member {
        let mut child = Command::new(BIN)
            .args([
                "consume",
                "--group",
                GROUP,
                "--from-beginning",
                "--data-dir",
            ])
            .arg(data)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn consume");
        let out = child.stdout.take().expect("stdout");
        let lines: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let v = serde_json::from_str(&l).unwrap_or_else(|e| panic!("{l:?}: {e}"));
                sink.lock().unwrap().push(v);
            }
        });
        Member {
            name,
            child,
            lines,
            reader: Some(reader),
        }
    }

    fn count(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// SIGTERM; it must exit 0 (having committed) within 10 s. Its
    /// output is read to the end.
    fn leave(&mut self) {
        sigterm(&self.child);
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{} did not leave within 10 s of SIGTERM",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "{} exited {status:?}", self.name);
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
    }

    /// (partition, offset) of every line it printed.
    fn records(&self) -> Vec<(u64, u64)> {
        common::records(&self.lines)
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn every_record_is_read_once_across_a_member_joining_and_leaving() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["--partitions", "4"]);
    let posted = Arc::new(AtomicU64::new(0));
    let post = |seq: u64| {
        let r = s.post(
            &cpp_body("h", seq),
            &[("Authorization", &format!("client-{}", seq % 16))],
        );
        assert_eq!(r.status, 200, "{r:?}");
    };
    post(0); // creates the queue, so members can join
    posted.store(1, Ordering::Release);
    let mut a = Member::start("a", dir.path());
    let mut b = Member::start("b", dir.path());
    std::thread::sleep(Duration::from_millis(1500)); // both joined and balanced

    // Batches keep coming through everything below, 16 clients over all
    // four partitions.
    let stop = Arc::new(AtomicBool::new(false));
    let poster = {
        let (addr, stop, posted) = (s.addr, stop.clone(), posted.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Acquire) {
                let seq = posted.load(Ordering::Acquire);
                let r = common::request(
                    addr,
                    "POST",
                    "/metrics",
                    &[("Authorization", &format!("client-{}", seq % 16))],
                    cpp_body("h", seq).as_bytes(),
                );
                assert_eq!(r.status, 200, "{r:?}");
                posted.fetch_add(1, Ordering::AcqRel);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(1000));
    let mut c = Member::start("c", dir.path());
    wait_for("c to take a partition", Duration::from_secs(20), || {
        c.count() > 0
    });
    std::thread::sleep(Duration::from_millis(1500));
    c.leave();
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Release);
    poster.join().unwrap();
    let batches = posted.load(Ordering::Acquire) as usize;

    wait_for("every batch read", Duration::from_secs(30), || {
        let keys: BTreeSet<(u64, u64)> = a
            .records()
            .into_iter()
            .chain(b.records())
            .chain(c.records())
            .collect();
        keys.len() >= batches
    });
    // Anything read twice would come now, if at all.
    std::thread::sleep(Duration::from_millis(500));
    a.leave();
    b.leave();

    // Lines per record, counted over every member.
    let mut lines: BTreeMap<(u64, u64), Vec<&str>> = BTreeMap::new();
    for m in [&a, &b, &c] {
        for at in m.records() {
            lines.entry(at).or_default().push(m.name);
        }
    }
    let twice: Vec<_> = lines
        .iter()
        .filter(|(_, by)| by.len() != LINES_PER_BATCH)
        .take(10)
        .collect();
    assert!(
        twice.is_empty(),
        "records not read exactly once (members that printed each line): {twice:?}"
    );
    assert_eq!(lines.len(), batches, "records read");
    let total: usize = [&a, &b, &c].iter().map(|m| m.count()).sum();
    assert_eq!(total, batches * LINES_PER_BATCH, "lines printed");

    // The handovers happened: c read a partition, which others read both
    // before c took it and after c gave it back.
    let partitions = |m: &Member| -> BTreeMap<u64, (u64, u64)> {
        let mut out: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
        for (p, o) in m.records() {
            let e = out.entry(p).or_insert((o, o));
            *e = (e.0.min(o), e.1.max(o));
        }
        out
    };
    let of_c = partitions(&c);
    assert!(!of_c.is_empty(), "c read nothing");
    let handed_back = of_c.iter().any(|(p, (lo, hi))| {
        let others: Vec<u64> = [&a, &b]
            .iter()
            .flat_map(|m| m.records())
            .filter(|(q, _)| q == p)
            .map(|(_, o)| o)
            .collect();
        others.iter().any(|o| o < lo) && others.iter().any(|o| o > hi)
    });
    assert!(
        handed_back,
        "no partition went to c and back: c read {of_c:?}, a {:?}, b {:?}",
        partitions(&a),
        partitions(&b)
    );
}
