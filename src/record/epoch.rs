//! The series ids of one partition of the embedded log, on the writer's
//! side: which series the current epoch has defined, and the next id.
//! Only the log's writer thread holds one (it alone knows the order of a
//! partition's records), and it tells it everything that would make a
//! reader's table differ from this one:
//!
//! - a record that will not be in the log after all (a failed append or
//!   sync): [`SeriesIds::reset`], so that no later record refers to a
//!   definition that is not there;
//! - a record that will start a new segment: [`SeriesIds::reset`] before
//!   assembling it, so that no record refers to a segment the retention
//!   may delete before it;
//! - a new process: a new [`SeriesIds`], whose first record starts an epoch.
//!
//! See `proto/record.proto` ("Series ids and epochs") for the reader's side.

use std::collections::HashMap;

use super::compact::{Encoded, TableWriter};
use super::RecordError;
use crate::hash::Fx;

/// Ids an epoch hands out at most; past them a new epoch starts. A reader
/// holds every series of its epoch (each partition's), so this bounds a
/// consumer's memory under series churn; readers refuse larger ids (it
/// bounds what a damaged record can make them allocate).
pub const MAX_IDS: u64 = 1 << 18;
/// Bytes of definitions an epoch remembers at most (the writer's memory
/// per partition); past them a new epoch starts.
pub const MAX_DEF_BYTES: usize = 16 << 20;

/// Definitions with one hash, each with its id.
type SameHash = Vec<(Box<[u8]>, u64)>;

#[derive(Default)]
pub struct SeriesIds {
    /// By definition hash: the definitions with that hash and their ids.
    known: HashMap<u64, SameHash, Fx>,
    /// The last id handed out (ids start at 1).
    last_id: u64,
    def_bytes: usize,
    /// The offset of the epoch's first record; None: the next record
    /// starts one.
    start: Option<u64>,
}

impl SeriesIds {
    pub fn new() -> SeriesIds {
        SeriesIds::default()
    }

    /// Forgets the epoch: the next record starts a new one.
    pub fn reset(&mut self) {
        self.known.clear();
        self.last_id = 0;
        self.def_bytes = 0;
        self.start = None;
    }

    /// Whether the next record starts a new epoch.
    pub fn is_new(&self) -> bool {
        self.start.is_none()
    }

    /// The record of `enc` that will be stored at `offset`: the ids of its
    /// series, with the definitions of those the epoch has not seen. The
    /// caller stores it at `offset`, or calls [`reset`](Self::reset).
    pub fn assemble(&mut self, offset: u64, enc: &Encoded) -> Result<Vec<u8>, RecordError> {
        let full =
            self.last_id + enc.series.len() as u64 > MAX_IDS || self.def_bytes > MAX_DEF_BYTES;
        let start = match self.start {
            Some(start) if !full && start <= offset => start,
            _ => {
                self.reset();
                self.start = Some(offset);
                offset
            }
        };
        let mut table = TableWriter::default();
        for key in &enc.series {
            let found = self
                .known
                .get(&key.hash)
                .and_then(|same| same.iter().find(|(def, _)| **def == *key.def));
            let id = match found {
                Some(&(_, id)) => id,
                None => {
                    self.last_id += 1;
                    let id = self.last_id;
                    table.define(id, &key.def);
                    self.def_bytes += key.def.len();
                    self.known
                        .entry(key.hash)
                        .or_default()
                        .push((key.def.clone(), id));
                    id
                }
            };
            table.id(id);
        }
        enc.finish(0, Some(offset - start), table)
    }
}
