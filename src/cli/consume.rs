//! `metricstream consume` flags, and the consumer config they make.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::tls_client::TlsClientArgs;
use super::{parse_duration, positive_duration, QueueArgs, QueueKind};
use metricstream::consumer::{ConsumeConfig, KafkaSource, Source};
use metricstream::influx::Precision;
use metricstream::sink::delivery::http::Auth;
use metricstream::sink::{SinkConfig, SinkKind};
use metricstream::tls::client::TlsClientOptions;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SinkArg {
    /// One JSON line per metric on stdout.
    Stdout,
    /// Prometheus remote_write 1.0 (Prometheus, VictoriaMetrics, Mimir, Thanos).
    RemoteWrite,
    /// InfluxDB line protocol (`/write` of 1.x, `/api/v2/write` of 2.x).
    Influx,
}

#[derive(Args, Debug, Clone)]
pub struct ConsumeArgs {
    /// Consumer group name; members of one group split the partitions.
    #[arg(long, env = "METRICSTREAM_GROUP")]
    pub group: String,
    #[command(flatten)]
    pub queue: QueueArgs,
    /// With no committed offset, start at the oldest message (else the newest).
    #[arg(long, env = "METRICSTREAM_FROM_BEGINNING")]
    pub from_beginning: bool,
    /// Exit once caught up with every partition this member owns.
    #[arg(long, env = "METRICSTREAM_EXIT_AT_END")]
    pub exit_at_end: bool,
    /// How often to look for new messages and group changes.
    #[arg(long, default_value = "100ms", value_parser = parse_duration, env = "METRICSTREAM_POLL_INTERVAL")]
    pub poll_interval: Duration,
    #[command(flatten)]
    pub sink: SinkArgs,
}

/// Where `consume` delivers, and how.
#[derive(Args, Debug, Clone)]
pub struct SinkArgs {
    /// Where the records go: stdout (JSON lines), or a store.
    #[arg(long, value_enum, default_value = "stdout", env = "METRICSTREAM_SINK")]
    pub sink: SinkArg,
    /// remote_write protocol version: 1 (Prometheus 2.x and every receiver)
    /// or 2 (io.prometheus.write.v2.Request).
    #[arg(long, default_value = "1", value_parser = ["1", "2"], env = "METRICSTREAM_REMOTE_WRITE_VERSION")]
    pub remote_write_version: String,
    /// The store's write endpoint, e.g. http://prometheus:9090/api/v1/write
    /// or http://influxdb:8086/write.
    #[arg(long, env = "METRICSTREAM_SINK_URL")]
    pub url: Option<String>,
    /// `Authorization: Bearer TOKEN`.
    #[arg(long, env = "METRICSTREAM_BEARER_TOKEN", hide_env_values = true)]
    pub bearer_token: Option<String>,
    /// Basic auth, USER:PASSWORD.
    #[arg(
        long,
        value_name = "USER:PASSWORD",
        env = "METRICSTREAM_BASIC_AUTH",
        hide_env_values = true
    )]
    pub basic_auth: Option<String>,
    /// `Authorization: Token TOKEN` (InfluxDB).
    #[arg(long, env = "METRICSTREAM_INFLUX_TOKEN", hide_env_values = true)]
    pub influx_token: Option<String>,
    #[command(flatten)]
    pub tls: TlsClientArgs,
    /// An extra request header K:V (repeatable; e.g. X-Scope-OrgID:tenant1).
    #[arg(long = "header", value_name = "K:V", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// Send each batch with its tenant in this header (e.g. X-Scope-OrgID);
    /// a batch never mixes tenants, samples without one get no header.
    #[arg(long, value_name = "NAME", env = "METRICSTREAM_TENANT_HEADER")]
    pub tenant_header: Option<String>,
    /// InfluxDB 1.x database (`db`) or 2.x bucket, unless the URL has it.
    #[arg(long, env = "METRICSTREAM_INFLUX_DB")]
    pub influx_db: Option<String>,
    /// InfluxDB 2.x organisation, unless the URL has it.
    #[arg(long, env = "METRICSTREAM_INFLUX_ORG")]
    pub influx_org: Option<String>,
    /// Timestamp precision of the line protocol written: ns, us, ms or s.
    #[arg(long, default_value = "ms", value_parser = parse_precision, env = "METRICSTREAM_INFLUX_PRECISION")]
    pub influx_precision: Precision,
    /// Requests in flight per partition. A partition's series are split
    /// among them by hash, so each series' samples still go in order.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256), env = "METRICSTREAM_IN_FLIGHT")]
    pub in_flight: u16,
    /// At most this many samples in one request.
    #[arg(long, default_value_t = 2000, env = "METRICSTREAM_BATCH_SAMPLES")]
    pub batch_samples: usize,
    /// About this many bytes (uncompressed) in one request at most.
    #[arg(long, default_value_t = 4 << 20, env = "METRICSTREAM_BATCH_BYTES")]
    pub batch_bytes: usize,
    /// A batch that is not full is sent this long after its first sample.
    #[arg(long, default_value = "100ms", value_parser = parse_duration, env = "METRICSTREAM_LINGER")]
    pub linger: Duration,
    /// A request with no answer after this long is retried.
    #[arg(long, default_value = "30s", value_parser = positive_duration, env = "METRICSTREAM_SINK_TIMEOUT")]
    pub sink_timeout: Duration,
    /// First retry wait (doubling, with jitter, up to --max-backoff).
    #[arg(long, default_value = "100ms", value_parser = positive_duration, env = "METRICSTREAM_MIN_BACKOFF")]
    pub min_backoff: Duration,
    #[arg(long, default_value = "30s", value_parser = positive_duration, env = "METRICSTREAM_MAX_BACKOFF")]
    pub max_backoff: Duration,
    /// On SIGTERM, how long requests in flight may take before they are abandoned.
    #[arg(long, default_value = "10s", value_parser = parse_duration, env = "METRICSTREAM_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: Duration,
    /// Serve the consumer's own metrics (Prometheus text) on ADDR/metrics.
    #[arg(long, value_name = "ADDR", env = "METRICSTREAM_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("{s:?}: expected NAME:VALUE")),
    }
}

fn parse_precision(s: &str) -> Result<Precision, String> {
    Precision::parse_written(s).ok_or_else(|| format!("{s:?}: expected ns, us, ms or s"))
}

impl SinkArgs {
    fn sink_config(&self) -> anyhow::Result<SinkConfig> {
        let kind = match self.sink {
            SinkArg::Stdout => SinkKind::Stdout,
            SinkArg::RemoteWrite if self.remote_write_version == "2" => SinkKind::RemoteWriteV2,
            SinkArg::RemoteWrite => SinkKind::RemoteWrite,
            SinkArg::Influx => SinkKind::Influx,
        };
        let auths = [
            self.bearer_token.clone().map(Auth::Bearer),
            self.basic_auth.clone().map(Auth::Basic),
            self.influx_token.clone().map(Auth::InfluxToken),
        ];
        let mut given = auths.into_iter().flatten();
        let auth = given.next().unwrap_or(Auth::None);
        if given.next().is_some() {
            anyhow::bail!("give one of --bearer-token, --basic-auth, --influx-token");
        }
        if let Auth::Basic(b) = &auth {
            if !b.contains(':') {
                anyhow::bail!("--basic-auth takes USER:PASSWORD");
            }
        }
        if kind != SinkKind::Stdout && self.url.is_none() {
            anyhow::bail!("--sink {:?} needs --url", self.sink);
        }
        if kind == SinkKind::Stdout && self.tenant_header.is_some() {
            anyhow::bail!(
                "--tenant-header needs a store sink (--sink remote-write or influx); stdout prints \"tenant\" on each line"
            );
        }
        let tls = self.tls.options();
        match (&self.url, kind) {
            // Checked now, so a TLS flag with an http:// URL stops the
            // start; the files are read when the sink opens.
            (Some(url), k) if k != SinkKind::Stdout => {
                tls.check(url)?;
            }
            _ if tls != TlsClientOptions::default() => {
                anyhow::bail!(
                    "--tls-* flags are for a store's https:// --url; --sink stdout has none"
                )
            }
            _ => {}
        }
        Ok(SinkConfig {
            kind,
            url: self.url.clone(),
            auth,
            tls,
            headers: self.headers.clone(),
            tenant_header: self.tenant_header.clone(),
            influx_db: self.influx_db.clone(),
            influx_org: self.influx_org.clone(),
            influx_precision: self.influx_precision,
            in_flight: usize::from(self.in_flight),
            max_samples: self.batch_samples.max(1),
            max_bytes: self.batch_bytes.max(1),
            linger: self.linger,
            request_timeout: self.sink_timeout,
            retry_min: self.min_backoff,
            retry_max: self.max_backoff,
            shutdown_timeout: self.shutdown_timeout,
            metrics_listen: self.metrics_listen,
        })
    }
}

impl ConsumeArgs {
    pub fn consume_config(&self) -> anyhow::Result<ConsumeConfig> {
        let q = &self.queue;
        let source = match q.queue {
            QueueKind::File => Source::File(q.data_dir.clone()),
            QueueKind::Kafka => Source::Kafka(KafkaSource {
                brokers: q.brokers()?,
                topic: q.topic.clone(),
                properties: q.kafka_properties.clone(),
                connect_timeout: q.connect_timeout,
            }),
        };
        Ok(ConsumeConfig {
            group: self.group.clone(),
            source,
            from_beginning: self.from_beginning,
            exit_at_end: self.exit_at_end,
            poll_interval: self.poll_interval,
            sink: self.sink.sink_config()?,
            data_dir: q.data_dir.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::{Cli, Command};
    use super::*;

    fn consume(args: &[&str]) -> anyhow::Result<ConsumeConfig> {
        let cli = Cli::try_parse_from(["metricstream", "consume"].iter().chain(args))?;
        match cli.command {
            Command::Consume(c) => c.consume_config(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn file_and_kafka_sources() {
        let c = consume(&["--group", "g", "--data-dir", "/d", "--from-beginning"]).unwrap();
        assert_eq!(c.group, "g");
        assert!(c.from_beginning && !c.exit_at_end);
        assert_eq!(c.poll_interval, Duration::from_millis(100));
        assert!(matches!(&c.source, Source::File(d) if d.to_str() == Some("/d")));

        let c = consume(&[
            "--group",
            "g",
            "--queue",
            "kafka",
            "--brokers",
            "k:1",
            "-X",
            "fetch.min.bytes=1",
        ])
        .unwrap();
        let Source::Kafka(k) = &c.source else {
            panic!("{c:?}")
        };
        assert_eq!((k.brokers.as_str(), k.topic.as_str()), ("k:1", "metrics"));
        assert_eq!(k.properties.len(), 1);
        assert_eq!(k.connect_timeout, Duration::from_secs(10));

        let e = consume(&["--group", "g", "--queue", "kafka"]).unwrap_err();
        assert!(e.to_string().contains("needs --brokers"), "{e}");
    }

    #[test]
    fn sink_flags() {
        let c = consume(&["--group", "g"]).unwrap();
        assert_eq!(c.sink.kind, SinkKind::Stdout);
        let c = consume(&[
            "--group",
            "g",
            "--sink",
            "remote-write",
            "--url",
            "http://p:9090/api/v1/write",
            "--basic-auth",
            "u:p",
            "--header",
            "X-Scope-OrgID: t1",
            "--header",
            "A:b",
            "--metrics-listen",
            "127.0.0.1:9100",
        ])
        .unwrap();
        assert_eq!(c.sink.kind, SinkKind::RemoteWrite);
        assert_eq!(c.sink.auth, Auth::Basic("u:p".into()));
        let v2 = consume(&[
            "--group",
            "g",
            "--sink",
            "remote-write",
            "--url",
            "http://p/api/v1/write",
            "--remote-write-version",
            "2",
        ])
        .unwrap();
        assert_eq!(v2.sink.kind, SinkKind::RemoteWriteV2);
        assert!(consume(&["--group", "g", "--remote-write-version", "3"]).is_err());
        assert_eq!(c.sink.headers[0], ("X-Scope-OrgID".into(), "t1".into()));
        assert_eq!(c.sink.headers.len(), 2);
        assert!(c.sink.metrics_listen.is_some());
        let e = consume(&["--group", "g", "--sink", "influx"]).unwrap_err();
        assert!(e.to_string().contains("needs --url"), "{e}");
        let e = consume(&[
            "--group",
            "g",
            "--sink",
            "influx",
            "--url",
            "http://i/write",
            "--bearer-token",
            "a",
            "--influx-token",
            "b",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("one of"), "{e}");
        assert!(consume(&["--group", "g", "--header", "nocolon"]).is_err());
    }

    fn remote_write(url: &str, more: &[&str]) -> anyhow::Result<ConsumeConfig> {
        let mut args = vec!["--group", "g", "--sink", "remote-write", "--url", url];
        args.extend(more);
        consume(&args)
    }

    #[test]
    fn tls_flags() {
        let c = remote_write(
            "https://mimir:443/api/v1/push",
            &[
                "--tls-ca",
                "/ca.pem",
                "--tls-cert",
                "/c.pem",
                "--tls-key",
                "/k.pem",
                "--tls-server-name",
                "mimir.internal",
            ],
        )
        .unwrap();
        assert_eq!(
            c.sink.tls,
            TlsClientOptions {
                ca: Some("/ca.pem".into()),
                cert: Some("/c.pem".into()),
                key: Some("/k.pem".into()),
                server_name: Some("mimir.internal".into()),
                insecure_skip_verify: false,
            }
        );
        let c = remote_write("https://m/w", &["--tls-insecure-skip-verify"]).unwrap();
        assert!(c.sink.tls.insecure_skip_verify);
        // No flag: https with the system's CAs; http stays plain.
        assert_eq!(
            remote_write("https://m/w", &[]).unwrap().sink.tls,
            TlsClientOptions::default()
        );
        assert!(remote_write("http://m/w", &[]).is_ok());
    }

    #[test]
    fn tls_start_up_errors() {
        let e = remote_write("http://m:9090/api/v1/write", &["--tls-ca", "/ca.pem"]).unwrap_err();
        assert!(e.to_string().contains("plain http"), "{e}");
        let e = remote_write("http://m/w", &["--tls-insecure-skip-verify"]).unwrap_err();
        assert!(
            e.to_string().contains("--tls-insecure-skip-verify given"),
            "{e}"
        );
        let e = remote_write("https://m/w", &["--tls-cert", "/c.pem"]).unwrap_err();
        assert!(e.to_string().contains("needs --tls-key"), "{e}");
        let e = remote_write(
            "https://m/w",
            &["--tls-ca", "/ca.pem", "--tls-insecure-skip-verify"],
        )
        .unwrap_err();
        assert!(e.to_string().contains("give one of them"), "{e}");
        let e = remote_write("https://m/w", &["--tls-server-name", "a b"]).unwrap_err();
        assert!(format!("{e:#}").contains("neither a DNS name"), "{e:#}");
        let e = consume(&["--group", "g", "--tls-ca", "/ca.pem"]).unwrap_err();
        assert!(e.to_string().contains("stdout"), "{e}");
    }
}
