//! Command line: every flag also reads `METRICSTREAM_<FLAG>` from the
//! environment and `<flag> = value` from an optional TOML file (`--config`).
//! Precedence: command line, then environment, then file, then default.
//! Only this module knows clap: it turns the flags into the library's
//! plain config structs.

mod bench;
mod config_file;
mod consume;
mod serve;
mod tls_client;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use metricstream::queue::kafka::KafkaProperty;

pub use consume::ConsumeArgs;
pub use serve::ServeArgs;

#[derive(Parser, Debug)]
#[command(
    name = "metricstream",
    version,
    about = "Metrics ingestion over HTTP into a durable partitioned queue"
)]
pub struct Cli {
    /// TOML file of flag values (`data-dir = "/var/lib/metricstream"`), under
    /// a `[serve]`, `[consume]` or `[bench]` table or at the top level.
    /// Unknown keys are an error.
    #[arg(long, global = true, env = "METRICSTREAM_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log lines on stderr as plain text or as one JSON object each.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "METRICSTREAM_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once at startup: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the ingestion server.
    Serve(ServeArgs),
    /// Read the queue as a member of a consumer group: JSON lines on stdout,
    /// or delivered into a store (--sink remote-write, influx).
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
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

impl QueueArgs {
    /// `--brokers`, which `--queue kafka` cannot do without.
    fn brokers(&self) -> anyhow::Result<String> {
        self.brokers
            .clone()
            .filter(|b| !b.trim().is_empty())
            .ok_or_else(|| anyhow::anyhow!("--queue kafka needs --brokers HOST:PORT[,HOST:PORT…]"))
    }
}

/// The command line, with the config file filling in what neither it nor
/// the environment sets. A usage error, `--help` or `--version` exits here,
/// as clap's own `parse` would.
pub fn parse(args: Vec<OsString>) -> anyhow::Result<Cli> {
    let filled = config_file::fill(&Cli::command(), args)?;
    Cli::try_parse_from(&filled.args).or_else(|e| {
        let _ = e.print();
        if e.use_stderr() {
            if let Some(note) = &filled.note {
                eprintln!("note: {note}");
            }
        }
        std::process::exit(e.exit_code())
    })
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

/// A duration above zero: a zero timeout is a typo, not a wish.
pub(crate) fn positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!("{s:?}: must be above zero")),
        d => Ok(d),
    }
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
        assert_eq!(positive_duration("1ms").unwrap(), Duration::from_millis(1));
        assert_eq!(
            positive_duration("0s").unwrap_err(),
            "\"0s\": must be above zero"
        );
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
    fn kafka_needs_brokers() {
        let cli = Cli::try_parse_from(["metricstream", "serve", "--queue", "kafka"]).unwrap();
        let Command::Serve(s) = cli.command else {
            panic!()
        };
        let e = s.kafka_queue_config().unwrap_err().to_string();
        assert!(e.contains("needs --brokers"), "{e}");
    }

    #[test]
    fn help_lists_the_choices_and_defaults() {
        let mut cmd = Cli::command();
        // Global flags reach the subcommand's help once built.
        cmd.build();
        let help = cmd
            .find_subcommand_mut("serve")
            .unwrap()
            .render_long_help()
            .to_string();
        for text in [
            "durable",
            "accepted",
            "syncfs",
            "fdatasync",
            "[default: durable]",
            "[default: syncfs]",
            "[default: file]",
            "[default: text]",
            "json",
        ] {
            assert!(help.contains(text), "{text:?} missing from:\n{help}");
        }
    }
}
