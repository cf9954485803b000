//! The stores: what each one is sent and what its answers mean. A store is
//! a [`Sink`]: it never touches the network, and what it does (encode
//! samples, read an answer) is a pure function, so each store fits in one
//! file:
//!
//! - [`remote_write`]: Prometheus remote_write 1.0 (`--sink remote-write`);
//! - [`remote_write_v2`]: remote_write 2.0 (`--remote-write-version 2`);
//! - [`influx`]: InfluxDB line protocol (`--sink influx`);
//! - [`stdout`]: JSON lines (`--sink stdout`, the default). Not a [`Sink`]:
//!   writing a line cannot be refused or retried, so it is an
//!   [`Output`](super::Output) of its own, without the delivery machinery;
//! - [`wire`]: the protobuf both remote_write versions write by hand (a
//!   float's bits kept, the native histogram message).

pub mod influx;
pub mod remote_write;
pub mod remote_write_v2;
pub mod stdout;
#[cfg(test)]
pub mod test_points;
pub mod wire;

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};

use crate::sink::delivery::retry::{self, Answer, Decision};
use crate::sink::Sample;

/// A store's request for a batch: what the HTTP client sends.
pub struct Body {
    pub content_type: &'static str,
    /// `Content-Encoding`, if any.
    pub encoding: Option<&'static str>,
    /// Protocol headers beside the body (remote_write's version header).
    pub headers: &'static [(&'static str, &'static str)],
    pub bytes: Bytes,
    /// The batch's tenant as `--tenant-header` names it: set by the
    /// delivery, not the store (`crate::sink::delivery::tenant`).
    pub tenant: Option<(HeaderName, HeaderValue)>,
}

/// Why a batch cannot be made into a request body (a body past what
/// snappy can compress). It is never sent as anything else, an empty body
/// least of all: the delivery splits the batch like a refused one, and a
/// sample that cannot be encoded even alone goes to the dead-letter file
/// with this reason, so nothing is acknowledged that was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode the request: {0}")]
pub struct EncodeError(pub String);

/// A time-series store's protocol: encoding, and what its answers mean.
pub trait Sink: Send + Sync + 'static {
    /// A short name for logs and metrics (`remote-write`, `influx`).
    fn name(&self) -> &'static str;
    /// Why this store can never take this sample, judged before sending
    /// (InfluxDB has no NaN); it goes to the dead-letter file.
    fn refuse(&self, sample: &Sample) -> Option<String>;
    /// One request body holding `samples`, in their order; an error when
    /// the store's encoding cannot hold them.
    fn encode(&self, samples: &[Sample]) -> Result<Body, EncodeError>;
    /// What an answer to a request means: accept, retry or refuse. Every
    /// store today answers as HTTP says ([`retry::classify`]); a store whose
    /// statuses mean something else says so here.
    fn classify(&self, answer: &Answer) -> Decision {
        retry::classify(answer)
    }
    /// Whether a refusal of a single sample, with this status and answer
    /// body, can mean that the store already holds exactly that sample (a
    /// replay after a crash). Only trusted for samples that may have been
    /// delivered before (the delivery's sent marks and recent samples).
    fn already_stored(&self, status: u16, reason: &str) -> bool;
}
