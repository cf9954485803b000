//! The dead-letter file: samples a store refused for good (a 4xx other
//! than 429 for that very sample), one JSON line each with the store's
//! reason, appended and synced before the offset after them is committed,
//! so a refused sample is never silently gone.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use crate::sink::Sample;

pub struct DeadLetters {
    path: PathBuf,
    file: Mutex<File>,
}

#[derive(Serialize)]
struct Entry<'a> {
    partition: u32,
    offset: u64,
    // The sample in the shape of `consume`'s JSON lines.
    name: &'a str,
    value: crate::record::Value,
    #[serde(rename = "type")]
    kind: crate::record::MetricType,
    tags: BTreeMap<&'a str, &'a str>,
    timestamp: i64,
    sink: &'a str,
    /// The HTTP status, or none for a sample refused before sending.
    status: Option<u16>,
    reason: &'a str,
    /// When it was written, ms since the epoch.
    at: u64,
}

impl DeadLetters {
    /// Appends to `path` (`<data-dir>/dead-letter/<group>.jsonl`, see
    /// [`crate::data_dir`]), creating its directory.
    pub fn open(path: &Path) -> std::io::Result<DeadLetters> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(DeadLetters {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends and syncs one line per sample.
    pub fn write(
        &self,
        partition: u32,
        samples: &[Sample],
        sink: &str,
        status: Option<u16>,
        reason: &str,
    ) -> std::io::Result<()> {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut text = Vec::new();
        for s in samples {
            let entry = Entry {
                partition,
                offset: s.offset,
                name: s.name(),
                value: s.value,
                kind: s.kind,
                tags: s
                    .labels()
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect(),
                timestamp: s.timestamp,
                sink,
                status,
                reason,
                at,
            };
            serde_json::to_writer(&mut text, &entry)?;
            text.push(b'\n');
        }
        let mut f = crate::sync::lock(&self.file);
        f.write_all(&text)?;
        f.sync_data()
    }
}
