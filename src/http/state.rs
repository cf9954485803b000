//! What every request handler may touch, built once at start. It knows the
//! queue only as the `Queue` trait.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::auth::Auth;
use crate::limits::ClientLimiter;
use crate::queue::{PartitionBy, Queue};
use crate::remote_write::types::TypeCache;
use crate::telemetry::Telemetry;

/// Per-request settings shared by every ingest endpoint.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// What decides a message's partition (remote_write; `POST /metrics`
    /// batches stay whole, in their client's partition).
    pub partition_by: PartitionBy,
    /// Requests per second per client; 0 = off.
    pub rate_limit: u32,
    /// Largest body, before and after decompression.
    pub max_body: usize,
    /// Requests handled at once; more get 503.
    pub max_inflight: usize,
}

pub struct App {
    pub queue: Arc<dyn Queue>,
    pub auth: Auth,
    pub limiter: Option<ClientLimiter>,
    pub rate_limit: u32,
    pub telemetry: Arc<Telemetry>,
    pub max_body: usize,
    pub partition_by: PartitionBy,
    pub inflight: Semaphore,
    pub shutting_down: AtomicBool,
    /// Metric types remote_write senders described in metadata requests.
    pub remote_write_types: TypeCache,
}

impl App {
    pub fn new(
        queue: Arc<dyn Queue>,
        auth: Auth,
        limits: Limits,
        telemetry: Arc<Telemetry>,
    ) -> Arc<App> {
        Arc::new(App {
            queue,
            auth,
            limiter: ClientLimiter::new(limits.rate_limit),
            rate_limit: limits.rate_limit,
            telemetry,
            max_body: limits.max_body,
            partition_by: limits.partition_by,
            inflight: Semaphore::new(limits.max_inflight.max(1)),
            shutting_down: AtomicBool::new(false),
            remote_write_types: TypeCache::default(),
        })
    }
}
