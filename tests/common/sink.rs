//! Helpers of the sink tests: remote_write bodies into `serve`, `consume`
//! processes delivering into a store, and what they left on disk
//! (committed offsets, the dead-letter file).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prost::Message;

use super::{request, Server, BIN};

/// One series of a request: name, labels, (value, timestamp ms) samples.
pub type Series = (String, Vec<(String, String)>, Vec<(f64, i64)>);

/// A remote_write 1.0 body (snappy block format), labels sorted.
pub fn rw_body(series: &[Series]) -> Vec<u8> {
    let timeseries = series
        .iter()
        .map(|(name, labels, samples)| {
            let mut l = vec![prompb::v1::Label {
                name: "__name__".into(),
                value: name.clone(),
            }];
            l.extend(labels.iter().map(|(k, v)| prompb::v1::Label {
                name: k.clone(),
                value: v.clone(),
            }));
            l.sort_by(|a, b| a.name.cmp(&b.name));
            prompb::v1::TimeSeries {
                labels: l,
                samples: samples
                    .iter()
                    .map(|&(value, timestamp)| prompb::v1::Sample { value, timestamp })
                    .collect(),
                ..Default::default()
            }
        })
        .collect();
    let req = prompb::v1::WriteRequest {
        timeseries,
        metadata: vec![],
    };
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .expect("snappy")
}

/// POSTs a remote_write body to `serve` as `client`; panics unless 2xx.
pub fn post_rw(server: &Server, client: &str, series: &[Series]) {
    let r = request(
        server.addr,
        "POST",
        "/api/v1/write",
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "snappy"),
            ("Authorization", client),
        ],
        &rw_body(series),
    );
    assert!((200..300).contains(&r.status), "serve refused: {r:?}");
}

/// A running `metricstream consume` with its stderr kept.
pub struct Consumer {
    pub child: Child,
    pub log: Arc<Mutex<String>>,
}

impl Consumer {
    /// `consume --group group --from-beginning --data-dir data` + `args`.
    pub fn start(data: &Path, group: &str, args: &[&str]) -> Consumer {
        let mut child = Command::new(BIN)
            .args([
                "consume",
                "--group",
                group,
                "--from-beginning",
                "--data-dir",
            ])
            .arg(data)
            .args(args)
            .env("METRICSTREAM_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn consume");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        Consumer { child, log }
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits for it to exit by itself (`--exit-at-end`).
    pub fn wait(&mut self, within: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s;
            }
            if start.elapsed() > within {
                let _ = self.child.kill();
                panic!(
                    "consume did not exit within {within:?}; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM and its exit status.
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        super::sigterm(&self.child);
        self.wait(within)
    }

    pub fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sink arguments for a remote_write store at `url`, retrying fast.
pub fn remote_write_args(url: &str) -> Vec<String> {
    [
        "--sink",
        "remote-write",
        "--url",
        url,
        "--linger",
        "50ms",
        "--min-backoff",
        "50ms",
        "--max-backoff",
        "1s",
        "--sink-timeout",
        "5s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Committed offsets of `group` on the embedded log, by partition.
pub fn committed(data: &Path, group: &str) -> BTreeMap<u32, u64> {
    let dir = data.join("groups").join(group).join("offsets");
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Ok(p) = name.parse::<u32>() {
            let text = std::fs::read_to_string(e.path()).expect("offset file");
            out.insert(p, text.trim().parse().expect("an offset"));
        }
    }
    out
}

/// The sent marks of `group` (the highest offset each partition has put
/// in a request, written before the request goes out), by partition.
pub fn sent_marks(data: &Path, group: &str) -> BTreeMap<u32, u64> {
    let dir = data.join("sink-state").join(group);
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        if let (Ok(p), Ok(mark)) = (name.parse::<u32>(), text.trim().parse()) {
            out.insert(p, mark);
        }
    }
    out
}

/// Each partition's end (last offset + 1) from what `consume` printed.
pub fn ends(lines: &[serde_json::Value]) -> BTreeMap<u32, u64> {
    let mut out = BTreeMap::new();
    for l in lines {
        let p = l["partition"].as_u64().expect("partition") as u32;
        let o = l["offset"].as_u64().expect("offset") + 1;
        let e = out.entry(p).or_insert(o);
        *e = (*e).max(o);
    }
    out
}

pub fn dead_letter_path(data: &Path, group: &str) -> PathBuf {
    data.join("dead-letter").join(format!("{group}.jsonl"))
}

/// The dead-letter file's lines (none if there is no file).
pub fn dead_letters(data: &Path, group: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dead_letter_path(data, group))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// Waits until `group` has committed every partition to `ends`.
pub fn wait_committed(
    data: &Path,
    group: &str,
    ends: &BTreeMap<u32, u64>,
    within: Duration,
    log: &dyn Fn() -> String,
) {
    let start = Instant::now();
    loop {
        let c = committed(data, group);
        if ends.iter().all(|(p, e)| c.get(p) == Some(e)) {
            return;
        }
        assert!(
            start.elapsed() < within,
            "offsets of {group} not at the end after {within:?}: committed {c:?}, ends {ends:?}; consume log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
