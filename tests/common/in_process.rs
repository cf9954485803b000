//! The whole server in this test process, on an ephemeral port: the same
//! `http::run` that `main` calls, with a channel as its shutdown signal
//! instead of SIGTERM, so a test can stop it and read its shutdown report.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use metricstream::auth::Auth;
use metricstream::http::{self, connections, App, ServerConfig, Settings};
use metricstream::log::{LogConfig, SyncMode};
use metricstream::queue::file::{FileQueue, FileQueueConfig};
use metricstream::queue::{AckMode, PartitionBy, Queue, ShutdownReport};
use metricstream::telemetry::Telemetry;
use tokio::sync::oneshot;

pub struct InProcess {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    stop: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<anyhow::Result<ShutdownReport>>>,
    rt: tokio::runtime::Runtime,
}

impl InProcess {
    /// An embedded-log server over `data_dir` with 4 partitions and the
    /// CLI's defaults, acking as `ack` says.
    pub fn start(data_dir: &Path, ack: AckMode) -> InProcess {
        InProcess::start_with(data_dir, ack, PartitionBy::Client)
    }

    /// The same, partitioning remote_write as `partition_by` says.
    pub fn start_with(data_dir: &Path, ack: AckMode, partition_by: PartitionBy) -> InProcess {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let telemetry = Arc::new(Telemetry::new().expect("telemetry"));
        let queue: Arc<dyn Queue> = {
            let _guard = rt.enter();
            Arc::new(
                FileQueue::open(
                    FileQueueConfig {
                        data_dir: data_dir.to_path_buf(),
                        partitions: 4,
                        ack,
                        log: LogConfig::default(),
                        queue_bytes: 32 << 20,
                        sync: SyncMode::Syncfs,
                        enqueue_timeout: Duration::from_millis(500),
                        retention_check: Duration::from_secs(30),
                        max_record_bytes: metricstream::queue::DEFAULT_MAX_RECORD_BYTES,
                    },
                    telemetry.clone(),
                )
                .expect("open the embedded log"),
            )
        };
        let settings = Settings {
            partition_by,
            rate_limit: 0,
            max_body: 1 << 20,
            max_inflight: 1024,
        };
        let app = App::new(queue, Auth::new(vec![]), settings, telemetry);
        let config = ServerConfig {
            request_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(10),
            connections: connections::Config {
                max_connections: 1000,
                idle_timeout: Duration::from_secs(30),
            },
        };
        let listener = {
            let _guard = rt.enter();
            http::listen("127.0.0.1:0".parse().expect("address")).expect("listen")
        };
        let addr = listener.local_addr().expect("local address");
        let (stop, stopped) = oneshot::channel::<()>();
        let served = rt.spawn(http::run(listener, app.clone(), config, async {
            let _ = stopped.await;
        }));
        InProcess {
            addr,
            app,
            stop: Some(stop),
            served: Some(served),
            rt,
        }
    }

    /// Shuts the server down as SIGTERM would and returns its report.
    pub fn stop(mut self) -> ShutdownReport {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let served = self.served.take().expect("served once");
        self.rt
            .block_on(served)
            .expect("server task")
            .expect("server run")
    }
}
