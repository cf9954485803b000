//! The load generator behind `metricstream bench`.
//!
//! It replays the C++ load test's traffic (same JSON shape, same headers)
//! against an ingest endpoint and reports what came back: throughput,
//! latency percentiles from an HDR histogram, and every failure by kind.
//!
//! Layout: [`BenchConfig`] → `schedule` (closed / open loop) → `runner`
//! (one task per client) → `client` (hyper, one request) → `outcome`
//! (success or which failure) → `stats` (per-task tallies) → `report`.
//! Bodies come pre-built from `payload` (JSON) or are stamped per request
//! by `remote_write`, `influx` and `otlp`; `progress` shows a live line.
//!
//! Flags and their parsing belong to the binary; this crate takes a plain
//! config so it can be driven from tests and other tools without clap.
//! The caller provides the multi-threaded tokio runtime.

#![deny(unsafe_code)]

mod config;

pub mod client;
pub mod influx;
pub mod otlp;
pub mod outcome;
pub mod payload;
pub mod progress;
pub mod remote_write;
pub mod report;
pub mod runner;
pub mod schedule;
pub mod stats;

use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use hyper::header::HeaderValue;

pub use config::{BenchConfig, Format, Tls};
pub use outcome::{FailureKind, Outcome};
pub use report::{Report, RunParams};

/// Runs the load described by `config`, prints the table to stdout (unless
/// `quiet`), writes `json` if asked, and returns the report. Failed requests
/// are reported, not returned as errors; errors mean the run itself could
/// not happen (bad config or URL, unresolvable host, unwritable JSON path).
pub async fn run(config: BenchConfig) -> anyhow::Result<Report> {
    config.check()?;
    let plan = schedule::Plan::from_config(&config);
    let target = client::Target::resolve(&config.url, config.tls.clone()).await?;
    let metrics = config.metrics_per_request as usize;
    let samples = config.samples_per_request as usize;
    let pool = match config.format {
        Format::Json => {
            payload::BodyPool::generate(payload::pool_size(metrics), metrics, config.gzip)?
        }
        Format::RemoteWrite => {
            // Each client stamps its own bodies; one trial here so that a
            // body that cannot be built stops the run before it starts.
            remote_write::RemoteWriteBodies::new(0, samples, config.series_per_request as usize)
                .next_body(remote_write::now_ms())?;
            payload::BodyPool::generate(1, 1, false)?
        }
        Format::Influx => {
            influx::InfluxBodies::new(0, samples, config.fields_per_line as usize, config.gzip)
                .next_body(influx::now_ns())?;
            payload::BodyPool::generate(1, 1, false)?
        }
        Format::Otlp => {
            otlp::OtlpBodies::new(0, samples, config.gzip).next_body(otlp::now_ns())?;
            payload::BodyPool::generate(1, 1, false)?
        }
    };
    let authorizations = authorizations(&config)?;
    let counters = Arc::new(progress::Counters::default());
    let load = runner::Load {
        plan,
        target,
        config: client::ClientConfig {
            format: config.format,
            keep_alive: config.keep_alive,
            gzip: config.gzip,
            timeout: config.timeout,
        },
        pool,
        format: config.format,
        samples_per_request: samples,
        series_per_request: config.series_per_request as usize,
        series_churn: config.series_churn,
        fields_per_line: config.fields_per_line as usize,
        authorizations,
        counters: Arc::clone(&counters),
    };

    let start = Instant::now();
    // A progress line is for a person watching; never in logs or pipes.
    let printer = (!config.quiet && std::io::stderr().is_terminal())
        .then(|| progress::Printer::start(Arc::clone(&counters), start));
    let result = runner::run_clients(load, start).await;
    if let Some(printer) = printer {
        printer.stop();
    }
    let (stats, elapsed) = result?;

    let report = Report::from_stats(&stats, elapsed, run_params(&config));
    if let Some(path) = &config.json {
        report.write_json(path)?;
    }
    if !config.quiet {
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(report.table().as_bytes())
            .and_then(|()| stdout.flush())
            .context("print report")?;
    }
    Ok(report)
}

/// `Bearer KEY` for everyone with --api-key, else `load_client_<i>` per
/// client as the C++ test did.
fn authorizations(config: &BenchConfig) -> anyhow::Result<Vec<HeaderValue>> {
    match &config.api_key {
        Some(key) => {
            let mut value = HeaderValue::from_str(&format!("Bearer {key}"))
                .context("--api-key contains characters not allowed in a header")?;
            value.set_sensitive(true);
            Ok(vec![value; config.clients as usize])
        }
        None => (0..config.clients)
            .map(|i| {
                HeaderValue::from_str(&format!("load_client_{i}"))
                    .context("build Authorization header")
            })
            .collect(),
    }
}

fn run_params(config: &BenchConfig) -> RunParams {
    RunParams {
        url: config.url.clone(),
        clients: config.clients,
        requests_per_client: config.duration.is_none().then_some(config.requests),
        duration_limit_secs: config.duration.map(|d| d.as_secs_f64()),
        rate: config.rate,
        metrics_per_request: config.metrics_per_request,
        format: (config.format != Format::Json).then(|| config.format.as_str().to_string()),
        samples_per_request: (config.format != Format::Json).then_some(config.samples_per_request),
        keep_alive: config.keep_alive,
        tls: config.tls.is_some(),
        interval_ms: u64::try_from(config.interval.as_millis()).unwrap_or(u64::MAX),
        gzip: config.gzip,
        auth: if config.api_key.is_some() {
            "bearer"
        } else {
            "load_client"
        }
        .to_string(),
        timeout_ms: u64::try_from(config.timeout.as_millis()).unwrap_or(u64::MAX),
    }
}
