//! metricstream: metrics in over HTTP, out through a durable partitioned queue.
//!
//! The data path, top to bottom: [`http`] (accept loop, routes, one module
//! per protocol: request → admission → body) → [`batch`] (decode +
//! validate) → [`queue`] (the backend trait) → [`log`] (the embedded
//! on-disk log) or Kafka → the ack back to the client. [`consumer`] reads
//! the queue back in consumer groups. The load generator is the `loadgen`
//! crate.

// The one exception, `sync_file_range` in `log::segment`, is allowed on its
// own function with the reason there.
#![deny(unsafe_code)]

pub mod auth;
pub mod batch;
pub mod consumer;
pub mod data_dir;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod hash;
pub mod http;
pub mod influx;
pub mod lines_file;
pub mod log;
pub mod otlp;
pub mod queue;
pub mod rate_limit;
pub mod record;
pub mod remote_write;
pub mod sink;
pub mod status;
mod sync;
pub mod telemetry;
pub mod tenant;
pub mod tls;
