//! The data directory's layout (`--data-dir`, `./data` by default): every
//! path under it is built here and only here, so this tree is the whole
//! of what metricstream keeps on disk.
//!
//! ```text
//! <data-dir>/
//! ├── .lock                      held by the one `serve` using this directory
//! ├── partitions                 the partition count, fixed at creation ("4")
//! ├── metrics-<p>/               partition p's log (Kafka's <topic>-<partition> naming;
//! │                              segments, index, hwm: see `log`)
//! ├── spill/                     `serve --queue kafka`: batches waiting for the brokers
//! │   ├── log/                   a log like a partition's
//! │   └── progress               the first offset not yet delivered
//! ├── groups/<group>/            a consumer group of the embedded log
//! │   ├── members/<id>           one per live member, flock'ed by it (.<id> while joining)
//! │   ├── locks/<p>              flock'ed by the member reading partition p
//! │   └── offsets/<p>            the next offset to read (.<p>.<id> while replaced)
//! ├── sink-state/<group>/<p>     the highest offset ever sent to the store (both queues)
//! └── dead-letter/<group>.jsonl  samples the store refused for good (both queues)
//! ```
//!
//! What each file means and how it is written is the business of the
//! module that owns it (named at each function); this module only names
//! them. It imports nothing of the crate, so every layer may ask it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// `<data-dir>/.lock`: `queue::file` holds its flock while serving, so two
/// servers never write one log.
pub fn serve_lock(data_dir: &Path) -> PathBuf {
    data_dir.join(".lock")
}

/// `<data-dir>/partitions`: how many partitions the directory was created with.
pub fn partitions_file(data_dir: &Path) -> PathBuf {
    data_dir.join("partitions")
}

/// Reads the partition count a data directory was created with (none
/// before the first `serve`).
pub fn stored_partitions(data_dir: &Path) -> io::Result<Option<u32>> {
    match fs::read_to_string(partitions_file(data_dir)) {
        Ok(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad partitions file")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Records the partition count of a new data directory (read back by
/// [`stored_partitions`]).
pub fn store_partitions(data_dir: &Path, partitions: u32) -> io::Result<()> {
    fs::write(partitions_file(data_dir), partitions.to_string())
}

/// The directory of one partition's log: `<data-dir>/metrics-<n>`, Kafka's
/// `<topic>-<partition>` naming.
pub fn partition_dir(data_dir: &Path, partition: u32) -> PathBuf {
    data_dir.join(format!("metrics-{partition}"))
}

/// `<data-dir>/spill`: the Kafka backend's spill (`queue::kafka::spill`).
pub fn spill_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("spill")
}

/// `<data-dir>/spill/log`: the spilled batches, a log like a partition's.
pub fn spill_log_dir(data_dir: &Path) -> PathBuf {
    spill_dir(data_dir).join("log")
}

/// `<data-dir>/spill/progress`, replaced durably (`log::replace_durably`
/// takes the directory and these two names).
pub const SPILL_PROGRESS: &str = "progress";
pub const SPILL_PROGRESS_TMP: &str = "progress.tmp";

/// `<spill-dir>/progress`, in the directory [`spill_dir`] named.
pub fn spill_progress(spill_dir: &Path) -> PathBuf {
    spill_dir.join(SPILL_PROGRESS)
}

/// `<data-dir>/groups/`: every consumer group of the embedded log, one
/// directory each (the status page lists them).
pub fn groups_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("groups")
}

/// `<data-dir>/groups/<group>/`: one consumer group of the embedded log
/// (`consumer::group` says how its files coordinate the members).
#[derive(Debug, Clone)]
pub struct GroupDir {
    dir: PathBuf,
}

impl GroupDir {
    pub fn new(data_dir: &Path, group: &str) -> GroupDir {
        GroupDir {
            dir: groups_dir(data_dir).join(group),
        }
    }

    /// The directories a member needs, to create when joining.
    pub fn subdirs(&self) -> [PathBuf; 3] {
        [self.members(), self.dir.join("locks"), self.offsets()]
    }

    /// `members/`: one file per live member.
    pub fn members(&self) -> PathBuf {
        self.dir.join("members")
    }

    /// `members/<id>`.
    pub fn member(&self, id: &str) -> PathBuf {
        self.members().join(id)
    }

    /// `members/.<id>`: a member's file while it is being locked, before
    /// it appears under its real name.
    pub fn joining_member(&self, id: &str) -> PathBuf {
        self.members().join(format!(".{id}"))
    }

    /// Whether a name in `members/` is a joining member's, not a member's.
    pub fn is_joining(name: &str) -> bool {
        name.starts_with('.')
    }

    /// `locks/<p>`: whoever holds its flock reads partition p.
    pub fn partition_lock(&self, partition: u32) -> PathBuf {
        self.dir.join("locks").join(partition.to_string())
    }

    /// `offsets/`: committed offsets, replaced durably.
    pub fn offsets(&self) -> PathBuf {
        self.dir.join("offsets")
    }

    /// `offsets/<p>`.
    pub fn offset(&self, partition: u32) -> PathBuf {
        self.offsets().join(Self::offset_name(partition))
    }

    /// `<p>`, the name of partition p's offset file in [`offsets`](Self::offsets).
    pub fn offset_name(partition: u32) -> String {
        partition.to_string()
    }

    /// `.<p>.<id>`: member `id`'s temporary file while it replaces
    /// partition p's offset (one per member: two never write one file).
    pub fn offset_tmp_name(partition: u32, member: &str) -> String {
        format!(".{partition}.{member}")
    }
}

/// `<data-dir>/sink-state/<group>/`: the group's sent marks (`sink::marks`).
pub fn sink_state_dir(data_dir: &Path, group: &str) -> PathBuf {
    data_dir.join("sink-state").join(group)
}

/// `<sink-state-dir>/<p>`: partition p's sent mark, in the directory
/// [`sink_state_dir`] named.
pub fn sent_mark(sink_state_dir: &Path, partition: u32) -> PathBuf {
    sink_state_dir.join(partition.to_string())
}

/// `<data-dir>/dead-letter/`: every group's dead-letter file.
pub fn dead_letter_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("dead-letter")
}

/// `<data-dir>/dead-letter/<group>.jsonl` (`sink::dead_letter`).
pub fn dead_letter_file(data_dir: &Path, group: &str) -> PathBuf {
    dead_letter_dir(data_dir).join(format!("{group}.jsonl"))
}

/// The group a file name in [`dead_letter_dir`] belongs to.
pub fn dead_letter_group(file_name: &str) -> Option<&str> {
    file_name.strip_suffix(".jsonl").filter(|g| !g.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout is the on-disk format: these paths never change.
    #[test]
    fn paths_are_the_documented_ones() {
        let d = Path::new("/d");
        assert_eq!(serve_lock(d), Path::new("/d/.lock"));
        assert_eq!(partitions_file(d), Path::new("/d/partitions"));
        assert_eq!(partition_dir(d, 3), Path::new("/d/metrics-3"));
        assert_eq!(spill_dir(d), Path::new("/d/spill"));
        assert_eq!(spill_log_dir(d), Path::new("/d/spill/log"));
        assert_eq!(
            spill_progress(&spill_dir(d)),
            Path::new("/d/spill/progress")
        );
        let g = GroupDir::new(d, "g");
        assert_eq!(g.member("7"), Path::new("/d/groups/g/members/7"));
        assert_eq!(g.joining_member("7"), Path::new("/d/groups/g/members/.7"));
        assert!(GroupDir::is_joining(".7") && !GroupDir::is_joining("7"));
        assert_eq!(g.partition_lock(2), Path::new("/d/groups/g/locks/2"));
        assert_eq!(g.offset(2), Path::new("/d/groups/g/offsets/2"));
        assert_eq!(GroupDir::offset_tmp_name(2, "7"), ".2.7");
        let state = sink_state_dir(d, "g");
        assert_eq!(state, Path::new("/d/sink-state/g"));
        assert_eq!(sent_mark(&state, 1), Path::new("/d/sink-state/g/1"));
        assert_eq!(
            dead_letter_file(d, "g"),
            Path::new("/d/dead-letter/g.jsonl")
        );
        assert_eq!(groups_dir(d), Path::new("/d/groups"));
        assert_eq!(dead_letter_group("g.jsonl"), Some("g"));
        assert_eq!(dead_letter_group(".jsonl"), None);
    }

    #[test]
    fn the_partition_count_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(stored_partitions(dir.path()).unwrap(), None);
        store_partitions(dir.path(), 6).unwrap();
        assert_eq!(stored_partitions(dir.path()).unwrap(), Some(6));
        fs::write(partitions_file(dir.path()), "six").unwrap();
        assert!(stored_partitions(dir.path()).is_err());
    }
}
