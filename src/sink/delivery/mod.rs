//! The delivery machinery: everything between the consumer loop and a
//! store that does not depend on which store it is. Top to bottom:
//!
//! - [`pipeline`]: the [`Output`](crate::sink::Output) the consumer loops
//!   feed, one worker per partition on a tokio runtime;
//! - [`batcher`]: a partition's worker: decodes records into samples, puts
//!   each in its series' lane, cuts and encodes batches;
//! - [`lane`]: a lane's sender ([`lane::LaneSender`]): sends a batch, splits
//!   what the store refused, dead-letters what it refuses alone;
//! - [`http`]: the HTTP client that carries a batch and brings the answer;
//! - [`retry`]: what an answer means (accept, retry, refuse), a pure policy;
//!   [`backoff`]: how long to wait before trying again;
//! - [`marks`], [`recent`]: what may be in the store already (sent before a
//!   crash, or delivered lately), so a replay is not a refusal;
//! - [`tenant`]: a batch's tenant as a request header (`--tenant-header`);
//! - [`dead_letter`]: where refused samples go;
//! - [`ack_tracker`]: which records are delivered, so their offsets may be
//!   committed;
//! - [`context`]: what a store sink's workers share.

pub mod ack_tracker;
pub mod backoff;
pub mod batcher;
pub mod context;
pub mod dead_letter;
pub mod http;
pub mod lane;
pub mod marks;
pub mod pipeline;
pub mod recent;
pub mod retry;
pub mod tenant;
