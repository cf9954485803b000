//! Per partition, the highest offset ever handed to the store in a request
//! (written before the request goes out, kept across restarts in
//! `<data-dir>/sink-state/<group>/<partition>`).
//!
//! After a crash, or a request that got no answer, the records up to the
//! mark may already be in the store, and a store such as Prometheus
//! refuses a sample it already has as `out of order` (see
//! [`crate::sink::store::remote_write`]). Such a refusal counts as delivered only for a
//! sample at or below the mark it was uncertain about; above it, the
//! sample was never sent before and is dead-lettered like any refusal.
//!
//! The mark is one `pwrite` of a fixed-width number, without `fsync`: a
//! process killed at any point leaves either the old or the new value (the
//! kernel has it); only a power loss can lose the last marks, and then a
//! replayed sample may end in the dead-letter file rather than count as
//! already stored.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::data_dir::sent_mark;

pub struct Mark {
    file: File,
    value: Option<u64>,
}

const WIDTH: usize = 20;

impl Mark {
    pub fn open(dir: &Path, partition: u32) -> io::Result<Mark> {
        fs::create_dir_all(dir)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(sent_mark(dir, partition))?;
        let mut buf = [0u8; WIDTH];
        let n = file.read_at(&mut buf, 0)?;
        let value = std::str::from_utf8(&buf[..n])
            .ok()
            .and_then(|s| s.trim().parse().ok());
        Ok(Mark { file, value })
    }

    /// The highest offset ever sent, if any.
    pub fn get(&self) -> Option<u64> {
        self.value
    }

    /// Raises the mark to `offset` (never lowers it).
    pub fn raise(&mut self, offset: u64) -> io::Result<()> {
        if self.value.is_some_and(|v| v >= offset) {
            return Ok(());
        }
        let text = format!("{offset:>WIDTH$}");
        self.file.write_all_at(text.as_bytes(), 0)?;
        self.value = Some(offset);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_only_rise_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Mark::open(dir.path(), 3).unwrap();
        assert_eq!(m.get(), None);
        m.raise(1234).unwrap();
        m.raise(7).unwrap();
        assert_eq!(m.get(), Some(1234));
        m.raise(99_999).unwrap();
        drop(m);
        assert_eq!(Mark::open(dir.path(), 3).unwrap().get(), Some(99_999));
    }
}
