//! The delivery machinery: everything between the consumer loop and a
//! store that does not depend on which store it is.

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
