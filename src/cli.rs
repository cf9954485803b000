//! Command line: every flag also reads `METRICSTREAM_<FLAG>` from the
//! environment and `<flag> = value` from an optional TOML file (`--config`).
//! Precedence: command line, then environment, then file, then default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::auth::ApiKey;
use crate::queue::AckMode;

mod bench;

#[derive(Parser, Debug)]
#[command(
    name = "metricstream",
    version,
    about = "Metrics ingestion over HTTP into a durable partitioned queue"
)]
pub struct Cli {
    /// TOML file of flag values (`data-dir = "/var/lib/metricstream"`), under
    /// a `[serve]`, `[consume]` or `[bench]` table or at the top level.
    #[arg(long, global = true, env = "METRICSTREAM_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once at startup: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the ingestion server.
    Serve(ServeArgs),
    /// Read the queue as a member of a consumer group; one JSON line per metric.
    Consume(ConsumeArgs),
    /// Load generator: POSTs metrics and reports success rate and latency.
    Bench(bench::BenchArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum QueueKind {
    /// The embedded on-disk log in --data-dir.
    File,
    /// Apache Kafka (or any Kafka-API broker): --brokers, --topic, -X.
    Kafka,
}

/// One librdkafka property, `KEY=VALUE` (`-X`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaProperty {
    pub key: String,
    pub value: String,
}

impl std::str::FromStr for KafkaProperty {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok(KafkaProperty {
                key: k.trim().to_string(),
                value: v.to_string(),
            }),
            _ => Err(format!(
                "{s:?}: expected KEY=VALUE (a librdkafka property, e.g. linger.ms=5)"
            )),
        }
    }
}

/// Where the queue lives; shared by `serve` and `consume`.
#[derive(Args, Debug, Clone)]
pub struct QueueArgs {
    /// Queue backend.
    #[arg(long, value_enum, default_value = "file", env = "METRICSTREAM_QUEUE")]
    pub queue: QueueKind,
    /// Directory of the embedded log (and consumer-group offsets); with
    /// Kafka, of the spill log.
    #[arg(long, default_value = "./data", env = "METRICSTREAM_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Kafka bootstrap brokers, HOST:PORT[,HOST:PORT…] (needed with --queue kafka).
    #[arg(long, env = "METRICSTREAM_BROKERS")]
    pub brokers: Option<String>,
    /// Kafka topic.
    #[arg(long, default_value = "metrics", env = "METRICSTREAM_TOPIC")]
    pub topic: String,
    /// A librdkafka property KEY=VALUE (repeatable; overrides metricstream's
    /// defaults): TLS, SASL, tuning. In the environment, separate several with ';'.
    #[arg(
        short = 'X',
        long = "kafka-property",
        value_name = "KEY=VALUE",
        env = "METRICSTREAM_KAFKA_PROPERTY",
        value_delimiter = ';',
        hide_env_values = true
    )]
    pub kafka_properties: Vec<KafkaProperty>,
    /// How long to wait for a Kafka broker at start before giving up.
    #[arg(long, default_value = "10s", value_parser = parse_duration, env = "METRICSTREAM_CONNECT_TIMEOUT")]
    pub connect_timeout: Duration,
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "METRICSTREAM_LISTEN")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub queue: QueueArgs,
    /// Partitions of the queue (fixed once a data directory is created).
    #[arg(long, default_value_t = 4, env = "METRICSTREAM_PARTITIONS",
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub partitions: u32,
    /// When to answer 200: once the batch is durable, or once it is queued.
    #[arg(long, value_enum, default_value = "durable", env = "METRICSTREAM_ACK")]
    pub ack: AckMode,
    /// Worker threads serving HTTP [default: one per core].
    #[arg(long, env = "METRICSTREAM_WORKERS")]
    pub workers: Option<usize>,
    /// How long shutdown may take to finish requests and flush the queue.
    #[arg(long, default_value = "10s", value_parser = parse_duration, env = "METRICSTREAM_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: Duration,
    /// Requests per second allowed per client (0 = no limit).
    #[arg(long, default_value_t = 10_000, env = "METRICSTREAM_RATE_LIMIT")]
    pub rate_limit: u32,
    /// Largest request body in bytes, before and after gzip.
    #[arg(long, default_value_t = 1 << 20, env = "METRICSTREAM_MAX_BODY")]
    pub max_body: usize,
    /// API key as NAME:SECRET (repeatable). With keys set, requests need
    /// `Authorization: Bearer SECRET` and NAME becomes the client id.
    #[arg(
        long = "api-key",
        env = "METRICSTREAM_API_KEY",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<ApiKey>,
    /// File of NAME:SECRET lines, one key per line.
    #[arg(long, env = "METRICSTREAM_API_KEYS_FILE")]
    pub api_keys_file: Option<PathBuf>,
    /// Requests handled at once; more get 503 (bounds memory).
    #[arg(long, default_value_t = 1024, env = "METRICSTREAM_MAX_INFLIGHT")]
    pub max_inflight: usize,
    /// Bytes of accepted batches that may wait in memory for the log writer;
    /// past it, requests wait up to --enqueue-timeout, then get a 503.
    #[arg(long, default_value_t = 32 << 20, env = "METRICSTREAM_QUEUE_BYTES")]
    pub queue_bytes: usize,
    /// How a group commit that wrote several partitions is made durable:
    /// one fdatasync per partition file, or one syncfs of the data
    /// directory's file system (one device flush instead of one per
    /// partition; best on a file system of its own).
    #[arg(long, value_enum, default_value = "syncfs", env = "METRICSTREAM_SYNC")]
    pub sync: crate::log::SyncMode,
    /// How long a request waits for room in a full queue before a 503.
    #[arg(long, default_value = "500ms", value_parser = parse_duration, env = "METRICSTREAM_ENQUEUE_TIMEOUT")]
    pub enqueue_timeout: Duration,
    /// Longest time one request may take, body included.
    #[arg(long, default_value = "30s", value_parser = parse_duration, env = "METRICSTREAM_REQUEST_TIMEOUT")]
    pub request_timeout: Duration,
    /// Client connections served at once. At the cap the connection idle
    /// longest is closed to admit a new one; if all are busy, a 503.
    #[arg(long, default_value_t = 10_000, env = "METRICSTREAM_MAX_CONNECTIONS",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_connections: usize,
    /// A connection must send a complete request head within this long of
    /// opening or of its previous answer, else it is closed (slow or idle
    /// clients); an answer the client does not read for this long closes it
    /// too. A slow body is bounded by --request-timeout.
    #[arg(long, default_value = "30s", value_parser = positive_duration, env = "METRICSTREAM_IDLE_TIMEOUT")]
    pub idle_timeout: Duration,
    /// Log segment size before a new segment is started.
    #[arg(long, default_value_t = 64 << 20, env = "METRICSTREAM_SEGMENT_BYTES")]
    pub segment_bytes: u64,
    /// Keep at most this many bytes per partition (0 = no size limit).
    #[arg(long, default_value_t = 1 << 30, env = "METRICSTREAM_RETENTION_BYTES")]
    pub retention_bytes: u64,
    /// Delete segments older than this (0s = keep forever).
    #[arg(long, default_value = "168h", value_parser = parse_duration, env = "METRICSTREAM_RETENTION")]
    pub retention: Duration,
    /// Kafka: create the topic with --partitions if it does not exist.
    #[arg(long, env = "METRICSTREAM_CREATE_TOPIC")]
    pub create_topic: bool,
    /// Kafka: replication factor of a topic made by --create-topic [default: the broker's].
    #[arg(long, env = "METRICSTREAM_REPLICATION_FACTOR",
          value_parser = clap::value_parser!(i32).range(1..=32))]
    pub replication_factor: Option<i32>,
    /// Kafka: longest wait for the brokers to acknowledge a batch
    /// (librdkafka's message.timeout.ms); a durable request gets a 503 after it.
    #[arg(long, default_value = "10s", value_parser = parse_duration, env = "METRICSTREAM_DELIVERY_TIMEOUT")]
    pub delivery_timeout: Duration,
    /// Kafka, accepted mode: largest size of the spill log in <data-dir>/spill
    /// (batches that could not be delivered yet); when full, requests get 503.
    #[arg(long, default_value_t = 1 << 30, env = "METRICSTREAM_SPILL_MAX_BYTES")]
    pub spill_max_bytes: u64,
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
}

/// `250ms`, `10s`, `5m`, `2h`, `7d`, or plain seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 500ms, 10s, 5m, 2h)"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        u => return Err(format!("unknown unit {u:?} in {s:?} (ms, s, m, h, d)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

/// A duration above zero.
pub(crate) fn positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!("{s:?}: must be above zero")),
        d => Ok(d),
    }
}

/// Copies the config file's values into `METRICSTREAM_*` variables that
/// are not already set, so clap sees them with the right precedence.
pub fn apply_config_file(args: &[String]) -> anyhow::Result<()> {
    let path = args
        .iter()
        .enumerate()
        .find_map(|(i, a)| match a.strip_prefix("--config=") {
            Some(p) => Some(p.to_string()),
            None if a == "--config" => args.get(i + 1).cloned(),
            None => None,
        })
        .or_else(|| std::env::var("METRICSTREAM_CONFIG").ok());
    let Some(path) = path else { return Ok(()) };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("reading config file {path}: {e}"))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("config file {path}: {e}"))?;
    let sub = args
        .get(1..)
        .unwrap_or_default()
        .iter()
        .find(|a| !a.starts_with('-'));
    // `config_pairs` already yields the variable names.
    for (var, value) in config_pairs(&table, sub.map(String::as_str)) {
        if std::env::var_os(&var).is_none() {
            std::env::set_var(var, value);
        }
    }
    Ok(())
}

/// Environment variables for the top-level keys plus those of the running
/// subcommand's table (`bench` flags are `METRICSTREAM_BENCH_*`).
fn config_pairs(table: &toml::Table, subcommand: Option<&str>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut add = |t: &toml::Table, prefix: &str| {
        for (k, v) in t {
            // librdkafka values may hold commas (broker lists), not ';'.
            let delimiter = if k == "kafka-property" { ";" } else { "," };
            let text = match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Array(items) => items
                    .iter()
                    .map(|i| {
                        i.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| i.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(delimiter),
                toml::Value::Table(_) => continue,
                other => other.to_string(),
            };
            let var = format!("{prefix}{}", k.replace('-', "_").to_ascii_uppercase());
            out.push((var, text));
        }
    };
    add(table, "METRICSTREAM_");
    if let Some(toml::Value::Table(t)) = subcommand.and_then(|s| table.get(s)) {
        let prefix = if subcommand == Some("bench") {
            "METRICSTREAM_BENCH_"
        } else {
            "METRICSTREAM_"
        };
        add(t, prefix);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(
            parse_duration("168h").unwrap(),
            Duration::from_secs(168 * 3600)
        );
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("x").is_err());
    }

    #[test]
    fn serve_defaults_match_the_contract() {
        let cli = Cli::try_parse_from(["metricstream", "serve"]).unwrap();
        let Command::Serve(s) = cli.command else {
            panic!()
        };
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.queue.queue, QueueKind::File);
        assert_eq!(s.queue.data_dir, PathBuf::from("./data"));
        assert_eq!(s.partitions, 4);
        assert_eq!(s.ack, AckMode::Durable);
        assert_eq!(s.shutdown_timeout, Duration::from_secs(10));
        assert_eq!(s.rate_limit, 10_000);
        assert_eq!(s.max_body, 1 << 20);
        assert_eq!(s.queue.topic, "metrics");
        assert_eq!(s.queue.brokers, None);
        assert!(!s.create_topic);
        assert_eq!(s.delivery_timeout, Duration::from_secs(10));
        assert_eq!(s.max_connections, 10_000);
        assert_eq!(s.idle_timeout, Duration::from_secs(30));
    }

    #[test]
    fn connection_limits() {
        let cli = Cli::try_parse_from([
            "metricstream",
            "serve",
            "--max-connections",
            "50",
            "--idle-timeout",
            "2s",
        ])
        .unwrap();
        let Command::Serve(s) = cli.command else {
            panic!()
        };
        assert_eq!(s.max_connections, 50);
        assert_eq!(s.idle_timeout, Duration::from_secs(2));
        for bad in [
            ["--max-connections", "0"],
            ["--idle-timeout", "0s"],
            ["--max-connections", "-1"],
        ] {
            let parsed = Cli::try_parse_from(["metricstream", "serve", bad[0], bad[1]]);
            assert!(parsed.is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn kafka_flags() {
        let cli = Cli::try_parse_from([
            "metricstream",
            "serve",
            "--queue",
            "kafka",
            "--brokers",
            "k1:9092,k2:9092",
            "--topic",
            "m",
            "-X",
            "linger.ms=5",
            "-X",
            "sasl.jaas.config=a=b",
            "--create-topic",
        ])
        .unwrap();
        let Command::Serve(s) = cli.command else {
            panic!()
        };
        assert_eq!(s.queue.queue, QueueKind::Kafka);
        assert_eq!(s.queue.brokers.as_deref(), Some("k1:9092,k2:9092"));
        assert_eq!(s.queue.topic, "m");
        assert!(s.create_topic);
        assert_eq!(
            s.queue.kafka_properties,
            vec![
                KafkaProperty {
                    key: "linger.ms".into(),
                    value: "5".into()
                },
                KafkaProperty {
                    key: "sasl.jaas.config".into(),
                    value: "a=b".into()
                },
            ]
        );
        assert!(Cli::try_parse_from(["metricstream", "serve", "-X", "novalue"]).is_err());
        let cli = Cli::try_parse_from([
            "metricstream",
            "consume",
            "--queue",
            "kafka",
            "--brokers",
            "k:1",
            "--group",
            "g",
        ])
        .unwrap();
        let Command::Consume(c) = cli.command else {
            panic!()
        };
        assert_eq!(c.queue.queue, QueueKind::Kafka);
    }

    #[test]
    fn config_tables_flatten_with_subcommand_override() {
        let t: toml::Table = toml::from_str(
            "data-dir = \"/d\"\npartitions = 8\n[serve]\nack = \"accepted\"\napi-key = [\"a:b\", \"c:d\"]\n[consume]\ngroup = \"g\"",
        )
        .unwrap();
        let mut pairs = config_pairs(&t, Some("serve"));
        pairs.sort();
        assert_eq!(
            pairs,
            vec![
                ("METRICSTREAM_ACK".into(), "accepted".into()),
                ("METRICSTREAM_API_KEY".into(), "a:b,c:d".into()),
                ("METRICSTREAM_DATA_DIR".into(), "/d".into()),
                ("METRICSTREAM_PARTITIONS".into(), "8".into()),
            ]
        );
        let t: toml::Table =
            toml::from_str("kafka-property = [\"bootstrap.servers=a:1,b:2\", \"acks=1\"]").unwrap();
        assert_eq!(
            config_pairs(&t, Some("serve")),
            vec![(
                "METRICSTREAM_KAFKA_PROPERTY".to_string(),
                "bootstrap.servers=a:1,b:2;acks=1".to_string()
            )]
        );
        let t: toml::Table = toml::from_str("[bench]\nkeep-alive = true").unwrap();
        assert_eq!(
            config_pairs(&t, Some("bench")),
            vec![(
                "METRICSTREAM_BENCH_KEEP_ALIVE".to_string(),
                "true".to_string()
            )]
        );
    }
}
