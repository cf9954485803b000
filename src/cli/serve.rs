//! `metricstream serve` flags, and the queue configs they make.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{EnumValueParser, TypedValueParser};
use clap::{Args, ValueEnum};

use super::{parse_duration, positive_duration, QueueArgs};
use metricstream::auth::ApiKey;
use metricstream::log::{LogConfig, SyncMode};
use metricstream::queue::file::FileQueueConfig;
use metricstream::queue::kafka::{CreateTopic, KafkaQueueConfig};
use metricstream::queue::{AckMode, PartitionBy};
use metricstream::record::Format;
use metricstream::status::kafka::KafkaSource;
use metricstream::status::{Backend, StatusConfig};
use metricstream::tenant::rule::ClientRule;
use metricstream::tenant::Rules;
use metricstream::tls::server::{ClientAuth, TlsFiles};

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
    #[arg(long, default_value = "durable", env = "METRICSTREAM_ACK",
          value_parser = EnumValueParser::<AckChoice>::new().map(AckMode::from))]
    pub ack: AckMode,
    /// What picks a message's partition (remote_write, line protocol, OTLP):
    /// the client id; each series (name and sorted labels), which keeps a
    /// series in order in one partition while one big sender spreads over
    /// all of them; or the request's tenant (X-Scope-OrgID or the client's
    /// bound tenant; a request without one goes by client). `POST /metrics`
    /// batches always stay whole in the client's (or tenant's) partition.
    #[arg(long, default_value = "client", env = "METRICSTREAM_PARTITION_BY",
          value_parser = EnumValueParser::<PartitionChoice>::new().map(PartitionBy::from))]
    pub partition_by: PartitionBy,
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
    /// Tenant rule as NAME=RULE (repeatable): the client NAME (an API key's
    /// name or a client certificate's) is bound to one tenant (`acme`), may
    /// name one of several with X-Scope-OrgID (`acme|beta`), or any (`*`).
    /// With API keys, a client without a rule may name no tenant.
    #[arg(long = "tenant", env = "METRICSTREAM_TENANT", value_delimiter = ',')]
    pub tenants: Vec<ClientRule>,
    /// File of NAME=RULE lines (`#` comments), one tenant rule per line.
    #[arg(long, env = "METRICSTREAM_TENANTS_FILE")]
    pub tenants_file: Option<PathBuf>,
    /// Requests per second allowed per tenant (0 = no limit), beside
    /// --rate-limit's per client.
    #[arg(long, default_value_t = 0, env = "METRICSTREAM_TENANT_RATE_LIMIT")]
    pub tenant_rate_limit: u32,
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
    #[arg(long, default_value = "syncfs", env = "METRICSTREAM_SYNC",
          value_parser = EnumValueParser::<SyncChoice>::new().map(SyncMode::from))]
    pub sync: SyncMode,
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
    /// Kafka: how records are written to the topic. `compact` (version 2,
    /// proto/record.proto: about 20x smaller, what `consume` reads fastest)
    /// or `json` (version 1, the JSON batch, for readers that want text).
    /// The embedded log always stores `compact`.
    #[arg(
        long,
        value_enum,
        default_value = "compact",
        env = "METRICSTREAM_KAFKA_FORMAT"
    )]
    kafka_format: FormatChoice,
    /// Largest stored record, in bytes before compression: a request is
    /// stored as as many records as it takes (Kafka's default
    /// message.max.bytes is 1 MB).
    #[arg(long, default_value_t = 512 * 1024, env = "METRICSTREAM_MAX_RECORD_BYTES",
          value_parser = clap::value_parser!(u64).range(4096..=(64 << 20)))]
    pub max_record_bytes: u64,
    /// Kafka: a consumer group the status page shows (repeatable), whether
    /// or not the broker lists it. Groups the broker lists that consume the
    /// topic are shown anyway; this is for brokers that do not list groups.
    /// In the environment, separate several with ','.
    #[arg(
        long = "status-group",
        value_name = "NAME",
        env = "METRICSTREAM_STATUS_GROUP",
        value_delimiter = ','
    )]
    pub status_groups: Vec<String>,
    /// TLS: the listener's certificate chain (PEM, leaf first). With
    /// --tls-key the port speaks only TLS (https://; HTTP/1.1, or HTTP/2 by
    /// ALPN). Reloaded on SIGHUP and when the files change.
    #[arg(long, env = "METRICSTREAM_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS: the private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "METRICSTREAM_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Mutual TLS: CA certificates (PEM) that client certificates must be
    /// signed by; a verified certificate's subject CN (else its first DNS,
    /// else URI SAN) names the client.
    #[arg(long, env = "METRICSTREAM_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Mutual TLS: whether a client must present a certificate
    /// [default: required]. `optional`: one without is served as without TLS
    /// client certificates (API key or Authorization header).
    #[arg(
        long,
        value_enum,
        env = "METRICSTREAM_TLS_CLIENT_AUTH",
        requires = "tls_client_ca"
    )]
    tls_client_auth: Option<ClientAuthChoice>,
}

/// The `--tls-client-auth` choices, for [`ClientAuth`].
#[derive(Clone, Copy, Debug, ValueEnum)]
enum ClientAuthChoice {
    Optional,
    Required,
}

/// The `--kafka-format` choices.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum FormatChoice {
    Compact,
    Json,
}

/// The `--ack` choices; the library's [`AckMode`] knows nothing of clap.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum AckChoice {
    /// Answer once the batch is durable (fsync'd / acknowledged by the brokers).
    Durable,
    /// Answer once the batch is in the bounded in-memory queue of the writer.
    Accepted,
}

impl From<AckChoice> for AckMode {
    fn from(a: AckChoice) -> AckMode {
        match a {
            AckChoice::Durable => AckMode::Durable,
            AckChoice::Accepted => AckMode::Accepted,
        }
    }
}

/// The `--partition-by` choices, for [`PartitionBy`].
#[derive(Clone, Copy, Debug, ValueEnum)]
enum PartitionChoice {
    /// The client id (the API key's name, or the Authorization header).
    Client,
    /// Each series: murmur2 of the name and the sorted labels.
    Series,
    /// The request's tenant (by client when it has none).
    Tenant,
}

impl From<PartitionChoice> for PartitionBy {
    fn from(p: PartitionChoice) -> PartitionBy {
        match p {
            PartitionChoice::Client => PartitionBy::Client,
            PartitionChoice::Series => PartitionBy::Series,
            PartitionChoice::Tenant => PartitionBy::Tenant,
        }
    }
}

/// The `--sync` choices, for [`SyncMode`].
#[derive(Clone, Copy, Debug, ValueEnum)]
enum SyncChoice {
    /// One fdatasync per log: each costs a device cache flush, but only this
    /// log's data is written out.
    Fdatasync,
    /// One syncfs for all: a single journal commit and flush, but it also
    /// writes out every other dirty file of the same file system.
    Syncfs,
}

impl From<SyncChoice> for SyncMode {
    fn from(s: SyncChoice) -> SyncMode {
        match s {
            SyncChoice::Fdatasync => SyncMode::Fdatasync,
            SyncChoice::Syncfs => SyncMode::Syncfs,
        }
    }
}

impl ServeArgs {
    /// `--tenant` rules and `--tenants-file`'s together (a client given two
    /// rules is an error).
    pub fn tenant_rules(&self) -> anyhow::Result<Rules> {
        let mut rules = self.tenants.clone();
        if let Some(file) = &self.tenants_file {
            rules.extend(Rules::read_file(file)?);
        }
        Rules::new(rules).map_err(|e| anyhow::anyhow!("--tenant: {e}"))
    }

    /// `--workers`, or one per core.
    pub fn workers(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
            .max(1)
    }

    /// The listener's TLS files, if --tls-cert and --tls-key are given.
    pub fn tls_files(&self) -> Option<TlsFiles> {
        let (cert, key) = (self.tls_cert.clone()?, self.tls_key.clone()?);
        Some(TlsFiles {
            cert,
            key,
            client_ca: self.tls_client_ca.clone(),
            client_auth: match self.tls_client_auth {
                Some(ClientAuthChoice::Optional) => ClientAuth::Optional,
                Some(ClientAuthChoice::Required) | None => ClientAuth::Required,
            },
        })
    }

    pub fn file_queue_config(&self) -> FileQueueConfig {
        FileQueueConfig {
            data_dir: self.queue.data_dir.clone(),
            partitions: self.partitions,
            ack: self.ack,
            log: LogConfig {
                segment_bytes: self.segment_bytes,
                retention_bytes: (self.retention_bytes > 0).then_some(self.retention_bytes),
                retention: (!self.retention.is_zero()).then_some(self.retention),
                ..LogConfig::default()
            },
            queue_bytes: self.queue_bytes,
            sync: self.sync,
            enqueue_timeout: self.enqueue_timeout,
            retention_check: Duration::from_secs(30),
            max_record_bytes: self.max_record_bytes as usize,
        }
    }

    /// What the status page needs to know (`partitions`: the queue's, which
    /// with Kafka is the topic's).
    pub fn status_config(&self, partitions: u32) -> StatusConfig {
        let file = self.file_queue_config();
        StatusConfig {
            data_dir: self.queue.data_dir.clone(),
            partitions,
            backend: match self.queue.queue {
                super::QueueKind::File => Backend::Embedded,
                super::QueueKind::Kafka => Backend::Kafka(KafkaSource {
                    brokers: self.queue.brokers.clone().unwrap_or_default(),
                    topic: self.queue.topic.clone(),
                    properties: self.queue.kafka_properties.clone(),
                    groups: self.status_groups.clone(),
                }),
            },
            ack: self.ack,
            retention_bytes: file.log.retention_bytes,
            retention: file.log.retention,
            segment_bytes: file.log.segment_bytes,
        }
    }

    pub fn kafka_queue_config(&self) -> anyhow::Result<KafkaQueueConfig> {
        let brokers = self.queue.brokers()?;
        if self.delivery_timeout >= self.request_timeout {
            tracing::warn!(
                "--delivery-timeout ({:?}) is not below --request-timeout ({:?}): a durable \
                 request may time out before Kafka's answer",
                self.delivery_timeout,
                self.request_timeout
            );
        }
        Ok(KafkaQueueConfig {
            brokers,
            topic: self.queue.topic.clone(),
            properties: self.queue.kafka_properties.clone(),
            ack: self.ack,
            create_topic: self.create_topic.then_some(CreateTopic {
                partitions: self.partitions,
                replication: self.replication_factor,
            }),
            enqueue_timeout: self.enqueue_timeout,
            delivery_timeout: self.delivery_timeout,
            connect_timeout: self.queue.connect_timeout,
            data_dir: self.queue.data_dir.clone(),
            spill_max_bytes: self.spill_max_bytes,
            format: match self.kafka_format {
                FormatChoice::Compact => Format::Compact,
                FormatChoice::Json => Format::Json,
            },
            max_record_bytes: self.max_record_bytes as usize,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::{Cli, Command, QueueKind};
    use super::*;

    fn serve(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        let cli = Cli::try_parse_from(["metricstream", "serve"].iter().chain(args))?;
        match cli.command {
            Command::Serve(s) => Ok(s),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn serve_defaults_match_the_contract() {
        let s = serve(&[]).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.queue.queue, QueueKind::File);
        assert_eq!(s.queue.data_dir, PathBuf::from("./data"));
        assert_eq!(s.partitions, 4);
        assert_eq!(s.ack, AckMode::Durable);
        assert_eq!(s.sync, SyncMode::Syncfs);
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
    fn choices_map_to_the_library_modes() {
        let s = serve(&["--ack", "accepted", "--sync", "fdatasync"]).unwrap();
        assert_eq!(s.ack, AckMode::Accepted);
        assert_eq!(s.sync, SyncMode::Fdatasync);
        assert!(serve(&["--ack", "eventually"]).is_err());
        let f = s.file_queue_config();
        assert_eq!(f.ack, AckMode::Accepted);
        assert_eq!(f.sync, SyncMode::Fdatasync);
        assert_eq!(f.log.retention, Some(Duration::from_secs(168 * 3600)));
        let f = serve(&["--retention", "0s", "--retention-bytes", "0"])
            .unwrap()
            .file_queue_config();
        assert_eq!((f.log.retention, f.log.retention_bytes), (None, None));
    }

    #[test]
    fn tenant_flags() {
        use metricstream::tenant::Rule;
        let s = serve(&[]).unwrap();
        assert!(s.tenant_rules().unwrap().is_empty());
        assert_eq!(s.tenant_rate_limit, 0);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tenants");
        std::fs::write(&file, "# ops\nops=*\n").unwrap();
        let s = serve(&[
            "--tenant",
            "web=acme",
            "--tenant",
            "db=acme|beta",
            "--tenants-file",
            file.to_str().unwrap(),
            "--tenant-rate-limit",
            "50",
            "--partition-by",
            "tenant",
        ])
        .unwrap();
        let rules = s.tenant_rules().unwrap();
        assert_eq!(rules.get("web"), Some(&Rule::Bound("acme".into())));
        assert_eq!(rules.get("ops"), Some(&Rule::Any));
        assert_eq!(rules.len(), 3);
        assert_eq!(
            (s.tenant_rate_limit, s.partition_by),
            (50, PartitionBy::Tenant)
        );
        assert!(serve(&["--tenant", "web"]).is_err());
        assert!(serve(&["--tenant", "web=a b"]).is_err());
        let twice = serve(&["--tenant", "web=a", "--tenant", "web=b"]).unwrap();
        assert!(twice.tenant_rules().is_err());
    }

    #[test]
    fn tls_flags() {
        assert!(serve(&[]).unwrap().tls_files().is_none());
        let t = serve(&["--tls-cert", "c.pem", "--tls-key", "k.pem"])
            .unwrap()
            .tls_files()
            .unwrap();
        assert_eq!(t.cert, PathBuf::from("c.pem"));
        assert_eq!(t.client_ca, None);
        let t = serve(&[
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--tls-client-ca",
            "ca.pem",
        ])
        .unwrap()
        .tls_files()
        .unwrap();
        assert_eq!(t.client_auth, ClientAuth::Required);
        let t = serve(&[
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--tls-client-ca",
            "ca.pem",
            "--tls-client-auth",
            "optional",
        ])
        .unwrap()
        .tls_files()
        .unwrap();
        assert_eq!(t.client_auth, ClientAuth::Optional);
        for bad in [
            &["--tls-cert", "c.pem"][..],
            &["--tls-key", "k.pem"],
            &["--tls-client-ca", "ca.pem"],
            &[
                "--tls-cert",
                "c",
                "--tls-key",
                "k",
                "--tls-client-auth",
                "optional",
            ],
        ] {
            assert!(serve(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn connection_limits() {
        let s = serve(&["--max-connections", "50", "--idle-timeout", "2s"]).unwrap();
        assert_eq!(s.max_connections, 50);
        assert_eq!(s.idle_timeout, Duration::from_secs(2));
        for bad in [
            ["--max-connections", "0"],
            ["--idle-timeout", "0s"],
            ["--max-connections", "-1"],
        ] {
            assert!(serve(&bad).is_err(), "{bad:?} accepted");
        }
    }
}
