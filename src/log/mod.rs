//! The embedded on-disk log: one Kafka-style segmented log per partition.
//!
//! A partition directory holds segments `{base_offset:020}.log`, each with a
//! sparse offset index `{base_offset:020}.index`, plus `hwm` (8 bytes LE: one
//! past the last durable record, what readers may see) and a `clean-shutdown`
//! marker left by [`PartitionLog::close`].
//!
//! [`PartitionLog`] is the single writer; [`LogReader`] is a read-only view
//! that may live in another process and never looks past `hwm`.

mod config;
mod files;
mod index;
mod partition;
mod reader;
mod record;
mod recovery;
mod segment;

#[cfg(test)]
mod testutil;

pub use config::{LogConfig, SyncMode};
pub(crate) use files::replace_durably;
pub use partition::PartitionLog;
pub use reader::LogReader;
pub use record::{NewRecord, Record, RECORD_OVERHEAD};
pub use recovery::Recovery;
