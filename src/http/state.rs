//! What every request handler may touch, built once at start. It knows the
//! queue only as the `Queue` trait.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

use tokio::sync::Semaphore;

use crate::auth::Auth;
use crate::queue::{PartitionBy, Queue};
use crate::rate_limit::ClientLimiter;
use crate::remote_write::TypeCache;
use crate::status::Status;
use crate::telemetry::Telemetry;
use crate::tenant::Rules;

/// The settings every ingest endpoint shares (`--partition-by`,
/// `--rate-limit`, `--max-body`, `--max-inflight`).
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// What decides a message's partition (every protocol but `POST
    /// /metrics`, whose batches stay whole in their client's partition).
    pub partition_by: PartitionBy,
    /// Requests per second per client; 0 = off.
    pub rate_limit: u32,
    /// Largest body, before and after decompression.
    pub max_body: usize,
    /// Requests handled at once; more get 503.
    pub max_inflight: usize,
}

/// The tenant settings (`--tenant`, `--tenants-file`,
/// `--tenant-rate-limit`); the default: no rules, no per-tenant limit.
#[derive(Debug, Clone, Default)]
pub struct TenantSettings {
    pub rules: Rules,
    /// Requests per second per tenant; 0 = off.
    pub rate_limit: u32,
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
    /// Which client may use which tenant.
    pub tenant_rules: Rules,
    /// `--tenant-rate-limit`, keyed by tenant.
    pub tenant_limiter: Option<ClientLimiter>,
    pub tenant_rate_limit: u32,
    /// The status page's figures (`GET /api/status`), set once by whoever
    /// starts the server; unset, the endpoint answers 503.
    pub status: OnceLock<Arc<Status>>,
}

impl App {
    pub fn new(
        queue: Arc<dyn Queue>,
        auth: Auth,
        settings: Settings,
        telemetry: Arc<Telemetry>,
    ) -> Arc<App> {
        App::with_tenants(queue, auth, settings, TenantSettings::default(), telemetry)
    }

    /// [`App::new`] with tenant rules and a per-tenant rate limit.
    pub fn with_tenants(
        queue: Arc<dyn Queue>,
        auth: Auth,
        settings: Settings,
        tenants: TenantSettings,
        telemetry: Arc<Telemetry>,
    ) -> Arc<App> {
        Arc::new(App {
            queue,
            auth,
            limiter: ClientLimiter::new(settings.rate_limit),
            rate_limit: settings.rate_limit,
            telemetry,
            max_body: settings.max_body,
            partition_by: settings.partition_by,
            inflight: Semaphore::new(settings.max_inflight.max(1)),
            shutting_down: AtomicBool::new(false),
            remote_write_types: TypeCache::default(),
            tenant_rules: tenants.rules,
            tenant_limiter: ClientLimiter::new(tenants.rate_limit),
            tenant_rate_limit: tenants.rate_limit,
            status: OnceLock::new(),
        })
    }
}
