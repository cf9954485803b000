//! The HTTP layer. It knows the queue only as the `Queue` trait, and its
//! modules depend downward only:
//!
//! - [`server`]: the routes and one server's life (serve, ordered shutdown);
//! - [`connections`]: the accept loop (idle timeout, write timeout,
//!   connection cap);
//! - one module per endpoint family: [`json`] (`POST /metrics`),
//!   [`remote_write`] (`POST /api/v1/write`), [`influx`] (`POST
//!   /api/v2/write`, `POST /write`, `/ping`), [`admin`] (health, readiness,
//!   counters);
//! - [`otlp`] (`POST /v1/metrics`, OTLP/HTTP metrics);
//! - what every ingest endpoint shares: [`admit`] (client, rate, in-flight
//!   slot), [`body`] (framing, size limit, gzip), [`error`] (the refusal),
//!   [`parts`] (split by partition key, store, count);
//! - [`state`]: the shared [`App`] every handler reads.

pub mod admin;
pub mod admit;
pub mod body;
pub mod connections;
pub mod error;
pub mod influx;
pub mod json;
pub mod otlp;
pub mod parts;
pub mod remote_write;
pub mod server;
pub mod state;

pub use connections::{fit_fd_limit, listen};
pub use error::ApiError;
pub use server::{run, ServerConfig};
pub use state::{App, Settings};
