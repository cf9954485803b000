//! Command-line flags of `metricstream bench`; the load generator itself
//! (the `loadgen` crate) only sees the [`loadgen::BenchConfig`] they make.

use std::path::PathBuf;
use std::time::Duration;

use super::positive_duration;
use super::tls_client::TlsClientArgs;

/// Load generator for the ingest endpoint: POSTs realistic metric batches and
/// reports throughput, latency percentiles and failures by kind.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Endpoint to POST to: http://, or https:// (see the --tls-* flags;
    /// with --new-connection every request pays a TLS handshake).
    #[arg(
        long,
        env = "METRICSTREAM_BENCH_URL",
        default_value = "http://127.0.0.1:8080/metrics"
    )]
    pub url: String,

    #[command(flatten)]
    pub tls: TlsClientArgs,

    /// Concurrent clients; each is one task with its own connection(s).
    #[arg(
        long,
        env = "METRICSTREAM_BENCH_CLIENTS",
        default_value_t = 20,
        value_parser = clap::value_parser!(u32).range(1..=100_000)
    )]
    pub clients: u32,

    /// Requests per client. Ignored when --duration is given.
    #[arg(
        long,
        env = "METRICSTREAM_BENCH_REQUESTS",
        default_value_t = 50,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub requests: u64,

    /// Run for this long instead of a fixed request count (e.g. 500ms, 30s, 2m, 1h).
    #[arg(long, env = "METRICSTREAM_BENCH_DURATION", value_parser = positive_duration)]
    pub duration: Option<Duration>,

    /// Open loop: total requests/s across all clients on a fixed arrival
    /// schedule; latency is measured from the scheduled send time, so a
    /// slow server cannot hide behind a slowed-down generator. Unset = closed loop.
    #[arg(long, env = "METRICSTREAM_BENCH_RATE", value_parser = parse_rate, conflicts_with = "interval_ms")]
    pub rate: Option<f64>,

    /// Request body format: `json` (the C++ load test's batches, for
    /// `/metrics`), `remote-write` (Prometheus remote_write 1.0: snappy
    /// protobuf, for `--url http://HOST:PORT/api/v1/write`; each client
    /// writes its own series with fresh, increasing timestamps; any 2xx is
    /// a success) or `influx` (line protocol, for `--url
    /// http://HOST:PORT/write?db=NAME` or `/api/v2/write?bucket=NAME`: Telegraf
    /// `cpu`-like lines of three fields, fresh ns timestamps; any 2xx is a
    /// success) or `otlp` (OTLP/HTTP protobuf, for `--url
    /// http://HOST:PORT/v1/metrics`: one SDK-like export of number points,
    /// fresh ns times; any 2xx is a success).
    #[arg(
        long,
        env = "METRICSTREAM_BENCH_FORMAT",
        value_enum,
        default_value_t = BenchFormat::Json
    )]
    pub format: BenchFormat,

    /// Metrics per request body (json); kinds cycle through cpu_usage, memory_usage, requests_total.
    #[arg(
        long,
        env = "METRICSTREAM_BENCH_METRICS_PER_REQUEST",
        default_value_t = 3,
        value_parser = clap::value_parser!(u32).range(1..=100_000)
    )]
    pub metrics_per_request: u32,

    /// Samples per request body (remote-write: spread over up to 400
    /// series, e.g. 2000 = 400 series × 5 samples, Prometheus' default
    /// max_samples_per_send; influx: fields, three per line; otlp: data
    /// points, ten per metric).
    #[arg(
        long,
        env = "METRICSTREAM_BENCH_SAMPLES_PER_REQUEST",
        default_value_t = 2000,
        value_parser = clap::value_parser!(u32).range(1..=100_000)
    )]
    pub samples_per_request: u32,

    /// remote-write: series per request body at most (the samples spread
    /// over them; fewer series, more samples each).
    #[arg(
        long,
        env = "METRICSTREAM_BENCH_SERIES_PER_REQUEST",
        default_value_t = loadgen::remote_write::MAX_SERIES as u32,
        value_parser = clap::value_parser!(u32).range(1..=100_000)
    )]
    pub series_per_request: u32,

    /// remote-write: every request's series are new ones (a `churn` label
    /// numbers the requests), as an agent with short-lived series sends
    /// (with `--series-per-request` equal to `--samples-per-request`: one
    /// sample per new series).
    #[arg(long, env = "METRICSTREAM_BENCH_SERIES_CHURN")]
    pub series_churn: bool,

    /// influx: fields per line, 1 to 3 (one point per field).
    #[arg(
        long,
        env = "METRICSTREAM_BENCH_FIELDS_PER_LINE",
        default_value_t = 3,
        value_parser = clap::value_parser!(u32).range(1..=3)
    )]
    pub fields_per_line: u32,

    /// Reuse one connection per client, reconnecting when the server closes it.
    #[arg(
        long,
        env = "METRICSTREAM_BENCH_KEEP_ALIVE",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub keep_alive: bool,

    /// Open a fresh connection for every request (the default, like the C++
    /// load test). Wins over --keep-alive, so it can undo a KEEP_ALIVE env var.
    #[arg(
        long,
        env = "METRICSTREAM_BENCH_NEW_CONNECTION",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub new_connection: bool,

    /// Pause between one client's requests, in milliseconds (the C++ test used 100).
    /// Closed loop only.
    #[arg(long, env = "METRICSTREAM_BENCH_INTERVAL_MS", default_value_t = 0)]
    pub interval_ms: u64,

    /// Gzip the request bodies and send `Content-Encoding: gzip` (json, influx, otlp; remote-write is snappy).
    #[arg(
        long,
        env = "METRICSTREAM_BENCH_GZIP",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub gzip: bool,

    /// Send `Authorization: Bearer KEY`; without it client i sends
    /// `Authorization: load_client_<i>` like the C++ test.
    #[arg(long, env = "METRICSTREAM_BENCH_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// Per-request timeout, connecting included (e.g. 500ms, 5s).
    #[arg(
        long,
        env = "METRICSTREAM_BENCH_TIMEOUT",
        default_value = "5s",
        value_parser = positive_duration
    )]
    pub timeout: Duration,

    /// Also write the full report as JSON to this file.
    #[arg(long, env = "METRICSTREAM_BENCH_JSON")]
    pub json: Option<PathBuf>,

    /// Print nothing: no progress line, no table (use with --json).
    #[arg(
        long,
        env = "METRICSTREAM_BENCH_QUIET",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub quiet: bool,
}

/// `--format`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchFormat {
    Json,
    RemoteWrite,
    Influx,
    Otlp,
}

impl From<BenchFormat> for loadgen::Format {
    fn from(format: BenchFormat) -> Self {
        match format {
            BenchFormat::Json => Self::Json,
            BenchFormat::RemoteWrite => Self::RemoteWrite,
            BenchFormat::Influx => Self::Influx,
            BenchFormat::Otlp => Self::Otlp,
        }
    }
}

impl BenchArgs {
    /// Connection mode: keep-alive only if asked for and not overruled by
    /// `--new-connection` (no conflict error, so flags can undo env vars).
    pub fn keep_alive(&self) -> bool {
        self.keep_alive && !self.new_connection
    }

    /// The load generator's config; with an https URL the TLS client
    /// config is built here (files read), as the sinks build theirs.
    pub fn into_config(self) -> anyhow::Result<loadgen::BenchConfig> {
        let tls = self
            .tls
            .options()
            .for_url(&self.url)?
            .map(|c| loadgen::Tls {
                config: c.config,
                server_name: c.server_name,
            });
        Ok(loadgen::BenchConfig {
            tls,
            keep_alive: self.keep_alive(),
            url: self.url,
            clients: self.clients,
            requests: self.requests,
            duration: self.duration,
            rate: self.rate,
            format: self.format.into(),
            metrics_per_request: self.metrics_per_request,
            samples_per_request: self.samples_per_request,
            series_per_request: self.series_per_request,
            series_churn: self.series_churn,
            fields_per_line: self.fields_per_line,
            interval: Duration::from_millis(self.interval_ms),
            gzip: self.gzip,
            api_key: self.api_key,
            timeout: self.timeout,
            json: self.json,
            quiet: self.quiet,
        })
    }
}

/// A request rate: finite and within what one machine could ever schedule.
fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}`: not a number"))?;
    if !(rate.is_finite() && (0.001..=1e9).contains(&rate)) {
        return Err(format!(
            "`{text}`: rate must be between 0.001 and 1e9 requests/s"
        ));
    }
    Ok(rate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::parse_duration;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn parse(args: &[&str]) -> Result<BenchArgs, clap::Error> {
        let argv = std::iter::once("bench").chain(args.iter().copied());
        Cli::try_parse_from(argv).map(|cli| cli.bench)
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration(" 10 ms "), Ok(Duration::from_millis(10)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in ["", "s", "ms", "5x", "1.2.3s", "-1s", "5 days", "1e999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should not parse");
        }
        assert!(positive_duration("0ms").is_err());
        assert!(positive_duration("1ms").is_ok());
    }

    #[test]
    fn defaults() {
        // Two copies of the defaults (flags, library): they must agree.
        assert_eq!(
            parse(&[]).unwrap().into_config().unwrap(),
            loadgen::BenchConfig::default()
        );
        let args = parse(&[]).unwrap();
        assert_eq!(args.url, "http://127.0.0.1:8080/metrics");
        assert_eq!(args.clients, 20);
        assert_eq!(args.requests, 50);
        assert_eq!(args.duration, None);
        assert_eq!(args.rate, None);
        assert_eq!(args.metrics_per_request, 3);
        assert_eq!(args.format, BenchFormat::Json);
        assert_eq!(args.samples_per_request, 2000);
        assert!(!args.keep_alive());
        assert_eq!(args.interval_ms, 0);
        assert!(!args.gzip);
        assert_eq!(args.api_key, None);
        assert_eq!(args.timeout, Duration::from_secs(5));
        assert_eq!(args.json, None);
        assert!(!args.quiet);
    }

    #[test]
    fn all_flags() {
        let args = parse(&[
            "--url",
            "http://localhost:9000/m",
            "--clients",
            "4",
            "--requests",
            "7",
            "--duration",
            "2m",
            "--rate",
            "250.5",
            "--metrics-per-request",
            "10",
            "--keep-alive",
            "--gzip",
            "--api-key",
            "secret",
            "--timeout",
            "750ms",
            "--json",
            "out.json",
            "--quiet",
        ])
        .unwrap();
        assert_eq!(args.url, "http://localhost:9000/m");
        assert_eq!(args.clients, 4);
        assert_eq!(args.requests, 7);
        assert_eq!(args.duration, Some(Duration::from_secs(120)));
        assert_eq!(args.rate, Some(250.5));
        assert_eq!(args.metrics_per_request, 10);
        assert!(args.keep_alive());
        assert!(args.gzip);
        assert_eq!(args.api_key.as_deref(), Some("secret"));
        assert_eq!(args.timeout, Duration::from_millis(750));
        assert_eq!(args.json, Some(PathBuf::from("out.json")));
        assert!(args.quiet);
    }

    #[test]
    fn config_carries_the_flags() {
        let config = parse(&["--interval-ms", "100", "--keep-alive", "--clients", "2"])
            .unwrap()
            .into_config()
            .unwrap();
        assert_eq!(config.interval, Duration::from_millis(100));
        assert!(config.keep_alive);
        assert_eq!(config.clients, 2);
        let config = parse(&["--keep-alive", "--new-connection"])
            .unwrap()
            .into_config()
            .unwrap();
        assert!(!config.keep_alive);
    }

    #[test]
    fn remote_write_flags() {
        let config = parse(&["--format", "remote-write", "--samples-per-request", "500"])
            .unwrap()
            .into_config()
            .unwrap();
        assert_eq!(config.format, loadgen::Format::RemoteWrite);
        assert_eq!(config.samples_per_request, 500);
        assert_eq!(
            parse(&["--format", "json"])
                .unwrap()
                .into_config()
                .unwrap()
                .format,
            loadgen::Format::Json
        );
    }

    #[test]
    fn otlp_flags() {
        let config = parse(&["--format", "otlp", "--samples-per-request", "100", "--gzip"])
            .unwrap()
            .into_config()
            .unwrap();
        assert_eq!(config.format, loadgen::Format::Otlp);
        assert_eq!((config.samples_per_request, config.gzip), (100, true));
    }

    #[test]
    fn new_connection_wins_over_keep_alive() {
        assert!(parse(&["--keep-alive"]).unwrap().keep_alive());
        assert!(!parse(&["--new-connection", "--keep-alive"])
            .unwrap()
            .keep_alive());
        assert!(!parse(&["--keep-alive", "--new-connection"])
            .unwrap()
            .keep_alive());
        assert!(!parse(&["--new-connection"]).unwrap().keep_alive());
    }

    #[test]
    fn tls_flags() {
        let plain = parse(&[]).unwrap().into_config().unwrap();
        assert!(plain.tls.is_none());
        let args = parse(&[
            "--url",
            "https://127.0.0.1:8443/metrics",
            "--tls-insecure-skip-verify",
            "--tls-server-name",
            "ingest.internal",
        ])
        .unwrap();
        let config = args.into_config().unwrap();
        let tls = config.tls.expect("https has TLS");
        assert_eq!(
            tls.server_name,
            rustls::pki_types::ServerName::try_from("ingest.internal").unwrap()
        );
        assert_eq!(tls.config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        let e = parse(&["--tls-ca", "/ca.pem"])
            .unwrap()
            .into_config()
            .unwrap_err();
        assert!(e.to_string().contains("plain http"), "{e}");
        let e = parse(&["--url", "https://h/m", "--tls-ca", "/nonexistent/ca.pem"])
            .unwrap()
            .into_config()
            .unwrap_err();
        assert!(format!("{e:#}").contains("/nonexistent/ca.pem"), "{e:#}");
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            &["--clients", "0"][..],
            &["--requests", "0"],
            &["--metrics-per-request", "0"],
            &["--samples-per-request", "0"],
            &["--series-per-request", "0"],
            &["--fields-per-line", "4"],
            &["--format", "xml"],
            &["--duration", "0s"],
            &["--duration", "soon"],
            &["--timeout", "0ms"],
            &["--rate", "0"],
            &["--rate", "-5"],
            &["--rate", "NaN"],
            &["--rate", "inf"],
            &["--rate", "100", "--interval-ms", "100"],
            &["--bogus"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
