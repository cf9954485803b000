//! `metricstream consume` flags, and the consumer config they make.

use std::time::Duration;

use clap::Args;

use super::{parse_duration, QueueArgs, QueueKind};
use metricstream::consumer::{ConsumeConfig, KafkaSource, Source};

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
}
