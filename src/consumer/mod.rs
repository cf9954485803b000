//! `metricstream consume`: a consumer-group member that hands what it reads
//! to a sink (JSON lines on stdout, or a time-series store, see
//! [`crate::sink`]) and commits a partition's offset only after the sink
//! acknowledged everything before it (at-least-once: a crash between the
//! two repeats, never skips).
//!
//! [`main_loop`] is the loop, the same for every queue, over a
//! [`RecordSource`](main_loop::RecordSource): the embedded log's groups ([`file_source`] reading,
//! [`group`] coordinating the members) or Kafka's own consumer groups
//! ([`kafka`]). Both feed the same sinks. This file sets up what the loop
//! runs in: the sink's runtime, signals, metrics, the output.
//!
//! SIGTERM or SIGINT: stop reading, let the sink finish or abandon what is
//! in flight (within its shutdown timeout), commit what was acknowledged,
//! exit 0.

pub mod file_source;
pub mod group;
pub mod kafka;
pub mod main_loop;
mod signals;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::sink::metrics::ConsumeMetrics;
use crate::sink::{self, SinkConfig, SinkKind};
use file_source::FileMember;
use kafka::KafkaMember;
pub use kafka::KafkaSource;
use main_loop::{LoopSettings, COMMIT_EVERY};

/// What `metricstream consume` was asked to do.
#[derive(Debug, Clone)]
pub struct ConsumeConfig {
    /// Members of one group split the partitions.
    pub group: String,
    pub source: Source,
    /// With no committed offset, start at the oldest message (else the newest).
    pub from_beginning: bool,
    /// Exit once caught up with every partition this member owns.
    pub exit_at_end: bool,
    /// How often to look for new messages and group changes.
    pub poll_interval: Duration,
    /// Where the records go.
    pub sink: SinkConfig,
    /// The dead-letter file and the sinks' state (with Kafka too).
    pub data_dir: PathBuf,
}

/// The queue to read.
#[derive(Debug, Clone)]
pub enum Source {
    /// The embedded log in this data directory.
    File(PathBuf),
    Kafka(KafkaSource),
}

pub fn run(cfg: &ConsumeConfig) -> anyhow::Result<()> {
    // Decoding and encoding run on these threads beside the requests in
    // flight; more threads than cores keeps a busy batcher from delaying
    // the answer another partition's sender is waiting for.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .thread_name("sink")
        .enable_all()
        .build()?;
    let stop = Arc::new(AtomicBool::new(false));
    signals::watch(rt.handle(), stop.clone())?;
    let metrics = Arc::new(ConsumeMetrics::new()?);
    if let Some(addr) = cfg.sink.metrics_listen {
        let listener = sink::metrics::bind(addr)
            .map_err(|e| anyhow::anyhow!("--metrics-listen {addr}: {e}"))?;
        let _enter = rt.enter();
        let listener = tokio::net::TcpListener::from_std(listener)?;
        tracing::info!(listen = %addr, "consumer metrics on /metrics");
        rt.spawn(sink::metrics::serve(listener, metrics.clone()));
    }
    if cfg.sink.kind != SinkKind::Stdout {
        rt.spawn(signals::progress(metrics.clone()));
    }
    let mut output = sink::open(
        &cfg.sink,
        &cfg.group,
        &cfg.data_dir,
        rt.handle(),
        metrics.clone(),
    )?;
    let settings = LoopSettings {
        exit_at_end: cfg.exit_at_end,
        poll_interval: cfg.poll_interval,
        commit_every: COMMIT_EVERY,
    };
    let result = match &cfg.source {
        Source::File(data_dir) => FileMember::join(data_dir, &cfg.group, cfg.from_beginning)
            .and_then(|m| main_loop::run(m, output.as_mut(), &settings, &stop, &metrics)),
        Source::Kafka(q) => KafkaMember::join(&cfg.group, cfg.from_beginning, q)
            .and_then(|m| main_loop::run(m, output.as_mut(), &settings, &stop, &metrics)),
    };
    drop(output);
    if cfg.sink.kind != SinkKind::Stdout {
        tracing::info!(
            sent = metrics.sent.get(),
            replayed = metrics.replayed.get(),
            dead_lettered = metrics.dead_lettered.get(),
            retried = metrics.retried.get(),
            "consumer stopped"
        );
    }
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}
