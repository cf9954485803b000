//! Real Prometheus 2.42 and node exporter processes for the remote_write
//! tests (Debian packages `prometheus`, `prometheus-node-exporter`,
//! installed by scripts/deps.sh), on free loopback ports with temp dirs, and
//! readers of what Prometheus holds (its HTTP API, its own /metrics).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::broker::free_port;
use super::{request, wait_for};

fn binary(var: &str, name: &str) -> PathBuf {
    let path = std::env::var_os(var).map(PathBuf::from).or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.exists())
        })
    });
    path.unwrap_or_else(|| {
        panic!(
            "the remote_write tests need {name} (Debian package {name}): run ./scripts/test.sh \
             (its scripts/deps.sh installs it) or `apt-get install {name}`, or set {var}"
        )
    })
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn wait_http(what: &str, addr: SocketAddr, path: &str, child: &mut Child) {
    wait_for(what, Duration::from_secs(60), || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited at start: {status}");
        }
        request(addr, "GET", path, &[], b"").status == 200
    });
}

pub struct NodeExporter {
    child: Child,
    pub addr: SocketAddr,
}

impl NodeExporter {
    pub fn start() -> NodeExporter {
        let addr = loopback(free_port());
        let mut child = Command::new(binary(
            "METRICSTREAM_NODE_EXPORTER",
            "prometheus-node-exporter",
        ))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the node exporter");
        wait_http("node exporter", addr, "/metrics", &mut child);
        NodeExporter { child, addr }
    }
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where Prometheus remote-writes to.
pub struct RemoteWrite {
    pub url: String,
    pub bearer_token: Option<String>,
}

pub struct Prometheus {
    child: Option<Child>,
    pub addr: SocketAddr,
    config: PathBuf,
    dir: tempfile::TempDir,
    receiver: bool,
}

impl Prometheus {
    /// Scrapes `targets` (job `node`) and itself (job `prometheus`) every
    /// second, remote-writing everything to `remote_write` if given (with
    /// metadata every second); `receiver` turns on its own remote_write
    /// receiver, making it a store.
    pub fn start(
        targets: &[SocketAddr],
        remote_write: Option<RemoteWrite>,
        receiver: bool,
    ) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let addr = loopback(free_port());
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let mut yaml = [
            "global:",
            "  scrape_interval: 1s",
            "  evaluation_interval: 1s",
            "scrape_configs:",
            "  - job_name: prometheus",
            "    static_configs:",
        ]
        .join("\n");
        yaml += &format!("\n      - targets: ['{addr}']\n");
        if !targets.is_empty() {
            yaml += "  - job_name: node\n    static_configs:\n";
            yaml += &format!("      - targets: [{}]\n", targets.join(", "));
        }
        if let Some(rw) = remote_write {
            yaml += &format!("remote_write:\n  - url: '{}'\n", rw.url);
            yaml += &[
                "    remote_timeout: 5s",
                "    queue_config:",
                "      batch_send_deadline: 1s",
                "      min_backoff: 50ms",
                "      max_backoff: 1s",
                "    metadata_config:",
                "      send_interval: 1s",
                "",
            ]
            .join("\n");
            if let Some(token) = rw.bearer_token {
                yaml += &format!("    authorization:\n      credentials: '{token}'\n");
            }
        }
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, yaml).expect("write prometheus.yml");
        let mut p = Prometheus {
            child: None,
            addr,
            config,
            dir,
            receiver,
        };
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(binary("METRICSTREAM_PROMETHEUS", "prometheus"));
        cmd.arg(format!("--config.file={}", self.config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={}", self.addr))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.receiver {
            cmd.arg("--web.enable-remote-write-receiver");
        }
        let mut child = cmd.spawn().expect("start prometheus");
        wait_http("prometheus", self.addr, "/-/ready", &mut child);
        self.child = Some(child);
    }

    /// A number from Prometheus' own /metrics, summed over its label sets.
    pub fn own_metric(&self, name: &str) -> f64 {
        let text = request(self.addr, "GET", "/metrics", &[], b"").body;
        text.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Every raw sample Prometheus holds for `selector` in
    /// (`end_ms` - `window_ms`, `end_ms`], by series (labels sorted,
    /// `__name__` included): timestamp in ms → value as Prometheus prints it.
    pub fn raw_samples(&self, selector: &str, end_ms: i64, window_ms: i64) -> Samples {
        let query = format!("{selector}[{window_ms}ms]");
        let path = format!(
            "/api/v1/query?query={}&time={}.{:03}",
            encode(&query),
            end_ms / 1000,
            end_ms % 1000
        );
        let r = request(self.addr, "GET", &path, &[], b"");
        assert_eq!(r.status, 200, "query {query}: {r:?}");
        let j = r.json();
        let mut out = Samples::new();
        for series in j["data"]["result"].as_array().expect("a matrix") {
            let labels: BTreeMap<String, String> = series["metric"]
                .as_object()
                .expect("labels")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect();
            let points = out.entry(labels).or_default();
            for v in series["values"].as_array().expect("values") {
                let ts = (v[0].as_f64().expect("a time") * 1000.0).round() as i64;
                points.insert(ts, v[1].as_str().expect("a value").to_string());
            }
        }
        out
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Series (sorted labels, `__name__` included) → timestamp ms → value text.
pub type Samples = BTreeMap<BTreeMap<String, String>, BTreeMap<i64, String>>;

/// Percent-encodes a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The samples `consume` printed, in the same shape as [`Prometheus::raw_samples`]:
/// the value as Prometheus would print it (so NaN is "NaN"), and stale
/// markers left out (Prometheus' queries do not return them).
pub fn consumed_samples(lines: &[serde_json::Value]) -> Samples {
    let mut out = Samples::new();
    for l in lines {
        let value = match &l["value"] {
            serde_json::Value::String(s) if s == "StaleNaN" => continue,
            serde_json::Value::String(s) if s.starts_with("NaN") => "NaN".to_string(),
            serde_json::Value::String(s) => s.clone(),
            v => go_float(v.as_f64().expect("a number")),
        };
        let mut labels: BTreeMap<String, String> = l["tags"]
            .as_object()
            .map(|t| {
                t.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        labels.insert("__name__".into(), l["name"].as_str().expect("name").into());
        let ts = l["timestamp"].as_i64().expect("timestamp");
        out.entry(labels).or_default().insert(ts, value);
    }
    out
}

/// How Prometheus prints a float (Go's strconv.FormatFloat(v, 'f', -1, 64)
/// for ordinary magnitudes, exponent form for large and tiny ones): compared
/// as parsed f64s instead, see [`same_value`].
fn go_float(v: f64) -> String {
    format!("{v:?}")
}

/// Two value texts name the same f64 (bit-exact, NaN equal to NaN).
pub fn same_value(a: &str, b: &str) -> bool {
    let parse = |s: &str| match s {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        s => s.parse::<f64>().ok(),
    };
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

/// Every sample of `expected` is in `actual` with the same value: the
/// differences, at most `max` of them, described.
pub fn missing_from(expected: &Samples, actual: &Samples, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    for (labels, points) in expected {
        let theirs = actual.get(labels);
        for (ts, v) in points {
            let found = theirs.and_then(|p| p.get(ts));
            if !found.is_some_and(|f| same_value(f, v)) {
                out.push(format!("{labels:?} @{ts}: expected {v}, got {found:?}"));
                if out.len() >= max {
                    return out;
                }
            }
        }
    }
    out
}
