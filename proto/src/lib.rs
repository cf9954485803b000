//! Prometheus remote_write messages as Rust types, shared by the server's
//! decoder and the load generator's encoder.
//!
//! Written by hand with `prost`'s derives instead of generated from the
//! upstream `.proto` files, so that neither those files nor `protoc` are
//! needed to build. Every field number and wire type was checked against
//! the upstream files named in each module; a change upstream has to be
//! mirrored here by hand.
//!
//! Only the messages remote_write sends are here (no read path).

#![deny(unsafe_code)]

pub mod record;
pub mod v1;
pub mod v2;
