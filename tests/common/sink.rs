//! Helpers of the sink tests: remote_write bodies into `serve`, records
//! written straight into a data dir (native histograms, exemplars), `consume`
//! processes delivering into a store, and what they left on disk
//! (committed offsets, the dead-letter file).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use metricstream::record::metric::Histogram;
use metricstream::record::{ExemplarPoint, HistogramPoint, Metric, MetricType, Value};
use prost::Message;

use super::fake_store::{histogram_point, Meta, Point, Received, What};
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

/// One request of a sender as `serve` would store it: the partition, the
/// client id, its metrics.
pub type StoredRequest = (u32, String, Vec<Metric<'static>>);

/// Stores `requests` in the embedded log at `data` (`partitions`
/// partitions) as `serve` stores a request: the library's compact records,
/// appended by the file queue. How native histograms and exemplars get
/// into a data dir while `serve`'s remote_write receiver still refuses
/// them.
pub fn store_requests(data: &Path, partitions: u32, requests: &mut [StoredRequest]) {
    use metricstream::log::{LogConfig, SyncMode};
    use metricstream::queue::file::{FileQueue, FileQueueConfig};
    use metricstream::queue::{AckMode, Message, Queue, DEFAULT_MAX_RECORD_BYTES};
    use metricstream::record::{records, Format};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let telemetry = Arc::new(metricstream::telemetry::Telemetry::new().expect("telemetry"));
    let queue = {
        let _guard = rt.enter();
        FileQueue::open(
            FileQueueConfig {
                data_dir: data.to_path_buf(),
                partitions,
                ack: AckMode::Durable,
                log: LogConfig::default(),
                queue_bytes: 32 << 20,
                sync: SyncMode::Fdatasync,
                enqueue_timeout: Duration::from_secs(5),
                retention_check: Duration::from_secs(30),
                max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            },
            telemetry,
        )
        .expect("open the embedded log")
    };
    rt.block_on(async {
        for (partition, client, metrics) in requests.iter_mut() {
            let received_at = super::prometheus::now_ms() as u64;
            let payloads = records(
                Format::Compact,
                client,
                received_at,
                metrics,
                DEFAULT_MAX_RECORD_BYTES,
            )
            .expect("records");
            for value in payloads {
                let message = Message {
                    partition: *partition,
                    key: client.clone(),
                    value,
                    timestamp_ms: received_at as i64,
                };
                let receipt = queue.send(message).await.expect("stored");
                assert!(receipt.offset.is_some(), "durable: {receipt:?}");
            }
        }
        let report = queue.shutdown(Duration::from_secs(10)).await;
        assert_eq!(report.lost, 0, "{report:?}");
    });
}

/// A metric as a protocol would store it (tags and times as given).
pub fn metric(
    name: &str,
    tags: &[(&str, &str)],
    value: Value,
    kind: MetricType,
    timestamp: i64,
) -> Metric<'static> {
    let tags = tags
        .iter()
        .map(|(k, v)| (k.to_string().into(), v.to_string().into()))
        .collect();
    Metric::sample(name.to_string(), value, kind, tags, Some(timestamp as u64))
}

/// An integer native histogram, exponential schema 3, varying with `i`;
/// valid as Prometheus checks it: buckets 1 | i | 2, 2 + i, 3, so the
/// count is 8 + 2i.
pub fn int_histogram(i: u64) -> Histogram {
    use metricstream::record::metric::{histogram, BucketSpan};
    Histogram {
        count: Some(histogram::Count::CountInt(8 + 2 * i)),
        sum: 0.25 * i as f64 + 1.5,
        schema: 3,
        zero_threshold: 1e-128,
        zero_count: Some(histogram::ZeroCount::ZeroCountInt(i)),
        negative_spans: vec![BucketSpan {
            offset: -1,
            length: 1,
        }],
        negative_deltas: vec![1],
        positive_spans: vec![
            BucketSpan {
                offset: 0,
                length: 2,
            },
            BucketSpan {
                offset: 2,
                length: 1,
            },
        ],
        positive_deltas: vec![2, i as i64, 1 - i as i64],
        reset_hint: histogram::ResetHint::No as i32,
        ..Histogram::default()
    }
}

/// A float histogram with custom buckets (schema -53), varying with `i`
/// (its count the sum of its buckets, as Prometheus checks).
pub fn float_histogram(i: u64) -> Histogram {
    use metricstream::record::metric::{histogram, BucketSpan};
    let i = i as f64;
    Histogram {
        count: Some(histogram::Count::CountFloat(4.5 + i)),
        sum: f64::from_bits(0x7ff8_0000_0000_0001),
        schema: -53,
        zero_count: Some(histogram::ZeroCount::ZeroCountFloat(0.0)),
        positive_spans: vec![BucketSpan {
            offset: 0,
            length: 3,
        }],
        positive_counts: vec![1.5, 3.0 + i, 0.0],
        reset_hint: histogram::ResetHint::Gauge as i32,
        custom_values: vec![0.01, 0.1, f64::INFINITY],
        ..Histogram::default()
    }
}

/// `requests` requests of two senders, every kind of point a store is
/// delivered, with UTF-8 names: partition 0 ("app") a counter with a start
/// time, unit and help, its exemplars, an integer native histogram with a
/// start time, unit and help and its exemplars; partition 1 ("queue") a
/// float histogram with custom buckets and a gauge through a staleness
/// marker, -0.0 and an integer.
pub fn native_requests(requests: u64, base: i64) -> Vec<StoredRequest> {
    let start = base - 3_600_000;
    let rpc: &[(&str, &str)] = &[("code", "200"), ("service.name", "api")];
    let duration: &[(&str, &str)] = &[("service.name", "api"), ("zoné", "ö☃")];
    let mut out = Vec::new();
    for i in 0..requests {
        let t = base + i as i64 * 1000;
        let mut counter = metric(
            "rpc_total",
            rpc,
            Value::Float(i as f64 * 1.5),
            MetricType::Counter,
            t,
        );
        counter.created_timestamp = Some(start as u64);
        counter.unit = Some("requests".into());
        counter.help = Some("RPCs served.".into());
        let mut rpc_exemplar = metric(
            "rpc_total",
            rpc,
            Value::Float(i as f64 + 0.25),
            MetricType::Counter,
            t + 1,
        );
        rpc_exemplar.exemplar = Some(Box::new(ExemplarPoint {
            labels: [
                ("trace_id".to_string(), format!("{i:032x}")),
                ("span.id".to_string(), "00f067aa0ba902b7".to_string()),
            ]
            .into(),
        }));
        let h = int_histogram(i);
        let mut hist = metric(
            "http.server.request.duration",
            duration,
            Value::Float(0.0),
            MetricType::Histogram,
            t,
        );
        if let Some(metricstream::record::metric::histogram::Count::CountInt(n)) = h.count {
            hist.value = Value::UInt(n);
        }
        hist.histogram = Some(Box::new(HistogramPoint(h)));
        hist.created_timestamp = Some(start as u64);
        hist.unit = Some("seconds".into());
        hist.help = Some("Request duration.".into());
        let mut hist_exemplar = metric(
            "http.server.request.duration",
            duration,
            Value::Float(0.042),
            MetricType::Histogram,
            t + 2,
        );
        hist_exemplar.exemplar = Some(Box::new(ExemplarPoint {
            labels: [("trace_id".to_string(), format!("ü{i}"))].into(),
        }));
        out.push((
            0,
            "app".to_string(),
            vec![counter, rpc_exemplar, hist, hist_exemplar],
        ));

        let mut wait = metric(
            "queue_wait_seconds",
            &[("queue", "ü")],
            Value::Float(4.5 + i as f64),
            MetricType::Histogram,
            t,
        );
        wait.histogram = Some(Box::new(HistogramPoint(float_histogram(i))));
        let gauge = match i % 4 {
            0 => Value::Float(f64::from_bits(0x7ff0_0000_0000_0002)),
            1 => Value::Float(-0.0),
            2 => Value::Int(-3),
            _ => Value::Float(21.5 + i as f64),
        };
        let temperature = metric(
            "temperature.celsius",
            &[("room", "kitchen")],
            gauge,
            MetricType::Gauge,
            t,
        );
        out.push((1, "queue".to_string(), vec![wait, temperature]));
    }
    out
}

/// The points a remote_write store should receive for `requests`
/// (`version` 1 or 2: 1.0 has no start timestamps).
pub fn expected_points(requests: &[StoredRequest], version: u8) -> Vec<Point> {
    let mut out = Vec::new();
    for (_, _, metrics) in requests {
        for m in metrics {
            let mut series: BTreeMap<String, String> = m
                .tags
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            series.insert("__name__".into(), m.name.to_string());
            let start = match version {
                2 => m.created_timestamp.map_or(0, |t| t as i64),
                _ => 0,
            };
            let what = if let Some(h) = &m.histogram {
                let mut h = h.0.clone();
                h.start_timestamp = start;
                histogram_point(&h)
            } else if let Some(e) = &m.exemplar {
                What::Exemplar {
                    labels: e.labels.clone().into_iter().collect(),
                    bits: m.value.as_f64().to_bits(),
                }
            } else {
                What::Float {
                    bits: m.value.as_f64().to_bits(),
                    start,
                }
            };
            let timestamp = m.timestamp.expect("a timestamp") as i64;
            out.push(Point {
                series,
                timestamp,
                what,
            });
        }
    }
    out
}

/// What the metadata of [`native_requests`]' metrics says, by name.
pub fn expected_metadata() -> BTreeMap<String, Meta> {
    let meta = |t: i32, unit: &str, help: &str| (t, unit.to_string(), help.to_string());
    // Counter 1, gauge 2, histogram 3 in both versions.
    [
        ("rpc_total", meta(1, "requests", "RPCs served.")),
        (
            "http.server.request.duration",
            meta(3, "seconds", "Request duration."),
        ),
        ("queue_wait_seconds", meta(3, "", "")),
        ("temperature.celsius", meta(2, "", "")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The store accepted (204) exactly `expected`, each point once, as what it is (no
/// histogram or exemplar as a float, nothing else), each series' lists in
/// their order; and metadata that says `metadata` (a request that holds
/// only a series' exemplars may leave its unit and help out, never say
/// other ones).
pub fn assert_delivered(
    received: &[Received],
    expected: &[Point],
    metadata: &BTreeMap<String, Meta>,
) {
    let mut got = Vec::new();
    let mut said: BTreeMap<String, Vec<Meta>> = BTreeMap::new();
    for r in received.iter().filter(|r| r.status == Some(204)) {
        let d = r.decoded();
        got.extend(d.points);
        for (name, m) in d.metadata {
            said.entry(name).or_default().push(m);
        }
    }
    // Arrival order (a lane waits for the answer before its next request,
    // and a series stays in its lane): each series' lists in order.
    let mut last: BTreeMap<(BTreeMap<String, String>, &str), i64> = BTreeMap::new();
    for p in &got {
        let key = (p.series.clone(), p.what.list());
        if let Some(&before) = last.get(&key) {
            assert!(
                p.timestamp > before,
                "{key:?}: {} after {before}",
                p.timestamp
            );
        }
        last.insert(key, p.timestamp);
    }
    let (mut got, mut want) = (got, expected.to_vec());
    got.sort();
    want.sort();
    let missing: Vec<&Point> = want.iter().filter(|p| !got.contains(p)).take(5).collect();
    let extra: Vec<&Point> = got.iter().filter(|p| !want.contains(p)).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing at the store: {missing:#?}\nnever stored: {extra:#?}"
    );
    assert_eq!(got, want, "a point arrived twice");
    for (name, want) in metadata {
        let seen = said
            .get(name)
            .unwrap_or_else(|| panic!("no metadata for {name}: {said:?}"));
        assert!(seen.contains(want), "{name}: {seen:?}, want {want:?}");
        for m in seen {
            let partial = (want.0, String::new(), String::new());
            assert!(m == want || *m == partial, "{name}: {m:?}, want {want:?}");
        }
    }
}
