//! Sinks: what `metricstream consume` does with the records it reads.
//!
//! Two halves, one folder each:
//! - [`store`]: the stores, one file each: what a store is sent (a
//!   [`Sink`] encodes samples into a request [`store::Body`]) and what its
//!   answers mean, as pure functions (no network, no state).
//! - [`delivery`]: everything store-independent between the consumer loop
//!   and the store: workers, lanes, batching, the HTTP client, retries,
//!   splitting a refused batch, dead letters, acknowledgement.
//!
//! Beside them: [`sample`] and [`stored`] (a queue record decoded into
//! samples) and [`metrics`] (the consumer's own metrics, which the consumer
//! loops update too, so neither half owns them).
//!
//! # The data path, top to bottom
//! 1. The consumer loop hands each queue record of a partition, in offset
//!    order, to an [`Output`] (from [`open`]), and commits only the offsets
//!    it hands back as acknowledged.
//! 2. `--sink stdout`: [`store::stdout::Stdout`] writes JSON lines,
//!    acknowledged once written and flushed. Any other sink:
//!    [`delivery::pipeline::Pipeline`], a worker per partition.
//! 3. [`delivery::batcher`]: decodes the record into samples, puts each in
//!    its series' lane, cuts batches and has the store encode them
//!    ([`Sink::encode`]).
//! 4. [`delivery::lane`]: sends a batch ([`delivery::http`]), reads the
//!    answer with the store's retry policy ([`Sink::classify`],
//!    [`delivery::retry`]), backs off ([`delivery::backoff`]) and retries,
//!    or splits what was refused down to single samples for the
//!    dead-letter file.
//! 5. [`delivery::ack_tracker`]: a record is acknowledged once the store
//!    answered 2xx for every sample of it and of every record before it in
//!    that partition (or the sample was dead-lettered).
//!
//! # Order
//! One worker per partition; within it, `--in-flight` lanes, each with one
//! request in flight, a series always in the same lane (by hash, see
//! [`delivery::batcher`]): a lane's batches go one after the other. Both
//! partitioning modes of `serve` (`client`, `series`) keep a series in one
//! partition, so every series' samples reach the store in the order they
//! were queued. (A series sent by two different clients with
//! `--partition-by client` is in two partitions; the store sees the two
//! senders interleaved, as it would without metricstream.)

pub mod delivery;
pub mod metrics;
pub mod store;

use bytes::Bytes;

use crate::data_dir::{dead_letter_file, sink_state_dir};
pub use crate::record::Sample;

use crate::influx::Precision;
use delivery::context::DeliveryContext;
use delivery::{dead_letter, http, pipeline};
use store::{influx, remote_write, remote_write_v2, stdout, Sink};

/// Which output `consume` writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    Stdout,
    /// remote_write 1.0.
    RemoteWrite,
    /// remote_write 2.0.
    RemoteWriteV2,
    Influx,
}

/// What the consumer loops hand records to and take acknowledgements from.
pub trait Output {
    /// Whether `partition` can take a record now (else: hand it later).
    fn has_room(&mut self, partition: u32) -> anyhow::Result<bool>;
    /// Takes record `offset` of `partition` (records of a partition come in
    /// offset order), after [`has_room`](Output::has_room) said yes.
    fn submit(&mut self, partition: u32, offset: u64, value: Bytes) -> anyhow::Result<()>;
    /// Takes record `offset` of `partition` only to learn the series it
    /// defines, after [`has_room`](Output::has_room) said yes: records
    /// before the first one to deliver, from the start of its epoch (see
    /// [`crate::record::read`]). Nothing of it is delivered or acknowledged.
    fn learn(&mut self, partition: u32, offset: u64, value: Bytes) -> anyhow::Result<()>;
    /// (partition, next offset) for what was acknowledged since the last
    /// call: everything before `next` may be committed.
    fn acked(&mut self) -> anyhow::Result<Vec<(u32, u64)>>;
    /// The partition went to another member: stop, dropping what is not
    /// acknowledged (the new owner starts at the committed offset).
    fn release(&mut self, partition: u32);
    /// Shutdown: finishes or abandons what is in flight within the
    /// shutdown timeout; the last acknowledgements.
    fn close(&mut self) -> anyhow::Result<Vec<(u32, u64)>>;
}

/// How `consume` delivers (`--sink` and its flags).
#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub kind: SinkKind,
    pub url: Option<String>,
    pub auth: http::Auth,
    /// `--tls-*`: how to speak TLS to an `https://` URL.
    pub tls: crate::tls::client::TlsClientOptions,
    /// `--header K:V`.
    pub headers: Vec<(String, String)>,
    /// `--tenant-header NAME`: each batch names its tenant in this header.
    pub tenant_header: Option<String>,
    /// InfluxDB 1.x database or 2.x bucket, 2.x org, timestamp precision.
    pub influx_db: Option<String>,
    pub influx_org: Option<String>,
    pub influx_precision: Precision,
    /// Requests in flight per partition (`--in-flight`).
    pub in_flight: usize,
    pub max_samples: usize,
    pub max_bytes: usize,
    pub linger: std::time::Duration,
    pub request_timeout: std::time::Duration,
    pub retry_min: std::time::Duration,
    pub retry_max: std::time::Duration,
    pub shutdown_timeout: std::time::Duration,
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl Default for SinkConfig {
    fn default() -> SinkConfig {
        use std::time::Duration;
        SinkConfig {
            kind: SinkKind::Stdout,
            url: None,
            auth: http::Auth::None,
            tls: Default::default(),
            headers: Vec::new(),
            tenant_header: None,
            influx_db: None,
            influx_org: None,
            influx_precision: Precision::Milliseconds,
            in_flight: 4,
            max_samples: 2000,
            max_bytes: 4 << 20,
            linger: Duration::from_millis(100),
            request_timeout: Duration::from_secs(30),
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(10),
            metrics_listen: None,
        }
    }
}

/// The output `cfg` asks for. Store sinks put their dead-letter file in
/// `<data_dir>/dead-letter/<group>.jsonl` and their sent marks in
/// `<data_dir>/sink-state/<group>/`.
pub fn open(
    cfg: &SinkConfig,
    group: &str,
    data_dir: &std::path::Path,
    rt: &tokio::runtime::Handle,
    metrics: std::sync::Arc<metrics::ConsumeMetrics>,
) -> anyhow::Result<Box<dyn Output>> {
    let sink: std::sync::Arc<dyn Sink> = match cfg.kind {
        SinkKind::Stdout => return Ok(Box::new(stdout::Stdout::new())),
        SinkKind::RemoteWrite => std::sync::Arc::new(remote_write::RemoteWrite),
        SinkKind::RemoteWriteV2 => std::sync::Arc::new(remote_write_v2::RemoteWriteV2),
        SinkKind::Influx => std::sync::Arc::new(influx::Influx {
            precision: cfg.influx_precision,
        }),
    };
    let url = cfg
        .url
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("--sink {} needs --url", sink.name()))?;
    let url = match cfg.kind {
        SinkKind::Influx => influx::write_url(
            url,
            cfg.influx_db.as_deref(),
            cfg.influx_org.as_deref(),
            cfg.influx_precision,
        ),
        _ => url.to_string(),
    };
    let endpoint = rt.block_on(http::Endpoint::resolve_tls(
        &url,
        &cfg.auth,
        &cfg.headers,
        cfg.request_timeout,
        &cfg.tls,
    ))?;
    let tenant_header = cfg
        .tenant_header
        .as_deref()
        .map(|name| {
            hyper::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| anyhow::anyhow!("--tenant-header {name:?}: not a header name"))
        })
        .transpose()?;
    let dead = dead_letter::DeadLetters::open(&dead_letter_file(data_dir, group))?;
    tracing::info!(
        sink = sink.name(),
        url,
        tls = endpoint.tls.is_some(),
        dead_letters = %dead.path().display(),
        tenant_header = cfg.tenant_header.as_deref(),
        "delivering into a store"
    );
    let context = DeliveryContext {
        sink,
        endpoint: std::sync::Arc::new(endpoint),
        dead,
        metrics,
        marks_dir: sink_state_dir(data_dir, group),
        lanes: cfg.in_flight.max(1),
        max_samples: cfg.max_samples.max(1),
        max_bytes: cfg.max_bytes.max(1),
        linger: cfg.linger,
        retry_min: cfg.retry_min,
        retry_max: cfg.retry_max.max(cfg.retry_min),
        tenant_header,
    };
    Ok(Box::new(pipeline::Pipeline::new(
        rt.clone(),
        context,
        cfg.shutdown_timeout,
    )))
}
