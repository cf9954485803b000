// mimalloc: the request path allocates many small short-lived buffers;
// measured +12% durable requests/s over glibc malloc (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;

use metricstream::auth::Auth;
use metricstream::cli::{Cli, Command, QueueKind, ServeArgs};
use metricstream::consumer;
use metricstream::http::{self, App, Limits, ServerConfig};
use metricstream::log::LogConfig;
use metricstream::queue::file::{FileQueue, FileQueueConfig};
use metricstream::queue::kafka::{CreateTopic, KafkaQueue, KafkaQueueConfig};
use metricstream::queue::Queue;
use metricstream::telemetry::Telemetry;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("METRICSTREAM_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("metricstream: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let args: Vec<String> = std::env::args().collect();
    // Before clap and before any thread starts: it sets environment variables.
    metricstream::cli::apply_config_file(&args)?;
    let cli = Cli::parse_from(&args);
    match cli.command {
        Command::Serve(a) => serve(a),
        Command::Consume(a) => consumer::run(a).map(|()| ExitCode::SUCCESS),
        Command::Bench(a) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let report = rt.block_on(loadgen::run(a.into_config()))?;
            Ok(if report.failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

fn serve(a: ServeArgs) -> anyhow::Result<ExitCode> {
    let workers = a
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .thread_name("http-worker")
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let telemetry = Arc::new(Telemetry::new()?);
        let queue: Arc<dyn Queue> = match a.queue.queue {
            QueueKind::File => Arc::new(FileQueue::open(
                FileQueueConfig {
                    data_dir: a.queue.data_dir.clone(),
                    partitions: a.partitions,
                    ack: a.ack,
                    log: LogConfig {
                        segment_bytes: a.segment_bytes,
                        retention_bytes: (a.retention_bytes > 0).then_some(a.retention_bytes),
                        retention: (!a.retention.is_zero()).then_some(a.retention),
                        ..LogConfig::default()
                    },
                    queue_bytes: a.queue_bytes,
                    sync: a.sync,
                    enqueue_timeout: a.enqueue_timeout,
                    retention_check: std::time::Duration::from_secs(30),
                },
                telemetry.clone(),
            )?),
            QueueKind::Kafka => {
                Arc::new(KafkaQueue::open(kafka_config(&a)?, telemetry.clone()).await?)
            }
        };
        let mut keys = a.api_keys.clone();
        if let Some(file) = &a.api_keys_file {
            keys.extend(Auth::read_keys_file(file)?);
        }
        let app = App::new(
            queue,
            Auth::new(keys),
            Limits {
                rate_limit: a.rate_limit,
                max_body: a.max_body,
                max_inflight: a.max_inflight,
            },
            telemetry,
        );
        let listener =
            http::listen(a.listen).with_context(|| format!("listening on {}", a.listen))?;
        tracing::info!(
            queue = ?a.queue.queue,
            ack = ?a.ack,
            partitions = a.partitions,
            workers,
            data_dir = %a.queue.data_dir.display(),
            api_keys = app.auth.enabled(),
            "starting"
        );
        let config = ServerConfig {
            request_timeout: a.request_timeout,
            shutdown_timeout: a.shutdown_timeout,
            connections: http::connections::Config {
                max_connections: http::fit_fd_limit(a.max_connections),
                idle_timeout: a.idle_timeout,
            },
        };
        let report = http::run(listener, app, config, shutdown_signal()?).await?;
        Ok(if report.lost == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(3)
        })
    })
}

fn kafka_config(a: &ServeArgs) -> anyhow::Result<KafkaQueueConfig> {
    let brokers = a
        .queue
        .brokers
        .clone()
        .filter(|b| !b.trim().is_empty())
        .ok_or_else(|| anyhow::anyhow!("--queue kafka needs --brokers HOST:PORT[,HOST:PORT…]"))?;
    if a.delivery_timeout >= a.request_timeout {
        tracing::warn!(
            "--delivery-timeout ({:?}) is not below --request-timeout ({:?}): a durable request \
             may time out before Kafka's answer",
            a.delivery_timeout,
            a.request_timeout
        );
    }
    Ok(KafkaQueueConfig {
        brokers,
        topic: a.queue.topic.clone(),
        properties: a.queue.kafka_properties.clone(),
        ack: a.ack,
        create_topic: a.create_topic.then_some(CreateTopic {
            partitions: a.partitions,
            replication: a.replication_factor,
        }),
        enqueue_timeout: a.enqueue_timeout,
        delivery_timeout: a.delivery_timeout,
        connect_timeout: a.queue.connect_timeout,
        data_dir: a.queue.data_dir.clone(),
        spill_max_bytes: a.spill_max_bytes,
    })
}

/// Registers for SIGTERM and SIGINT now (so a signal that comes before the
/// future is first polled is not missed) and resolves on the first of them.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    })
}
