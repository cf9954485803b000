//! Consumer groups on the embedded log, coordinated through the file system
//! so that separate `consume` processes need no server between them.
//!
//! `<data-dir>/groups/<group>/` (paths from [`crate::data_dir::GroupDir`])
//! - `members/<id>`: one file per live member, flock'ed by it for its whole
//!   life. A member file nobody holds belongs to a dead member.
//! - `locks/<p>`: whoever holds the flock reads partition p. The kernel
//!   drops the lock when a process dies, so a survivor can take over at once
//!   and two members never read one partition at the same time.
//! - `offsets/<p>`: the next offset to read, replaced atomically
//!   (write temp, fsync, rename, fsync dir).
//!
//! Assignment is computed by every member alike: live members sorted by id
//! (join time first), member i of n reads the partitions p with p % n == i.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::data_dir::GroupDir;
use crate::log::replace_durably;

pub struct GroupMember {
    dir: GroupDir,
    id: String,
    partitions: u32,
    // Holding this file's lock is what makes this member alive.
    _alive: File,
}

impl GroupMember {
    pub fn join(data_dir: &Path, group: &str, partitions: u32) -> anyhow::Result<GroupMember> {
        if group.is_empty()
            || !group
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            anyhow::bail!("--group {group:?}: use letters, digits, '.', '_' and '-'");
        }
        let dir = GroupDir::new(data_dir, group);
        for sub in dir.subdirs() {
            fs::create_dir_all(sub)?;
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let id = format!("{nanos:024}-{}", std::process::id());
        // Lock before the file appears under its real name, so no other
        // member can ever see it unlocked and take it for dead.
        let tmp = dir.joining_member(&id);
        let alive = File::create(&tmp)?;
        alive.lock()?;
        fs::rename(&tmp, dir.member(&id))?;
        Ok(GroupMember {
            dir,
            id,
            partitions,
            _alive: alive,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Live members' ids, sorted; removes the files of dead ones.
    fn live_members(&self) -> io::Result<Vec<String>> {
        let mut live = Vec::new();
        for entry in fs::read_dir(self.dir.members())? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if GroupDir::is_joining(&name) {
                continue;
            }
            if name == self.id {
                live.push(name);
                continue;
            }
            let Ok(f) = OpenOptions::new().read(true).open(entry.path()) else {
                continue; // removed meanwhile
            };
            match f.try_lock() {
                Ok(()) => {
                    // Nobody holds it: that member is gone.
                    let _ = fs::remove_file(entry.path());
                }
                Err(_) => live.push(name),
            }
        }
        live.sort();
        Ok(live)
    }

    /// The partitions this member should read now.
    pub fn assignment(&self) -> io::Result<BTreeSet<u32>> {
        let live = self.live_members()?;
        let n = live.len().max(1) as u32;
        let me = live.iter().position(|m| *m == self.id).unwrap_or(0) as u32;
        Ok((0..self.partitions).filter(|p| p % n == me).collect())
    }

    /// Takes partition p's lock if it is free.
    pub fn try_claim(&self, p: u32) -> io::Result<Option<File>> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.partition_lock(p))?;
        match f.try_lock() {
            Ok(()) => Ok(Some(f)),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }

    pub fn committed(&self, p: u32) -> io::Result<Option<u64>> {
        match fs::read_to_string(self.dir.offset(p)) {
            Ok(s) => s.trim().parse().map(Some).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad offset file for partition {p}"),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Durably records that everything before `next` in p has been handled.
    pub fn commit(&self, p: u32, next: u64) -> io::Result<()> {
        let (name, tmp) = (
            GroupDir::offset_name(p),
            GroupDir::offset_tmp_name(p, &self.id),
        );
        let offsets = self.dir.offsets();
        replace_durably(&offsets, &name, &tmp, next.to_string().as_bytes())
    }

    /// Leaves the group: the member file goes, so others rebalance at once.
    pub fn leave(self) {
        let _ = fs::remove_file(self.dir.member(&self.id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_split_partitions_and_dead_ones_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let a = GroupMember::join(dir.path(), "g", 4).unwrap();
        assert_eq!(a.assignment().unwrap(), BTreeSet::from([0, 1, 2, 3]));
        let b = GroupMember::join(dir.path(), "g", 4).unwrap();
        let (sa, sb) = (a.assignment().unwrap(), b.assignment().unwrap());
        assert_eq!(sa.len() + sb.len(), 4);
        assert!(sa.is_disjoint(&sb));
        drop(b); // dies without leaving: its lock goes with it
        assert_eq!(a.assignment().unwrap(), BTreeSet::from([0, 1, 2, 3]));
    }

    #[test]
    fn a_partition_has_one_owner() {
        let dir = tempfile::tempdir().unwrap();
        let a = GroupMember::join(dir.path(), "g", 2).unwrap();
        let b = GroupMember::join(dir.path(), "g", 2).unwrap();
        let held = a.try_claim(1).unwrap().expect("free");
        assert!(b.try_claim(1).unwrap().is_none());
        drop(held);
        assert!(b.try_claim(1).unwrap().is_some());
    }

    #[test]
    fn offsets_commit_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let a = GroupMember::join(dir.path(), "g", 2).unwrap();
        assert_eq!(a.committed(0).unwrap(), None);
        a.commit(0, 42).unwrap();
        a.commit(0, 43).unwrap();
        assert_eq!(a.committed(0).unwrap(), Some(43));
        assert!(GroupMember::join(dir.path(), "bad/name", 2).is_err());
    }
}
