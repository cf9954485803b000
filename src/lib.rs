//! metricstream: metrics in over HTTP, out through a durable partitioned queue.
//!
//! The data path, top to bottom: [`server`] (routes, shutdown) → [`ingest`]
//! (one request) → [`batch`] (decode + validate) → [`queue`] (the backend
//! trait) → [`log`] (the embedded on-disk log) → the ack back to the client.
//! [`consumer`] reads the queue back in consumer groups; [`bench`] is the
//! load generator.

pub mod auth;
pub mod batch;
pub mod bench;
pub mod connections;
pub mod consumer;
#[doc(hidden)]
pub mod fuzzing;
pub mod ingest;
pub mod limits;
pub mod log;
pub mod queue;
pub mod server;
pub mod telemetry;
pub mod write_timeout;
