//! The dead-letter file: samples a store refused for good (a 4xx other
//! than 429 for that very sample), or that its protocol cannot encode,
//! one JSON line each with the store's reason, appended and synced before
//! the offset after them is committed, so a refused sample is never
//! silently gone.
//!
//! A line has the shape of `consume`'s JSON lines: a native histogram
//! point carries its `histogram` (the JSON shape of
//! [`crate::record::metric`]; `value` is its count), an exemplar its
//! `exemplar` labels (`value` and `timestamp` are the exemplar's), and
//! unit, help, start time and ns timestamp where stored; so a line says
//! whole what was refused, and a histogram is never read as a float.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use crate::record::metric::{ExemplarPoint, HistogramPoint};
use crate::sink::Sample;

pub struct DeadLetters {
    path: PathBuf,
    file: Mutex<File>,
}

#[derive(Serialize)]
struct Entry<'a> {
    partition: u32,
    offset: u64,
    /// The tenant of the sample's record, where it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<&'a str>,
    // The sample in the shape of `consume`'s JSON lines.
    name: &'a str,
    value: crate::record::Value,
    #[serde(rename = "type")]
    kind: crate::record::MetricType,
    tags: BTreeMap<&'a str, &'a str>,
    timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp_ns: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_timestamp: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    help: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    histogram: Option<HistogramPoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exemplar: Option<ExemplarPoint>,
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
            let extra = s.extra.as_deref();
            let entry = Entry {
                partition,
                offset: s.offset,
                tenant: s.tenant(),
                name: s.name(),
                value: s.value,
                kind: s.kind,
                tags: s
                    .labels()
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect(),
                timestamp: s.timestamp,
                timestamp_ns: extra.and_then(|e| e.timestamp_ns),
                created_timestamp: extra.and_then(|e| e.start_timestamp),
                unit: extra.and_then(|e| e.unit.as_deref()),
                help: extra.and_then(|e| e.help.as_deref()),
                histogram: s.histogram().map(|h| HistogramPoint(h.clone())),
                exemplar: s.exemplar().map(|labels| ExemplarPoint {
                    labels: labels.iter().cloned().collect(),
                }),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::metric::Metric;
    use crate::sink::store::test_points::{self as p, START, T};

    /// Each line says what the point was: a histogram carries itself in
    /// the record's JSON shape (it reads back as the same histogram), an
    /// exemplar its labels, a float neither.
    #[test]
    fn a_line_tells_histograms_and_exemplars_from_floats() {
        let dir = tempfile::tempdir().unwrap();
        let dead = DeadLetters::open(&dir.path().join("d/g.jsonl")).unwrap();
        let points = p::mixed();
        dead.write(3, &points, "influx", None, "why").unwrap();
        let text = std::fs::read_to_string(dead.path()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), points.len());
        for (s, (l, raw)) in points.iter().zip(lines.iter().zip(text.lines())) {
            assert_eq!(l["partition"], 3);
            assert_eq!(l["reason"], "why");
            assert_eq!(l["name"], s.name(), "{l}");
            assert_eq!(l["timestamp"], s.timestamp, "{l}");
            // The line reads back as the stored metric it came from.
            let m: Metric<'_> = serde_json::from_str(raw).unwrap();
            assert_eq!(m.value.as_f64().to_bits(), s.value.as_f64().to_bits());
            match (s.histogram(), s.exemplar()) {
                (Some(h), _) => {
                    let got = m.histogram.expect("a histogram").0;
                    // The histogram's time is the line's own.
                    let mut want = h.clone();
                    want.timestamp = 0;
                    assert_eq!(
                        prost::Message::encode_to_vec(&got),
                        prost::Message::encode_to_vec(&want)
                    );
                    assert_eq!(got.sum.to_bits(), h.sum.to_bits());
                    assert!(m.exemplar.is_none());
                }
                (None, Some(labels)) => {
                    let got = m.exemplar.expect("an exemplar").labels;
                    assert_eq!(got, labels.iter().cloned().collect());
                    assert!(m.histogram.is_none());
                }
                (None, None) => assert!(
                    l.get("histogram").is_none() && l.get("exemplar").is_none(),
                    "{l}"
                ),
            }
        }
        // Start time, unit and help where they were stored.
        assert_eq!(lines[0]["created_timestamp"], START);
        assert_eq!(lines[0]["help"], "Requests served.");
        assert_eq!(lines[1]["unit"], "seconds");
        assert_eq!(lines[1]["histogram"]["start_timestamp"], START);
        assert_eq!(lines[1]["timestamp"], T);
        assert!(lines[3].get("unit").is_none());
    }
}
