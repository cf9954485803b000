//! What every partition worker of a store sink shares: the store's
//! protocol and address, the dead-letter file, the metrics and the
//! batching and retry settings.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::header::HeaderName;

use super::dead_letter::DeadLetters;
use super::http::Endpoint;
use crate::sink::metrics::ConsumeMetrics;
use crate::sink::store::Sink;

/// What every worker shares.
pub struct DeliveryContext {
    pub sink: Arc<dyn Sink>,
    pub endpoint: Arc<Endpoint>,
    pub dead: DeadLetters,
    pub metrics: Arc<ConsumeMetrics>,
    pub marks_dir: PathBuf,
    /// Requests in flight per partition (its series split among them).
    pub lanes: usize,
    pub max_samples: usize,
    pub max_bytes: usize,
    pub linger: Duration,
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// `--tenant-header`: the header each batch names its tenant in.
    pub tenant_header: Option<HeaderName>,
}
