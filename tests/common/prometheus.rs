//! Real Prometheus 2.42 and node exporter processes for the remote_write
//! tests (Debian packages `prometheus`, `prometheus-node-exporter`,
//! installed by scripts/deps.sh), on free loopback ports with temp dirs, and
//! readers of what Prometheus holds (its HTTP API, its own /metrics), and a
//! sample-by-sample comparison of two stores.
//!
//! Values stay the strings Prometheus' JSON prints ("NaN", "+Inf", "1.5"):
//! two Prometheus instances print the same float the same way, so comparing
//! the strings is exact.
//!
//! 2.42 speaks remote_write 1.0 only: its config refuses `protobuf_message`,
//! so there is no 2.0 switch here.
//!
//! Native histograms and exemplars (`--enable-feature=native-histograms,
//! exemplar-storage`, [`PrometheusConfig::features`]; `send_native_histograms`
//! and `send_exemplars`, [`RemoteWriteConfig`]) are read back as Prometheus'
//! JSON prints them: a histogram point is its `{count, sum, buckets}` object,
//! an exemplar its `{labels, value}` at its timestamp, both kept as compact
//! JSON text so the same [`Samples`] comparison applies to them. 2.42's
//! range selector mixes up points across series when integer and float
//! histograms are in one result (integer histograms come back as copies of
//! a float histogram's last point), so histograms are read one series per
//! query ([`assert_same_histograms`]).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::broker::free_port;
use super::certs::Pair;
use super::{parse_response, request, wait_for, Response};
use rustls::pki_types::ServerName;

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

fn wait_http(what: &str, addr: SocketAddr, path: &str, child: &mut Child, log: &Log) {
    wait_for(what, Duration::from_secs(60), || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited at start: {status}; its log:\n{}",
                log.lock().unwrap()
            );
        }
        request(addr, "GET", path, &[], b"").status == 200
    });
}

type Log = Arc<Mutex<String>>;

/// Keeps what the child writes to stderr, for the panic messages: a
/// Prometheus that refuses its config only says why there.
fn collect_stderr(child: &mut Child, log: &Log) {
    let stderr = child.stderr.take().expect("piped stderr");
    let log = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut l = log.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
}

/// Milliseconds since the Unix epoch, the unit of Prometheus' timestamps.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn yaml_duration(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// SIGTERM, then SIGKILL if it has not exited within `grace`.
fn stop(child: &mut Child, grace: Duration) {
    super::sigterm(child);
    let start = Instant::now();
    while start.elapsed() < grace {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

pub struct NodeExporter {
    child: Child,
    pub addr: SocketAddr,
    pub log: Log,
}

impl NodeExporter {
    /// Debian's default collectors, less systemd: without a systemd bus (a
    /// container) it fails and logs an error at every scrape. The others
    /// that find nothing here (no NFS, no hwmon, ...) stay quiet.
    pub fn start() -> NodeExporter {
        let addr = loopback(free_port());
        let mut child = Command::new(binary(
            "METRICSTREAM_NODE_EXPORTER",
            "prometheus-node-exporter",
        ))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--no-collector.systemd")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the node exporter");
        let log = Log::default();
        collect_stderr(&mut child, &log);
        wait_http("node exporter", addr, "/metrics", &mut child, &log);
        NodeExporter { child, addr, log }
    }
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where Prometheus remote-writes to (the short form; see
/// [`RemoteWriteConfig`] for the knobs).
pub struct RemoteWrite {
    pub url: String,
    pub bearer_token: Option<String>,
}

/// One `remote_write` entry. The defaults make Prometheus send fast and
/// retry fast, so a test waits seconds, not minutes.
#[derive(Clone, Debug)]
pub struct RemoteWriteConfig {
    pub url: String,
    pub bearer_token: Option<String>,
    /// Metadata (type, help, unit) requests every `metadata_interval`.
    pub send_metadata: bool,
    pub metadata_interval: Duration,
    /// A partial batch goes out after this long.
    pub batch_send_deadline: Duration,
    pub remote_timeout: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Native histogram samples too (2.42 needs the `native-histograms`
    /// feature to have any).
    pub send_native_histograms: bool,
    /// Exemplars too (2.42 needs the `exemplar-storage` feature to keep any).
    pub send_exemplars: bool,
    /// `tls_config`: the CA file the receiver's certificate is checked
    /// against, and a client certificate and key to present (mutual TLS).
    pub tls_ca_file: Option<PathBuf>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
}

impl RemoteWriteConfig {
    pub fn new(url: impl Into<String>) -> RemoteWriteConfig {
        RemoteWriteConfig {
            url: url.into(),
            bearer_token: None,
            send_metadata: true,
            metadata_interval: Duration::from_secs(1),
            batch_send_deadline: Duration::from_secs(1),
            remote_timeout: Duration::from_secs(5),
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            send_native_histograms: false,
            send_exemplars: false,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }

    fn yaml(&self) -> String {
        let mut y = format!("  - url: '{}'\n", self.url);
        y += &format!(
            "    remote_timeout: {}\n",
            yaml_duration(self.remote_timeout)
        );
        y += &format!(
            "    send_native_histograms: {}\n    send_exemplars: {}\n",
            self.send_native_histograms, self.send_exemplars
        );
        y += "    queue_config:\n";
        y += &format!(
            "      batch_send_deadline: {}\n      min_backoff: {}\n      max_backoff: {}\n",
            yaml_duration(self.batch_send_deadline),
            yaml_duration(self.min_backoff),
            yaml_duration(self.max_backoff)
        );
        y += &format!(
            "    metadata_config:\n      send: {}\n      send_interval: {}\n",
            self.send_metadata,
            yaml_duration(self.metadata_interval)
        );
        if let Some(token) = &self.bearer_token {
            y += &format!("    authorization:\n      credentials: '{token}'\n");
        }
        let tls = [
            ("ca_file", &self.tls_ca_file),
            ("cert_file", &self.tls_cert_file),
            ("key_file", &self.tls_key_file),
        ];
        if tls.iter().any(|(_, f)| f.is_some()) {
            y += "    tls_config:\n";
            for (key, file) in tls {
                if let Some(file) = file {
                    y += &format!("      {key}: '{}'\n", file.display());
                }
            }
        }
        y
    }
}

impl From<RemoteWrite> for RemoteWriteConfig {
    fn from(rw: RemoteWrite) -> RemoteWriteConfig {
        RemoteWriteConfig {
            bearer_token: rw.bearer_token,
            ..RemoteWriteConfig::new(rw.url)
        }
    }
}

/// What a [`Prometheus`] does: scrape `scrape` (job `scrape_job`, `node`
/// by default) and, with `scrape_self`, itself (job `prometheus`) every
/// `interval`; remote-write all of it if `remote_write` is set; accept
/// remote_write itself (`--web.enable-remote-write-receiver`) with
/// `receiver`, making it a store; turn on `features`
/// (`--enable-feature=...`, e.g. `native-histograms`, `exemplar-storage`).
///
/// With `web_tls` its web listener (API, remote_write receiver, /metrics)
/// speaks only TLS (`--web.config.file`), and the readers here go over https.
#[derive(Clone, Debug)]
pub struct PrometheusConfig {
    pub scrape: Vec<SocketAddr>,
    pub scrape_job: String,
    pub scrape_self: bool,
    pub interval: Duration,
    pub remote_write: Option<RemoteWriteConfig>,
    pub receiver: bool,
    pub features: Vec<String>,
    pub web_tls: Option<WebTls>,
}

/// `tls_server_config` of Prometheus' web config file, and what the
/// harness's own requests need to get through it.
#[derive(Clone, Debug)]
pub struct WebTls {
    /// `cert_file`, `key_file`.
    pub server: Pair,
    /// The CA that signed `server`: the harness trusts it.
    pub ca: PathBuf,
    /// `client_auth_type: RequireAndVerifyClientCert` with this
    /// `client_ca_file`; the harness then presents `harness_client`.
    pub client_ca: Option<PathBuf>,
    pub harness_client: Option<Pair>,
    /// The name the harness verifies `server` by (default: 127.0.0.1, an
    /// IP SAN).
    pub harness_server_name: Option<String>,
}

impl WebTls {
    fn yaml(&self) -> String {
        let mut y = format!(
            "tls_server_config:\n  cert_file: '{}'\n  key_file: '{}'\n",
            self.server.cert.display(),
            self.server.key.display()
        );
        if let Some(ca) = &self.client_ca {
            y += &format!(
                "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: '{}'\n",
                ca.display()
            );
        }
        y
    }

    /// The harness's client config: trusts `ca`, presents `harness_client`.
    fn client_config(&self) -> (Arc<rustls::ClientConfig>, ServerName<'static>) {
        let o = metricstream::tls::client::TlsClientOptions {
            ca: Some(self.ca.clone()),
            cert: self.harness_client.as_ref().map(|p| p.cert.clone()),
            key: self.harness_client.as_ref().map(|p| p.key.clone()),
            ..Default::default()
        };
        let name = self.harness_server_name.as_deref().unwrap_or("127.0.0.1");
        (
            o.client_config().expect("the harness's TLS client config"),
            metricstream::tls::client::server_name(name).expect("a server name"),
        )
    }
}

/// The harness's TLS client for a web listener: its config, the name it verifies.
type HarnessTls = (Arc<rustls::ClientConfig>, ServerName<'static>);

/// One HTTP/1.1 GET over TLS on a fresh connection; status 0 on a
/// transport error, as [`request`].
fn https_get(addr: SocketAddr, (config, name): &HarnessTls, path: &str) -> Response {
    use std::io::{Read, Write};
    let attempt = || -> std::io::Result<Response> {
        let conn = rustls::ClientConnection::new(Arc::clone(config), name.clone())
            .map_err(std::io::Error::other)?;
        let tcp = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        tls.write_all(head.as_bytes())?;
        let mut raw = Vec::new();
        match tls.read_to_end(&mut raw) {
            Ok(_) => {}
            // A close without close_notify after a whole answer.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
            Err(e) => return Err(e),
        }
        parse_response(&raw)
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad response"))
    };
    attempt().unwrap_or(Response {
        status: 0,
        headers: vec![],
        body: String::new(),
    })
}

impl Default for PrometheusConfig {
    fn default() -> PrometheusConfig {
        PrometheusConfig {
            scrape: Vec::new(),
            scrape_job: "node".into(),
            scrape_self: false,
            interval: Duration::from_secs(1),
            remote_write: None,
            receiver: false,
            features: Vec::new(),
            web_tls: None,
        }
    }
}

impl PrometheusConfig {
    fn yaml(&self, own: SocketAddr) -> String {
        let interval = yaml_duration(self.interval);
        let mut y =
            format!("global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\n");
        let mut jobs = Vec::new();
        if self.scrape_self {
            jobs.push(("prometheus", vec![own]));
        }
        if !self.scrape.is_empty() {
            jobs.push((self.scrape_job.as_str(), self.scrape.clone()));
        }
        if !jobs.is_empty() {
            y += "scrape_configs:\n";
        }
        for (job, targets) in jobs {
            let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
            y += &format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            );
        }
        if let Some(rw) = &self.remote_write {
            y += "remote_write:\n";
            y += &rw.yaml();
        }
        y
    }
}

pub struct Prometheus {
    child: Option<Child>,
    pub addr: SocketAddr,
    config: PathBuf,
    dir: tempfile::TempDir,
    receiver: bool,
    features: Vec<String>,
    /// `--web.config.file` when the web listener speaks TLS, and the
    /// harness's client config for it.
    web: Option<(PathBuf, HarnessTls)>,
    pub log: Log,
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
        Prometheus::launch(PrometheusConfig {
            scrape: targets.to_vec(),
            scrape_self: true,
            remote_write: remote_write.map(RemoteWriteConfig::from),
            receiver,
            ..PrometheusConfig::default()
        })
    }

    /// Starts Prometheus as `config` says, on a free loopback port with a
    /// fresh TSDB, and waits until `/-/ready` answers.
    pub fn launch(config: PrometheusConfig) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let addr = loopback(free_port());
        let path = dir.path().join("prometheus.yml");
        std::fs::write(&path, config.yaml(addr)).expect("write prometheus.yml");
        let web = config.web_tls.as_ref().map(|t| {
            let web = dir.path().join("web.yml");
            std::fs::write(&web, t.yaml()).expect("write web.yml");
            (web, t.client_config())
        });
        let mut p = Prometheus {
            child: None,
            addr,
            config: path,
            dir,
            receiver: config.receiver,
            features: config.features,
            web,
            log: Log::default(),
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
            .stderr(Stdio::piped());
        if self.receiver {
            cmd.arg("--web.enable-remote-write-receiver");
        }
        if !self.features.is_empty() {
            cmd.arg(format!("--enable-feature={}", self.features.join(",")));
        }
        if let Some((web, _)) = &self.web {
            cmd.arg(format!("--web.config.file={}", web.display()));
        }
        let mut child = cmd.spawn().expect("start prometheus");
        collect_stderr(&mut child, &self.log);
        wait_for("prometheus", Duration::from_secs(60), || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "prometheus exited at start: {status}; its log:\n{}",
                    self.log.lock().unwrap()
                );
            }
            self.get("/-/ready").status == 200
        });
        self.child = Some(child);
    }

    /// `http` or `https`, as its web listener speaks.
    pub fn scheme(&self) -> &'static str {
        if self.web.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// `GET path` on its web listener, over TLS if it speaks TLS.
    fn get(&self, path: &str) -> Response {
        match &self.web {
            Some((_, tls)) => https_get(self.addr, tls, path),
            None => request(self.addr, "GET", path, &[], b""),
        }
    }

    /// SIGTERM (Prometheus flushes its head and remote_write queue), SIGKILL
    /// after 10 s. The TSDB and the port stay, for [`restart`](Self::restart).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop(&mut c, Duration::from_secs(10));
        }
    }

    /// SIGKILL: no flush, the WAL is replayed on restart.
    pub fn sigkill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again (after [`kill`](Self::kill) or [`sigkill`](Self::sigkill))
    /// on the same address, config and TSDB.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Loads `config` into the running Prometheus (a new config file and
    /// SIGHUP, as an operator reloads it) and waits until it says the
    /// reload succeeded. Only the file changes: `receiver` and `features`
    /// are command-line flags, so they must stay as they were. A scrape job
    /// left out stops being scraped (its series get staleness markers).
    pub fn reconfigure(&mut self, config: PrometheusConfig) {
        assert_eq!(
            (config.receiver, &config.features),
            (self.receiver, &self.features),
            "receiver and features are flags: restart instead"
        );
        let before = self.own_metric("prometheus_config_last_reload_success_timestamp_seconds");
        std::fs::write(&self.config, config.yaml(self.addr)).expect("write prometheus.yml");
        let child = self.child.as_ref().expect("a running Prometheus");
        let pid = rustix::process::Pid::from_child(child);
        rustix::process::kill_process(pid, rustix::process::Signal::HUP).expect("SIGHUP");
        wait_for("Prometheus to reload", Duration::from_secs(30), || {
            self.own_metric("prometheus_config_last_reload_successful") == 1.0
                && self.own_metric("prometheus_config_last_reload_success_timestamp_seconds")
                    > before
        });
    }

    /// Waits until its remote_write queue has sent everything it took in
    /// (samples, native histograms and exemplars: nothing pending, as many
    /// sent as came in), two readings a second apart agreeing; panics with
    /// the counters after `within`. Call it once nothing new comes in (no
    /// scraping), or it only says the queue caught up for a moment.
    pub fn wait_remote_write_drained(&self, within: Duration) {
        let read = || -> Vec<(String, f64)> {
            let mut out = Vec::new();
            for kind in ["samples", "histograms", "exemplars"] {
                for what in [
                    "pending",
                    "in_total",
                    "total",
                    "failed_total",
                    "dropped_total",
                ] {
                    let name = format!("prometheus_remote_storage_{kind}_{what}");
                    let v = self.own_metric(&name);
                    out.push((name, v));
                }
            }
            out
        };
        let drained = |c: &[(String, f64)]| {
            c.chunks(5)
                .all(|k| k[0].1 == 0.0 && k[2].1 + k[3].1 + k[4].1 >= k[1].1)
        };
        let start = Instant::now();
        let mut last = read();
        loop {
            std::thread::sleep(Duration::from_secs(1));
            let now = read();
            if drained(&now) && now == last {
                return;
            }
            assert!(
                start.elapsed() < within,
                "Prometheus {} did not drain its remote_write queue within {within:?}: {now:?}",
                self.addr
            );
            last = now;
        }
    }

    /// What Prometheus wrote to stderr so far.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// `GET path` on its HTTP API, the JSON `data` of a 200 with status
    /// "success", else a panic saying what came back.
    pub fn api(&self, path: &str) -> serde_json::Value {
        let r = self.get(path);
        assert_eq!(
            r.status, 200,
            "GET {path} on Prometheus {}: {r:?}",
            self.addr
        );
        let mut j = r.json();
        assert_eq!(j["status"], "success", "GET {path}: {j}");
        j["data"].take()
    }

    /// Every metric name it holds.
    pub fn series_names(&self) -> Vec<String> {
        self.api("/api/v1/label/__name__/values")
            .as_array()
            .expect("a list of names")
            .iter()
            .map(|n| n.as_str().expect("a name").to_string())
            .collect()
    }

    /// The label sets of the series matching `selector` (all time it holds).
    pub fn series(&self, selector: &str) -> Vec<BTreeMap<String, String>> {
        let path = format!("/api/v1/series?match%5B%5D={}", encode(selector));
        self.api(&path)
            .as_array()
            .expect("a list of series")
            .iter()
            .map(labels_of)
            .collect()
    }

    /// Waits (up to a minute; a busy machine only makes it longer) until
    /// this Prometheus says it has remote-written every sample up to
    /// `window_end_ms`, so a comparison up to then is complete.
    pub fn wait_sent_past(&self, window_end_ms: i64) {
        wait_for(
            "Prometheus to remote-write past the window",
            Duration::from_secs(60),
            || {
                let sent_s = self
                    .own_metric("prometheus_remote_storage_queue_highest_sent_timestamp_seconds");
                sent_s * 1000.0 >= window_end_ms as f64
            },
        );
    }

    /// A number from Prometheus' own /metrics, summed over its label sets.
    pub fn own_metric(&self, name: &str) -> f64 {
        let text = self.get("/metrics").body;
        text.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Every raw float sample Prometheus holds for `selector` in
    /// (`end_ms` - `window_ms`, `end_ms`], by series (labels sorted,
    /// `__name__` included): timestamp in ms → value as Prometheus prints it.
    /// Native histogram points are left out (see [`raw_histograms`](Self::raw_histograms)).
    pub fn raw_samples(&self, selector: &str, end_ms: i64, window_ms: i64) -> Samples {
        self.raw(selector, end_ms, window_ms, "values")
    }

    /// Every raw native histogram point Prometheus holds for `selector`, as
    /// [`raw_samples`](Self::raw_samples) reads floats: timestamp in ms → the
    /// `{count, sum, buckets}` object as compact JSON text. One series per
    /// `selector`: 2.42 mixes up points of several (see the module doc).
    pub fn raw_histograms(&self, selector: &str, end_ms: i64, window_ms: i64) -> Samples {
        self.raw(selector, end_ms, window_ms, "histograms")
    }

    /// A range selector's matrix, the points under `field` ("values" or
    /// "histograms"); a series without any there is left out.
    fn raw(&self, selector: &str, end_ms: i64, window_ms: i64, field: &str) -> Samples {
        let query = format!("{selector}[{window_ms}ms]");
        let path = format!(
            "/api/v1/query?query={}&time={}",
            encode(&query),
            api_time(end_ms)
        );
        let data = self.api(&path);
        let mut out = Samples::new();
        for series in data["result"].as_array().expect("a matrix") {
            let Some(values) = series.get(field) else {
                continue;
            };
            let points = out.entry(labels_of(&series["metric"])).or_default();
            for v in values.as_array().expect("points") {
                points.insert(time_ms(&v[0]), point_text(&v[1]));
            }
        }
        out
    }

    /// `expr` evaluated from `start_ms` to `end_ms` every `step_ms`
    /// (`/api/v1/query_range`), by series: timestamp in ms → value text.
    pub fn range_query(&self, expr: &str, start_ms: i64, end_ms: i64, step_ms: i64) -> Samples {
        let path = format!(
            "/api/v1/query_range?query={}&start={}&end={}&step={}",
            encode(expr),
            api_time(start_ms),
            api_time(end_ms),
            api_time(step_ms)
        );
        let data = self.api(&path);
        let mut out = Samples::new();
        for series in data["result"].as_array().expect("a matrix") {
            let points = out.entry(labels_of(&series["metric"])).or_default();
            for v in series["values"].as_array().expect("values") {
                points.insert(time_ms(&v[0]), point_text(&v[1]));
            }
        }
        out
    }

    /// The exemplars it holds for `selector` from `start_ms` to `end_ms`
    /// (`/api/v1/query_exemplars`), by series: the exemplar's timestamp in
    /// ms → `{labels, value}` as compact JSON text. Prometheus keeps at most
    /// one exemplar per series and timestamp (it refuses one not newer than
    /// the series' last), so the timestamp is a key.
    pub fn exemplars(&self, selector: &str, start_ms: i64, end_ms: i64) -> Samples {
        let path = format!(
            "/api/v1/query_exemplars?query={}&start={}&end={}",
            encode(selector),
            api_time(start_ms),
            api_time(end_ms)
        );
        let data = self.api(&path);
        let mut out = Samples::new();
        for series in data.as_array().expect("a list of series") {
            let points = out.entry(labels_of(&series["seriesLabels"])).or_default();
            for e in series["exemplars"].as_array().expect("exemplars") {
                let text = serde_json::json!({"labels": e["labels"], "value": e["value"]});
                points.insert(time_ms(&e["timestamp"]), text.to_string());
            }
        }
        out
    }
}

/// A time for the HTTP API: seconds with milliseconds.
fn api_time(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// A time the API printed (seconds, a float) in milliseconds.
fn time_ms(t: &serde_json::Value) -> i64 {
    (t.as_f64().expect("a time") * 1000.0).round() as i64
}

/// A point's value as text: a float as Prometheus prints it, a histogram as
/// compact JSON (two Prometheus print its fields alike, so equal text is an
/// equal object).
fn point_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A selector matching exactly the series with `labels` (`__name__`
/// included), for the queries that must name one series.
pub fn series_selector(labels: &BTreeMap<String, String>) -> String {
    let matchers: Vec<String> = labels
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{k}=\"{v}\"")
        })
        .collect();
    format!("{{{}}}", matchers.join(","))
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop(&mut c, Duration::from_secs(5));
        }
    }
}

fn labels_of(metric: &serde_json::Value) -> BTreeMap<String, String> {
    metric
        .as_object()
        .expect("labels")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
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
/// The store holds exactly `expected` for `selector` (the last 3 hours up
/// to a minute from now): nothing missing, nothing else; `log` (the
/// consumer's) is shown when it does not. Returns how many samples.
pub fn assert_holds_exactly(
    p: &Prometheus,
    selector: &str,
    expected: &Samples,
    log: &str,
) -> usize {
    let total: usize = expected.values().map(|s| s.len()).sum();
    assert!(total > 0, "nothing expected: the test proves nothing");
    let got = p.raw_samples(selector, now_ms() + 60_000, 3 * 3600 * 1000);
    let missing = missing_from(expected, &got, 20);
    assert!(
        missing.is_empty(),
        "{} of {total} samples not in the store as queued; the first:\n{}\nconsume log:\n{log}",
        missing.len(),
        missing.join("\n")
    );
    let extra = missing_from(&got, expected, 20);
    assert!(
        extra.is_empty(),
        "the store has samples never queued:\n{}",
        extra.join("\n")
    );
    total
}

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

/// A stretch of time both stores are read over: the range selector
/// `[len_ms]` evaluated at `end_ms` (2.42 includes both ends). Samples within
/// `edge_ms` of either end may differ between the two stores; everything
/// inside must be identical.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub end_ms: i64,
    pub len_ms: i64,
    pub edge_ms: i64,
}

impl Window {
    /// From `start_ms` to `end_ms`, edges included in the comparison.
    pub fn between(start_ms: i64, end_ms: i64) -> Window {
        assert!(end_ms > start_ms, "an empty window");
        Window {
            end_ms,
            len_ms: end_ms - start_ms,
            edge_ms: 0,
        }
    }

    fn inside(&self, ts: i64) -> bool {
        ts >= self.end_ms - self.len_ms + self.edge_ms && ts <= self.end_ms - self.edge_ms
    }
}

/// The samples of `a` and `b` that are not the same, in the window's inside:
/// a sample only one side has, or the same timestamp with another value
/// text. At most `max` described, then a count of the rest.
pub fn diff_samples(a: &Samples, b: &Samples, window: &Window, max: usize) -> Vec<String> {
    let empty = BTreeMap::new();
    let mut out = Vec::new();
    let mut more = 0usize;
    let labels: std::collections::BTreeSet<_> = a.keys().chain(b.keys()).collect();
    for l in labels {
        let pa = a.get(l).unwrap_or(&empty);
        let pb = b.get(l).unwrap_or(&empty);
        let times: std::collections::BTreeSet<i64> = pa.keys().chain(pb.keys()).copied().collect();
        for ts in times.into_iter().filter(|t| window.inside(*t)) {
            let (va, vb) = (pa.get(&ts), pb.get(&ts));
            if va == vb {
                continue;
            }
            if out.len() < max {
                out.push(format!(
                    "{} @{ts}: A {}, B {}",
                    series_text(l),
                    va.map_or("has none", String::as_str),
                    vb.map_or("has none", String::as_str)
                ));
            } else {
                more += 1;
            }
        }
    }
    if more > 0 {
        out.push(format!("... and {more} more"));
    }
    out
}

fn series_text(labels: &BTreeMap<String, String>) -> String {
    let name = labels.get("__name__").map_or("", String::as_str);
    let rest: Vec<String> = labels
        .iter()
        .filter(|(k, _)| *k != "__name__")
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    format!("{name}{{{}}}", rest.join(","))
}

/// `a` and `b` hold the same raw samples for `selector` in `window` (read
/// with [`Prometheus::raw_samples`] at the same instant, so both are cut at
/// the same timestamps). `b` is fed asynchronously (remote_write queues,
/// retries), so the comparison is retried until it holds or `within` has
/// passed; then it panics with the differences. `a` must have something
/// there, or the comparison would prove nothing. Returns (series, samples)
/// compared.
pub fn assert_same_samples(
    a: &Prometheus,
    b: &Prometheus,
    selector: &str,
    window: Window,
    within: Duration,
) -> (usize, usize) {
    let same = assert_same(selector, window, within, a, b, &|p: &Prometheus| {
        p.raw_samples(selector, window.end_ms, window.len_ms)
    });
    (same.len(), count_inside(&same, &window))
}

/// [`assert_same_samples`] for native histograms: every histogram point of
/// every series matching `selector` (in either store) is the same
/// `{count, sum, buckets}` object in `a` and `b`, read one series per
/// query. Returns, per series `a` has histograms for, their number in the
/// window, so a caller can say how many is enough.
pub fn assert_same_histograms(
    a: &Prometheus,
    b: &Prometheus,
    selector: &str,
    window: Window,
    within: Duration,
) -> BTreeMap<BTreeMap<String, String>, usize> {
    let names: std::collections::BTreeSet<_> = a
        .series(selector)
        .into_iter()
        .chain(b.series(selector))
        .collect();
    let read = |p: &Prometheus| {
        let mut out = Samples::new();
        for labels in &names {
            let one = p.raw_histograms(&series_selector(labels), window.end_ms, window.len_ms);
            out.extend(one);
        }
        out
    };
    assert_same(selector, window, within, a, b, &read)
        .into_iter()
        .map(|(l, p)| {
            let n = p.keys().filter(|t| window.inside(**t)).count();
            (l, n)
        })
        .collect()
}

/// [`assert_same_samples`] for exemplars: the same exemplars (labels,
/// value, timestamp) for every series matching `selector`, timestamps in
/// `window`. Returns (series, exemplars) compared.
pub fn assert_same_exemplars(
    a: &Prometheus,
    b: &Prometheus,
    selector: &str,
    window: Window,
    within: Duration,
) -> (usize, usize) {
    let start = window.end_ms - window.len_ms;
    let same = assert_same(selector, window, within, a, b, &|p: &Prometheus| {
        p.exemplars(selector, start, window.end_ms)
    });
    (same.len(), count_inside(&same, &window))
}

fn count_inside(samples: &Samples, window: &Window) -> usize {
    samples
        .values()
        .map(|p| p.keys().filter(|t| window.inside(**t)).count())
        .sum()
}

/// Reads both stores with `read` until they agree in `window` or `within`
/// has passed (then panics with the differences); `a` must have something
/// in the window. Returns what `a` held when they agreed.
fn assert_same(
    what: &str,
    window: Window,
    within: Duration,
    a: &Prometheus,
    b: &Prometheus,
    read: &dyn Fn(&Prometheus) -> Samples,
) -> Samples {
    let start = Instant::now();
    loop {
        let sa = read(a);
        let count = count_inside(&sa, &window);
        assert!(count > 0, "A has nothing for {what} in {window:?}");
        let sb = read(b);
        let diff = diff_samples(&sa, &sb, &window, 30);
        if diff.is_empty() {
            return sa;
        }
        if start.elapsed() > within {
            panic!(
                "{what} in {window:?}: A ({}) has {} series, {count} points inside the \
                 window; B ({}) has {} series; after {within:?} they still differ:\n{}",
                a.addr,
                sa.len(),
                b.addr,
                sb.len(),
                diff.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
