//! Prometheus remote_write 1.0 and 2.0 bodies: which version a request is,
//! snappy, protobuf, validation ([`decode`]), and the stored metrics of a
//! decoded request ([`metrics_of`], `metrics.rs`). The HTTP handler maps
//! the errors to statuses (415, 413, 400).
//!
//! # Versions
//! [`version_of`] reads the `Content-Type`: absent or
//! `application/x-protobuf` (optionally `;proto=prometheus.WriteRequest`) is
//! 1.0; `application/x-protobuf;proto=io.prometheus.write.v2.Request` is
//! 2.0. Media type and parameters are matched case-insensitively, spaces
//! around `;` and `=` are ignored, as are parameters other than `proto`.
//!
//! # Whole-request errors ([`decode`] returns `Err`, a 400)
//! - the protobuf cannot be decoded (truncated, garbage, a string that is
//!   not UTF-8): prost's message;
//! - 2.0: `symbols` is non-empty and `symbols[0]` is not `""`, or `symbols`
//!   is empty while there are series (the spec requires the leading `""`);
//! - the wrong version for the body: the two messages share no field number
//!   (2.0 reserves 1–3, the 1.0 fields), so a body of the other version
//!   decodes as empty. A non-empty body that decodes to nothing is decoded
//!   as the other version: if that finds series, metadata or symbols the
//!   error says which version the body is and which `Content-Type` to send;
//!   otherwise the body is refused as holding nothing of the version asked.
//!
//! # Per-series rules (the series is refused, the rest of the request kept)
//! A refused series counts in [`Refused::series`], and all it carried in
//! the other counters. Reasons look like `series {__name__="x",job="y"}:
//! labels not sorted`; label values are cut so a reason stays under
//! [`MAX_REASON_LEN`] bytes, and only the first [`MAX_REASONS`] are kept.
//! - 2.0 only: `labels_refs` has an even length, every ref is below
//!   `symbols.len()`, and so are the metadata `help_ref` and `unit_ref`.
//! - `__name__` is present and non-empty, at most [`MAX_NAME_LEN`] bytes,
//!   and has no control character. Any other UTF-8 is accepted (Prometheus 3
//!   allows UTF-8 metric names such as OpenTelemetry's dotted ones).
//! - Other label names match `[a-zA-Z_][a-zA-Z0-9_]*` and are at most
//!   [`MAX_NAME_LEN`] bytes.
//! - Label names, `__name__` included, are strictly increasing by bytes:
//!   otherwise `labels not sorted`, or `duplicate label "job"` for equal
//!   neighbours.
//! - No label value is empty (Prometheus never sends one: an empty value
//!   means the label is absent) and none is over [`MAX_VALUE_LEN`] bytes.
//! - At most [`MAX_LABELS`] labels besides `__name__`.
//!
//! # Per-sample rules
//! - A float sample's timestamp is in `0..=now_ms + 10 min`
//!   ([`MAX_FUTURE_MS`]): earlier than 1970 or further in the future is
//!   refused, counted in [`Refused::samples`], with one reason per series
//!   naming the first such timestamp. The series keeps its other samples.
//! - Every value is kept: NaN (bit pattern included, so Prometheus'
//!   staleness marker `0x7ff0000000000002` survives) and ±Inf are values.
//! - Native histogram samples and exemplars are not supported: they are
//!   counted in [`Refused::histograms`] and [`Refused::exemplars`] with a
//!   reason, and a series keeps its float samples.
//!
//! A series is returned when it keeps at least one float sample. One whose
//! labels are valid but that carries nothing at all is skipped silently (2.0
//! allows metadata-only series; their type still lands in
//! [`Decoded::metadata`]). One whose samples, histograms and exemplars were
//! all refused counts in [`Refused::series`].

use std::collections::HashMap;

mod decode;
mod labels;
pub mod metrics;
#[cfg(test)]
mod tests;
pub mod types;

pub use decode::decode;
pub use metrics::metrics_of;
pub use types::TypeCache;

/// Most labels a series may have besides `__name__`.
pub const MAX_LABELS: usize = 64;
/// Longest metric or label name, in bytes.
pub const MAX_NAME_LEN: usize = 255;
/// Longest label value, in bytes.
pub const MAX_VALUE_LEN: usize = 4096;
/// How far past `now_ms` a sample's timestamp may be: 10 minutes.
pub const MAX_FUTURE_MS: i64 = 10 * 60 * 1000;
/// How many reasons [`Refused::reasons`] keeps.
pub const MAX_REASONS: usize = 10;
/// Longest reason, in bytes.
pub const MAX_REASON_LEN: usize = 200;

/// The remote_write protocol version of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `prometheus.WriteRequest`.
    V1,
    /// `io.prometheus.write.v2.Request`.
    V2,
}

const PROTOBUF: &str = "application/x-protobuf";
const PROTO_V1: &str = "prometheus.WriteRequest";
const PROTO_V2: &str = "io.prometheus.write.v2.Request";

/// The version a `Content-Type` header asks for; `Err` is the message of a
/// 415. No header, or an empty one, is 1.0 (as Prometheus' receiver does).
pub fn version_of(content_type: Option<&str>) -> Result<Version, String> {
    let Some(header) = content_type.filter(|h| !h.trim().is_empty()) else {
        return Ok(Version::V1);
    };
    let unsupported = || {
        format!(
            "unsupported Content-Type {:?}: remote write takes {PROTOBUF} (1.0) or \
             {PROTOBUF};proto={PROTO_V2} (2.0)",
            labels::cut(header, 100)
        )
    };
    let mut parts = header.split(';');
    let media = parts.next().unwrap_or_default().trim();
    if !media.eq_ignore_ascii_case(PROTOBUF) {
        return Err(unsupported());
    }
    let mut version = Version::V1;
    for param in parts {
        let Some((key, value)) = param.split_once('=') else {
            continue;
        };
        if !key.trim().eq_ignore_ascii_case("proto") {
            continue;
        }
        let value = value.trim().trim_matches('"');
        version = if value.eq_ignore_ascii_case(PROTO_V1) {
            Version::V1
        } else if value.eq_ignore_ascii_case(PROTO_V2) {
            Version::V2
        } else {
            return Err(unsupported());
        };
    }
    Ok(version)
}

/// Why a body could not be decompressed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Decompress {
    /// The snappy header declares more than the limit: a 413.
    #[error("snappy body declares {declared} bytes uncompressed, over the limit of {limit}")]
    TooLarge { declared: u64, limit: usize },
    /// Not snappy block format: a 400.
    #[error("invalid snappy body: {0}")]
    Invalid(String),
}

/// Undoes snappy's block format (remote_write does not use the framed
/// one). The declared length is checked against `max` before anything is
/// allocated, so a small body cannot make the server reserve gigabytes.
pub fn decompress(body: &[u8], max: usize) -> Result<Vec<u8>, Decompress> {
    let declared = match snap::raw::decompress_len(body) {
        Ok(n) => n,
        // Over snappy's own 4 GiB - 1 limit: still a length, just a big one.
        Err(snap::Error::TooBig { given, .. }) => {
            return Err(Decompress::TooLarge {
                declared: given,
                limit: max,
            })
        }
        Err(e) => return Err(Decompress::Invalid(e.to_string())),
    };
    if declared > max {
        return Err(Decompress::TooLarge {
            declared: declared as u64,
            limit: max,
        });
    }
    let mut out = vec![0; declared];
    let n = snap::raw::Decoder::new()
        .decompress(body, &mut out)
        .map_err(|e| Decompress::Invalid(e.to_string()))?;
    out.truncate(n);
    Ok(out)
}

/// A decoded request: what to store and what was refused.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    pub series: Vec<Series>,
    pub refused: Refused,
    /// Family name → type, for the caller to remember per client: 1.0's
    /// metadata entries, and 2.0's per-series metadata. Entries of unknown
    /// type or with a name `__name__` would refuse are left out.
    pub metadata: Vec<(String, Kind)>,
    /// Float samples kept, over all of `series`.
    pub samples: usize,
}

/// One valid series with at least one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    /// Without `__name__`, in the order sent (sorted by name).
    pub labels: Vec<(String, String)>,
    /// 2.0: the series' metadata type. 1.0: [`kind_for`] over the same
    /// request's metadata. None when unknown.
    pub kind: Option<Kind>,
    /// (value, timestamp in ms), in the order sent.
    pub samples: Vec<(f64, i64)>,
    /// 2.0 only: the deprecated per-series `created_timestamp` if set, else
    /// the first non-zero per-sample `start_timestamp` among the samples
    /// kept. 0 on the wire means absent.
    pub created_timestamp_ms: Option<i64>,
}

/// Prometheus' metric types, folded into the four this service stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
}

/// What was refused, with the first reasons.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refused {
    pub series: usize,
    pub samples: usize,
    pub histograms: usize,
    pub exemplars: usize,
    /// The first [`MAX_REASONS`], each under [`MAX_REASON_LEN`] bytes.
    pub reasons: Vec<String>,
}

impl Refused {
    /// Nothing was refused.
    pub fn is_empty(&self) -> bool {
        self.series == 0 && self.samples == 0 && self.histograms == 0 && self.exemplars == 0
    }

    /// Formats the reason only while there is room for it: a hostile
    /// request of 100,000 bad series formats ten.
    fn note(&mut self, reason: impl FnOnce() -> String) {
        if self.reasons.len() < MAX_REASONS {
            let mut r = reason();
            labels::truncate(&mut r, MAX_REASON_LEN);
            self.reasons.push(r);
        }
    }
}

/// The type of the series `name` given 1.0 metadata keyed by family name.
/// Tried in order, the first match wins:
/// 1. `name` itself, of any type;
/// 2. `name` less `_bucket`, if that family is a Histogram;
/// 3. less `_sum` or `_count`, if a Histogram or a Summary;
/// 4. less `_gsum` or `_gcount` (OpenMetrics gauge histograms), if a Histogram;
/// 5. less `_total`, if a Counter (OpenMetrics names the family without it);
/// 6. less `_created`, if a Counter, Histogram or Summary.
///
/// Otherwise None.
pub fn kind_for(name: &str, metadata: &HashMap<String, Kind>) -> Option<Kind> {
    use Kind::{Counter, Histogram, Summary};
    if let Some(&kind) = metadata.get(name) {
        return Some(kind);
    }
    const SUFFIXES: [(&str, &[Kind]); 7] = [
        ("_bucket", &[Histogram]),
        ("_sum", &[Histogram, Summary]),
        ("_count", &[Histogram, Summary]),
        ("_gsum", &[Histogram]),
        ("_gcount", &[Histogram]),
        ("_total", &[Counter]),
        ("_created", &[Counter, Histogram, Summary]),
    ];
    SUFFIXES.iter().find_map(|(suffix, kinds)| {
        let family = name.strip_suffix(suffix)?;
        metadata
            .get(family)
            .copied()
            .filter(|kind| kinds.contains(kind))
    })
}
