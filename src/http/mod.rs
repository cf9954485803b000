//! The HTTP layer. It knows the queue only as the `Queue` trait, and its
//! modules depend downward only:
//!
//! - [`server`]: the routes and one server's life (serve, ordered shutdown);
//! - [`connections`]: the accept loop (idle timeout, write timeout,
//!   connection cap);
//! - [`ingest`]: how a request is ingested, the one path every protocol
//!   takes (framing → the protocol's header checks → admission → body → one
//!   clock read → decode → parts → store → count → answer), over the small
//!   [`ingest::Ingest`] trait a protocol implements;
//! - one module per protocol, each its header checks, the call into its
//!   decoder and its answer's shape: [`json`] (`POST /metrics`),
//!   [`remote_write`] (`POST /api/v1/write`), [`influx`] (`POST
//!   /api/v2/write`, `POST /write`, `/ping`, `/query`), [`otlp`] (`POST
//!   /v1/metrics`); [`admin`] (health, readiness, counters); [`status`]
//!   (the live status page and `GET /api/status`);
//! - the steps of the path: [`admit`] (client, rate, in-flight slot),
//!   [`body`] (framing, size limit, gzip, snappy), [`parts`] (one message
//!   per partition, stored together), [`error`] (the refusal);
//! - [`state`]: the shared [`App`] every handler reads.

pub mod admin;
pub mod admit;
pub mod body;
pub mod connections;
pub mod error;
pub mod influx;
pub mod ingest;
pub mod json;
pub mod otlp;
pub mod parts;
pub mod remote_write;
pub mod server;
pub mod state;
pub mod status;

pub use connections::{fit_fd_limit, listen};
pub use error::ApiError;
pub use server::{run, run_tls, ServerConfig};
pub use state::{App, Settings, TenantSettings};
