//! Consumer groups of the embedded log, read from their files in the data
//! directory (`data_dir::GroupDir`; how they are written is
//! `consumer::group`'s business): committed offsets, and which members and
//! partition owners are alive.
//!
//! Alive means "holds its flock": a member holds one on its member file
//! for its whole life, the reader of partition p one on `locks/<p>`. The
//! kernel lists every held flock with its inode in `/proc/locks`, so the
//! server can tell without taking any lock itself (taking one, even for an
//! instant, could make a member joining at that moment think a partition
//! taken). Inodes are matched without the device number: the one in
//! `/proc/locks` is the underlying file system's, which on overlay file
//! systems differs from what `stat` reports.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::data_dir::{self, GroupDir};

/// Inodes of every file some process holds a flock on.
pub fn locked_inodes() -> io::Result<HashSet<u64>> {
    Ok(parse_locks(&fs::read_to_string("/proc/locks")?))
}

/// `1: FLOCK  ADVISORY  WRITE 890 fe:00:6602779 0 EOF` → 6602779. Lines
/// `-> …` are waiters, not holders.
fn parse_locks(text: &str) -> HashSet<u64> {
    text.lines()
        .filter(|l| l.contains("FLOCK") && !l.contains("->"))
        .filter_map(|l| {
            let dev_inode = l.split_whitespace().nth(5)?;
            dev_inode.rsplit(':').next()?.parse().ok()
        })
        .collect()
}

/// One group's files, as found.
#[derive(Debug, Default)]
pub struct GroupFiles {
    pub name: String,
    /// Member files whose flock is held.
    pub members_alive: usize,
    /// Member files nobody holds (a member that died; the next member to
    /// rebalance removes them).
    pub members_dead: usize,
    /// Per partition: the committed next offset, and whether the
    /// partition's lock is held.
    pub partitions: Vec<(Option<u64>, bool)>,
}

/// Every group under `<data-dir>/groups/`, by name.
pub fn read(data_dir: &Path, partitions: u32) -> io::Result<Vec<GroupFiles>> {
    let root = data_dir::groups_dir(data_dir);
    let entries = match fs::read_dir(&root) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let locked = locked_inodes()?;
    let held =
        |path: &Path| -> bool { fs::metadata(path).is_ok_and(|m| locked.contains(&m.ino())) };
    let mut groups = Vec::new();
    for entry in entries {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let dir = GroupDir::new(data_dir, &name);
        let mut g = GroupFiles {
            name,
            ..GroupFiles::default()
        };
        match fs::read_dir(dir.members()) {
            Ok(members) => {
                for m in members {
                    let m = m?;
                    let file = m.file_name().to_string_lossy().into_owned();
                    if GroupDir::is_joining(&file) {
                        continue;
                    }
                    if held(&m.path()) {
                        g.members_alive += 1;
                    } else {
                        g.members_dead += 1;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        for p in 0..partitions {
            g.partitions
                .push((committed(&dir, p)?, held(&dir.partition_lock(p))));
        }
        groups.push(g);
    }
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(groups)
}

/// The committed next offset of partition p (none before the first commit).
fn committed(dir: &GroupDir, p: u32) -> io::Result<Option<u64>> {
    let path = dir.offset(p);
    match fs::read_to_string(&path) {
        Ok(s) => s.trim().parse().map(Some).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: not an offset: {:?}", path.display(), s.trim()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    #[test]
    fn proc_locks_lines_give_their_inodes() {
        let text = "1: FLOCK  ADVISORY  WRITE 890 fe:00:6602779 0 EOF\n\
                    1: -> FLOCK  ADVISORY  WRITE 891 fe:00:6602779 0 EOF\n\
                    2: POSIX  ADVISORY  READ 12 00:1f:55 0 EOF\n\
                    3: FLOCK  ADVISORY  READ 890 00:2a:17 0 EOF\n";
        assert_eq!(parse_locks(text), HashSet::from([6602779, 17]));
    }

    #[test]
    fn a_held_member_file_is_alive_and_offsets_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let g = GroupDir::new(dir.path(), "g");
        for sub in g.subdirs() {
            fs::create_dir_all(sub).unwrap();
        }
        let alive = File::create(g.member("1")).unwrap();
        alive.lock().unwrap();
        File::create(g.member("2")).unwrap();
        let lock = File::create(g.partition_lock(1)).unwrap();
        lock.lock().unwrap();
        fs::write(g.offset(1), "42").unwrap();
        let found = read(dir.path(), 2).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].members_alive, found[0].members_dead), (1, 1));
        assert_eq!(found[0].partitions, vec![(None, false), (Some(42), true)]);
        fs::write(g.offset(0), "x").unwrap();
        assert!(read(dir.path(), 2).is_err());
    }
}
