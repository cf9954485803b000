//! What to run: the plain settings `metricstream bench`'s flags map onto.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;

/// What the requests carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// The C++ load test's JSON batches to `POST /metrics`.
    #[default]
    Json,
    /// Prometheus remote_write 1.0 (snappy-compressed protobuf
    /// `WriteRequest`) to `POST /api/v1/write`.
    RemoteWrite,
    /// InfluxDB line protocol to `POST /write?db=` or `/api/v2/write?bucket=`.
    Influx,
    /// OTLP/HTTP metrics (protobuf `ExportMetricsServiceRequest`) to `POST /v1/metrics`.
    Otlp,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::RemoteWrite => "remote-write",
            Self::Influx => "influx",
            Self::Otlp => "otlp",
        }
    }
}

/// `https://`: the rustls client config and the name to verify, built by
/// the caller (`metricstream bench` builds them as the sinks do, from its
/// `--tls-*` flags), so this crate decides nothing about trust.
#[derive(Debug, Clone)]
pub struct Tls {
    pub config: Arc<rustls::ClientConfig>,
    /// SNI and the name the server's certificate must carry.
    pub server_name: rustls::pki_types::ServerName<'static>,
}

/// The same config object (a rustls config has no equality of its own).
impl PartialEq for Tls {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.config, &other.config) && self.server_name == other.server_name
    }
}

/// One load run. [`Default`] holds the same defaults as the command's flags.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchConfig {
    /// Endpoint to POST to: `http://`, or `https://` with `tls`.
    pub url: String,
    /// TLS for an `https://` url (required for one, refused for `http://`).
    pub tls: Option<Tls>,
    /// Concurrent clients; each is one task with its own connection(s).
    pub clients: u32,
    /// Requests per client; ignored when `duration` is set.
    pub requests: u64,
    /// Run for this long instead of a fixed request count.
    pub duration: Option<Duration>,
    /// Open loop at this many requests/s in total; `None` is closed loop.
    pub rate: Option<f64>,
    /// Request body format.
    pub format: Format,
    /// Metrics per request body (JSON).
    pub metrics_per_request: u32,
    /// Samples per request body (remote_write).
    pub samples_per_request: u32,
    /// Series per request body at most (remote_write).
    pub series_per_request: u32,
    /// remote_write: every request's series are new ones (a `churn` label
    /// counts the requests), as an agent with short-lived series sends.
    pub series_churn: bool,
    /// Fields per line (line protocol), 1 to 3.
    pub fields_per_line: u32,
    /// Reuse one connection per client; else a fresh one per request (a
    /// TLS handshake each, with https).
    pub keep_alive: bool,
    /// Closed loop: pause between one client's requests (unused with `rate`).
    pub interval: Duration,
    /// Gzip the bodies and send `Content-Encoding: gzip`.
    pub gzip: bool,
    /// `Authorization: Bearer KEY` for all; `None` sends `load_client_<i>`.
    pub api_key: Option<String>,
    /// Per-request timeout, connecting included.
    pub timeout: Duration,
    /// Also write the report as JSON here.
    pub json: Option<PathBuf>,
    /// No progress line, no table.
    pub quiet: bool,
}

impl Default for BenchConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8080/metrics".to_string(),
            tls: None,
            clients: 20,
            requests: 50,
            duration: None,
            rate: None,
            format: Format::Json,
            metrics_per_request: 3,
            samples_per_request: 2000,
            series_per_request: crate::remote_write::MAX_SERIES as u32,
            series_churn: false,
            fields_per_line: 3,
            keep_alive: false,
            interval: Duration::ZERO,
            gzip: false,
            api_key: None,
            timeout: Duration::from_secs(5),
            json: None,
            quiet: false,
        }
    }
}

impl BenchConfig {
    /// The command line already rejects these; a caller building the
    /// struct by hand gets the same refusal instead of a run that divides
    /// by zero or never starts.
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        if self.clients == 0
            || self.requests == 0
            || self.metrics_per_request == 0
            || self.samples_per_request == 0
            || self.series_per_request == 0
            || !(1..=3).contains(&self.fields_per_line)
        {
            bail!("clients, requests, metrics and samples per request must be at least 1");
        }
        if self.format == Format::RemoteWrite && self.gzip {
            bail!("remote_write bodies are snappy-compressed; gzip does not apply");
        }
        if self.timeout.is_zero() || self.duration.is_some_and(|d| d.is_zero()) {
            bail!("timeout and duration must be above zero");
        }
        if let Some(rate) = self.rate {
            if !(rate.is_finite() && rate > 0.0) {
                bail!("rate {rate}: must be a positive number of requests/s");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_runnable() {
        assert!(BenchConfig::default().check().is_ok());
    }

    #[test]
    fn rejects_what_cannot_run() {
        let base = BenchConfig::default();
        for bad in [
            BenchConfig {
                clients: 0,
                ..base.clone()
            },
            BenchConfig {
                requests: 0,
                ..base.clone()
            },
            BenchConfig {
                metrics_per_request: 0,
                ..base.clone()
            },
            BenchConfig {
                samples_per_request: 0,
                ..base.clone()
            },
            BenchConfig {
                series_per_request: 0,
                ..base.clone()
            },
            BenchConfig {
                fields_per_line: 4,
                ..base.clone()
            },
            BenchConfig {
                format: Format::RemoteWrite,
                gzip: true,
                ..base.clone()
            },
            BenchConfig {
                timeout: Duration::ZERO,
                ..base.clone()
            },
            BenchConfig {
                duration: Some(Duration::ZERO),
                ..base.clone()
            },
            BenchConfig {
                rate: Some(0.0),
                ..base.clone()
            },
            BenchConfig {
                rate: Some(f64::NAN),
                ..base.clone()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?} accepted");
        }
    }
}
