//! Prometheus remote_write 1.0 request bodies, shaped like what Prometheus'
//! own queue manager sends by default: up to 2,000 samples per request
//! (`max_samples_per_send`) spread over a few hundred series of 5–10 labels
//! each, labels sorted by name, snappy block encoded.
//!
//! A receiver that keeps a TSDB (Prometheus itself) refuses a sample that is
//! not newer than the last one of its series, so bodies cannot be replayed
//! from a pool: each client owns its series (a `client="c<id>"` label) and
//! stamps every request afresh with timestamps that only go up.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use bytes::Bytes;
use prompb::v1::{Label, Sample, TimeSeries, WriteRequest};
use prost::Message as _;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Series per request at most, by default; Prometheus' default shape is a
/// few hundred series with a handful of samples each.
pub const MAX_SERIES: usize = 400;

/// A metric family: its name, whether it is a counter, and its own labels
/// (name, value) for variant `j` of a series.
struct Family {
    name: &'static str,
    counter: bool,
    labels: fn(usize) -> Vec<(&'static str, String)>,
}

const CPU_MODES: [&str; 8] = [
    "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
];
const DISKS: [&str; 4] = ["nvme0n1", "nvme1n1", "sda", "sdb"];
const HANDLERS: [&str; 5] = [
    "/api/v1/query",
    "/api/v1/query_range",
    "/api/v1/series",
    "/api/v1/labels",
    "/metrics",
];

const FAMILIES: [Family; 6] = [
    Family {
        name: "node_cpu_seconds_total",
        counter: true,
        labels: |j| {
            vec![
                ("cpu", (j % 16).to_string()),
                ("mode", CPU_MODES[(j / 16) % CPU_MODES.len()].to_string()),
            ]
        },
    },
    Family {
        name: "node_filesystem_avail_bytes",
        counter: false,
        labels: |j| {
            vec![
                (
                    "device",
                    format!("/dev/{}p{}", DISKS[j % DISKS.len()], j % 3 + 1),
                ),
                (
                    "fstype",
                    if j % 2 == 0 { "ext4" } else { "xfs" }.to_string(),
                ),
                ("mountpoint", format!("/var/lib/data{}", j % 7)),
            ]
        },
    },
    Family {
        name: "node_disk_read_bytes_total",
        counter: true,
        labels: |j| vec![("device", DISKS[j % DISKS.len()].to_string())],
    },
    Family {
        name: "node_network_receive_bytes_total",
        counter: true,
        labels: |j| vec![("device", format!("eth{}", j % 4))],
    },
    Family {
        name: "prometheus_http_requests_total",
        counter: true,
        labels: |j| {
            vec![
                ("code", ["200", "400", "422", "503"][j % 4].to_string()),
                ("handler", HANDLERS[j % HANDLERS.len()].to_string()),
            ]
        },
    },
    Family {
        name: "container_memory_working_set_bytes",
        counter: false,
        labels: |j| {
            vec![
                ("container", format!("app-{}", j % 9)),
                (
                    "id",
                    format!(
                        "/kubepods/burstable/pod5f2c{j:04x}-3b1e-4c9a-9d7e-0c2a41f8e6b3/\
                         8e4f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d{j:04x}"
                    ),
                ),
                ("namespace", "monitoring".to_string()),
                ("pod", format!("app-{}-7d9f8c6b5-x{j:04x}", j % 9)),
            ]
        },
    },
];

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// How `samples` samples are spread: at most `max_series` series, each
/// with `samples / series` samples, the first `samples % series` one more.
fn samples_per_series(samples: usize, max_series: usize) -> Vec<usize> {
    let series = samples.clamp(1, max_series.max(1));
    let base = samples / series;
    let extra = samples % series;
    (0..series).map(|i| base + usize::from(i < extra)).collect()
}

/// The labels of series `i` of client `client`, sorted by name.
fn series_labels(client: u32, i: usize) -> Vec<Label> {
    let family = &FAMILIES[i % FAMILIES.len()];
    let j = i / FAMILIES.len();
    let mut labels: Vec<(&str, String)> = vec![
        ("__name__", family.name.to_string()),
        ("client", format!("c{client}")),
        (
            "instance",
            format!("node-{j:03}.eu-west-1.compute.internal:9100"),
        ),
        ("job", "node".to_string()),
    ];
    labels.extend((family.labels)(j));
    labels.sort_by(|a, b| a.0.cmp(b.0));
    labels
        .into_iter()
        .map(|(name, value)| Label {
            name: name.to_string(),
            value,
        })
        .collect()
}

/// One client's series and the state that keeps its timestamps going up.
#[derive(Debug)]
pub struct RemoteWriteBodies {
    request: WriteRequest,
    counters: Vec<bool>,
    /// Timestamp of the newest sample sent so far (every series shares it).
    last_ms: i64,
    rng: SmallRng,
    encoded: Vec<u8>,
    encoder: snap::raw::Encoder,
    /// New series every request: where each series' `churn` label is,
    /// and the requests made so far.
    churn: Option<(Vec<usize>, u64)>,
}

impl RemoteWriteBodies {
    /// `samples` samples per request over client `client`'s own series,
    /// at most `max_series` of them.
    pub fn new(client: u32, samples: usize, max_series: usize) -> Self {
        let mut rng = SmallRng::from_rng(&mut rand::rng());
        let shape = samples_per_series(samples, max_series);
        let mut counters = Vec::with_capacity(shape.len());
        let timeseries = shape
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let counter = FAMILIES[i % FAMILIES.len()].counter;
                counters.push(counter);
                let start = if counter {
                    f64::from(rng.random_range(0..1_000_000_u32))
                } else {
                    rng.random_range(1e6..1e11_f64).round()
                };
                TimeSeries {
                    labels: series_labels(client, i),
                    samples: vec![
                        Sample {
                            value: start,
                            timestamp: 0,
                        };
                        n
                    ],
                    ..TimeSeries::default()
                }
            })
            .collect();
        Self {
            request: WriteRequest {
                timeseries,
                metadata: Vec::new(),
            },
            counters,
            last_ms: i64::MIN,
            rng,
            encoded: Vec::new(),
            encoder: snap::raw::Encoder::new(),
            churn: None,
        }
    }

    /// With `on`, every body's series are new ones: a `churn` label (its
    /// value the number of the request) on every series.
    pub fn churning(mut self, on: bool) -> Self {
        if !on {
            self.churn = None;
            return self;
        }
        let mut at = Vec::with_capacity(self.request.timeseries.len());
        for series in &mut self.request.timeseries {
            let i = series.labels.partition_point(|l| l.name.as_str() < "churn");
            series.labels.insert(
                i,
                Label {
                    name: "churn".into(),
                    value: String::new(),
                },
            );
            at.push(i);
        }
        self.churn = Some((at, 0));
        self
    }

    /// Samples in every body.
    pub fn samples(&self) -> usize {
        self.request
            .timeseries
            .iter()
            .map(|s| s.samples.len())
            .sum()
    }

    /// The next body, stamped from `now_ms`: a series' samples are 1 ms
    /// apart and start at `max(now_ms, last + 1)`, so no sample is ever at
    /// or before one this client sent already.
    pub fn next_body(&mut self, now_ms: i64) -> anyhow::Result<Bytes> {
        if let Some((at, n)) = &mut self.churn {
            *n += 1;
            let value = n.to_string();
            for (series, &i) in self.request.timeseries.iter_mut().zip(at.iter()) {
                series.labels[i].value.clone_from(&value);
            }
        }
        let first = now_ms.max(self.last_ms.saturating_add(1));
        let mut newest = first;
        for (series, &counter) in self.request.timeseries.iter_mut().zip(&self.counters) {
            let mut value = series.samples.last().map_or(0.0, |s| s.value);
            for (k, sample) in series.samples.iter_mut().enumerate() {
                let ts = first.saturating_add(k as i64);
                newest = newest.max(ts);
                value = if counter {
                    value + f64::from(self.rng.random_range(0..5_000_u32))
                } else {
                    // A gauge wanders within ±5% of where it was.
                    (value * self.rng.random_range(0.95..1.05_f64)).round()
                };
                *sample = Sample {
                    value,
                    timestamp: ts,
                };
            }
        }
        self.last_ms = newest;
        self.encoded.clear();
        self.request
            .encode(&mut self.encoded)
            .context("encode remote_write request")?;
        let compressed = self
            .encoder
            .compress_vec(&self.encoded)
            .context("snappy-compress remote_write request")?;
        Ok(Bytes::from(compressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn decode(body: &[u8]) -> WriteRequest {
        let raw = snap::raw::Decoder::new()
            .decompress_vec(body)
            .expect("snappy block");
        WriteRequest::decode(&raw[..]).expect("protobuf WriteRequest")
    }

    fn pairs(labels: &[Label]) -> Vec<(String, String)> {
        labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect()
    }

    #[test]
    fn churning_bodies_never_repeat_a_series() {
        let mut bodies = RemoteWriteBodies::new(4, 300, 300).churning(true);
        let mut seen = HashSet::new();
        for _ in 0..3 {
            let request = decode(&bodies.next_body(now_ms()).unwrap());
            assert_eq!(request.timeseries.len(), 300);
            for series in &request.timeseries {
                assert_eq!(series.samples.len(), 1);
                let names: Vec<&str> = series.labels.iter().map(|l| l.name.as_str()).collect();
                let mut sorted = names.clone();
                sorted.sort_unstable();
                assert_eq!(names, sorted, "labels still sorted with churn in");
                assert!(seen.insert(pairs(&series.labels)), "a series came again");
            }
        }
        assert_eq!(seen.len(), 900);
    }

    #[test]
    fn default_shape_is_400_series_of_5_samples() {
        let mut bodies = RemoteWriteBodies::new(17, 2000, MAX_SERIES);
        assert_eq!(bodies.samples(), 2000);
        let request = decode(&bodies.next_body(now_ms()).unwrap());
        assert_eq!(request.timeseries.len(), 400);
        assert!(request.metadata.is_empty());
        let mut seen = HashSet::new();
        for series in &request.timeseries {
            assert_eq!(series.samples.len(), 5);
            assert!((5..=10).contains(&series.labels.len()), "{series:?}");
            let names: Vec<&str> = series.labels.iter().map(|l| l.name.as_str()).collect();
            let mut sorted = names.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(names, sorted, "labels sorted by name, no repeats");
            assert_eq!(names[0], "__name__");
            assert!(series
                .labels
                .iter()
                .any(|l| l.name == "client" && l.value == "c17"));
            assert!(series.labels.iter().all(|l| !l.value.is_empty()));
            assert!(seen.insert(pairs(&series.labels)), "series repeated");
        }
    }

    #[test]
    fn fewer_series_carry_more_samples_each() {
        let mut bodies = RemoteWriteBodies::new(2, 2000, 100);
        let request = decode(&bodies.next_body(now_ms()).unwrap());
        assert_eq!(request.timeseries.len(), 100);
        assert!(request.timeseries.iter().all(|s| s.samples.len() == 20));
    }

    #[test]
    fn odd_sizes_spread_every_sample() {
        for samples in [1, 7, 399, 400, 401, 1999, 5000] {
            let mut bodies = RemoteWriteBodies::new(0, samples, MAX_SERIES);
            let request = decode(&bodies.next_body(now_ms()).unwrap());
            let total: usize = request.timeseries.iter().map(|s| s.samples.len()).sum();
            assert_eq!(total, samples);
            assert_eq!(request.timeseries.len(), samples.min(MAX_SERIES));
            assert!(request.timeseries.iter().all(|s| !s.samples.is_empty()));
        }
    }

    #[test]
    fn timestamps_only_go_up_per_series() {
        let mut bodies = RemoteWriteBodies::new(3, 2000, MAX_SERIES);
        let now = now_ms();
        // The clock standing still (or going back) must not repeat a timestamp.
        let clocks = [now, now, now - 60_000, now + 1, now + 10_000];
        let mut last: Vec<i64> = vec![i64::MIN; 400];
        let mut last_value: Vec<f64> = vec![f64::MIN; 400];
        for clock in clocks {
            let request = decode(&bodies.next_body(clock).unwrap());
            for (i, series) in request.timeseries.iter().enumerate() {
                for sample in &series.samples {
                    assert!(sample.timestamp > last[i], "series {i}: not increasing");
                    assert!(sample.timestamp >= clock);
                    last[i] = sample.timestamp;
                    if FAMILIES[i % FAMILIES.len()].counter {
                        assert!(sample.value >= last_value[i], "counter went down");
                    }
                    last_value[i] = sample.value;
                }
            }
        }
    }

    #[test]
    fn clients_have_disjoint_series() {
        let a = decode(
            &RemoteWriteBodies::new(1, 50, MAX_SERIES)
                .next_body(now_ms())
                .unwrap(),
        );
        let b = decode(
            &RemoteWriteBodies::new(2, 50, MAX_SERIES)
                .next_body(now_ms())
                .unwrap(),
        );
        let a: HashSet<_> = a.timeseries.iter().map(|s| pairs(&s.labels)).collect();
        let b: HashSet<_> = b.timeseries.iter().map(|s| pairs(&s.labels)).collect();
        assert!(a.is_disjoint(&b));
    }
}
