//! Prometheus remote_write 1.0 and 2.0 bodies: which version a request is,
//! snappy, protobuf, validation ([`decode`]), and the stored metrics of a
//! decoded request ([`metrics_of`], `metrics.rs`). The HTTP handler maps
//! the errors to statuses (415, 413, 400).
//!
//! Stored: float samples, native histogram samples (integer and float,
//! exponential and custom buckets), exemplars, and the series' type, unit
//! and help, from either version. What is refused is refused alone (a
//! series, or one sample, histogram or exemplar of it), counted and given a
//! reason; the rest of the request is stored.
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
//!
//! Names follow the remote_write 2.0 spec ("Series Labels"), for both
//! versions: metric and label names are any UTF-8 (Prometheus 3 sends
//! OpenTelemetry's dotted names such as `http.server.duration` and
//! `service.name`), not empty, labels sorted by name and unique.
//! - 2.0 only: `labels_refs` has an even length, every ref is below
//!   `symbols.len()`, and so are the metadata `help_ref` and `unit_ref`.
//! - `__name__` is present and not empty.
//! - Every name, `__name__`'s value included, is at most [`MAX_NAME_LEN`]
//!   bytes and has no control character (`char::is_control`: C0, DEL, C1).
//!   That is the one rule beyond the spec: a newline, tab or escape in a
//!   name cannot be stored in every store `consume` writes to (InfluxDB's
//!   line protocol has no escape for a newline in a measurement or tag
//!   key), and would act on the terminal that prints a reason or
//!   `consume`'s output.
//! - Names beginning with `__` are reserved by the spec for system use, and
//!   are stored as sent: Prometheus 3 sends `__type__` and `__unit__` with
//!   its type-and-unit-labels feature, and refusing them would lose every
//!   series of such a sender. A name that is only `__` is a name too.
//! - Label names, `__name__` included, are strictly increasing by bytes:
//!   otherwise `labels not sorted`, or `duplicate label "job"` for equal
//!   neighbours.
//! - No label value is empty (the spec forbids it: an empty value means the
//!   label is absent) and none is over [`MAX_VALUE_LEN`] bytes.
//! - At most [`MAX_LABELS`] labels besides `__name__`.
//!
//! # Per-point rules (the point is refused, the rest of the series kept)
//! One reason per series and kind of point, naming the first refused one.
//! - Timestamps (float samples, histograms, exemplars) are in
//!   `0..=now_ms + 10 min` ([`MAX_FUTURE_MS`]): earlier than 1970 or
//!   further in the future is refused. An exemplar's timestamp 0 means the
//!   sender did not give one (Prometheus' own decoders of both versions
//!   read it so: `HasTs: timestamp != 0`): it is stored without one, and
//!   the record writer stamps it with the receive time, as every metric
//!   without a timestamp.
//! - Every float value is kept: NaN (bit pattern included, so Prometheus'
//!   staleness marker `0x7ff0000000000002` survives) and ±Inf are values.
//! - Native histograms (`histogram.rs`) pass the structural checks of
//!   Prometheus' own `Histogram.Validate` and `FloatHistogram.Validate`:
//!   a schema of -4..=8 or -53 (custom buckets), spans that need as many
//!   buckets as sent, no negative bucket count, the count of an integer
//!   histogram equal to its buckets' (at least, with a NaN sum), custom
//!   bounds strictly increasing and not NaN with no explicit +Inf. Two more,
//!   so that what is stored reads back as sent: a known reset hint (the
//!   stored record names four), and a zero count of the same kind as the
//!   count, integer or float (Prometheus would read the other kind as 0,
//!   losing the zero bucket's observations). Counted in
//!   [`Refused::histograms`].
//! - Exemplars (`exemplar.rs`): label names not empty, without a control
//!   character and unique; names and values together at most
//!   [`MAX_EXEMPLAR_RUNES`] characters (Prometheus' and OpenMetrics'
//!   limit); 2.0 `labels_refs` even and in the symbol table. Counted in
//!   [`Refused::exemplars`].
//!
//! A series is returned when it keeps at least one point. One whose labels
//! are valid but that carries nothing at all is skipped silently (2.0
//! allows metadata-only series; their metadata still lands in
//! [`Decoded::metadata`]). One whose points were all refused counts in
//! [`Refused::series`].
//!
//! # Metadata
//! - Type: 2.0's per-series `Metadata.type`; 1.0's `metadata` entries (by
//!   family, matched to series names by [`family_for`]). Remembered per
//!   sender ([`TypeCache`]) for the series that come with no metadata of
//!   their own (no type, unit or help).
//!   Gauge histograms stay gauge histograms; info and stateset are stored
//!   as gauges. A series with no known type that carries native histograms
//!   is a histogram.
//! - Unit and help: 2.0's `unit_ref` and `help_ref` on every point of the
//!   series; 1.0's `unit` and `help` remembered per sender with the type
//!   and applied to the family's series. What is remembered is bounded:
//!   help texts are cut to [`MAX_HELP_LEN`] bytes and units to
//!   [`MAX_NAME_LEN`] (on a character boundary).
//! - Start (created) timestamps, 2.0 only: each sample's and histogram's
//!   `start_timestamp`; where that is 0, the deprecated per-series
//!   `created_timestamp` (rc.3 senders). 0 means absent.

use std::collections::HashMap;
use std::sync::Arc;

use prompb::v2::Histogram;

mod decode;
mod exemplar;
mod histogram;
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
/// Longest help text remembered, in bytes: Prometheus' own help texts are
/// a sentence or two (Kubernetes' longest about 300 bytes), and a sender's
/// families are held in memory between requests (see [`TypeCache`]).
pub const MAX_HELP_LEN: usize = 512;
/// Most characters (Unicode scalar values) in an exemplar's label names
/// and values together: OpenMetrics' limit, which Prometheus enforces
/// (`exemplar.ExemplarMaxLabelSetLength`).
pub const MAX_EXEMPLAR_RUNES: usize = 128;
/// How far past `now_ms` a timestamp may be: 10 minutes.
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
    pub series: Vec<ValidSeries>,
    pub refused: Refused,
    /// Family name → what the sender said of it, for the caller to
    /// remember per client: 1.0's metadata entries, and 2.0's per-series
    /// metadata (one entry for consecutive series of one name). Help and
    /// unit are cut to their bounds here. Entries that say nothing (unknown
    /// type, no unit, no help) or with a name `__name__` would refuse are
    /// left out.
    pub metadata: Vec<(String, Family)>,
    /// Float samples kept, over all of `series`.
    pub samples: usize,
    /// Native histogram samples kept.
    pub histograms: usize,
    /// Exemplars kept.
    pub exemplars: usize,
}

impl Decoded {
    /// Points kept: the metrics [`metrics_of`] makes of this request.
    pub fn points(&self) -> usize {
        self.samples + self.histograms + self.exemplars
    }
}

/// One valid series with at least one point kept.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidSeries {
    pub name: String,
    /// Without `__name__`, in the order sent (sorted by name).
    pub labels: Vec<(String, String)>,
    /// 2.0: the series' metadata type. 1.0: its family's ([`family_for`])
    /// in the same request's metadata. None when unknown.
    pub kind: Option<Kind>,
    /// 2.0: the series' metadata `unit_ref` and `help_ref` (the empty
    /// symbol: None), as sent. 1.0: its family's in the same request.
    pub unit: Option<Arc<str>>,
    pub help: Option<Arc<str>>,
    /// Float samples, in the order sent.
    pub samples: Vec<Sample>,
    /// Native histogram samples in the order sent, as 2.0's message (1.0's
    /// has the same fields, less the start timestamp). Checked, `count` and
    /// `zero_count` always set, `start_timestamp` as for [`Sample`].
    pub histograms: Vec<Histogram>,
    pub exemplars: Vec<Exemplar>,
}

/// A float sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// 2.0 only: the sample's `start_timestamp`, else the series'
    /// deprecated `created_timestamp`; None where both are 0 (absent).
    pub start_timestamp_ms: Option<i64>,
}

/// An exemplar of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    /// Sorted by name, unique.
    pub labels: Vec<(String, String)>,
    pub value: f64,
    /// None where the sender sent 0 (no timestamp).
    pub timestamp_ms: Option<i64>,
}

/// Prometheus' metric types as this service stores them: info and
/// stateset fold into gauge (Prometheus' text exposition shows both as
/// gauges), the others are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
}

/// What a sender said of a metric family: 1.0's `MetricMetadata`, 2.0's
/// per-series `Metadata`. Unit and help are shared, not copied, by the
/// series and points that carry them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Family {
    pub kind: Option<Kind>,
    pub unit: Option<Arc<str>>,
    pub help: Option<Arc<str>>,
}

impl Family {
    /// Whether it says anything.
    pub fn is_empty(&self) -> bool {
        self.kind.is_none() && self.unit.is_none() && self.help.is_none()
    }
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

/// The family of the series `name` among `families` (1.0 metadata keyed
/// by family name). Tried in order, the first match wins:
/// 1. `name` itself, whatever it says;
/// 2. `name` less `_bucket`, if that family is a (gauge) histogram;
/// 3. less `_sum` or `_count`, if a (gauge) histogram or a summary;
/// 4. less `_gsum` or `_gcount` (OpenMetrics gauge histograms), if a
///    (gauge) histogram;
/// 5. less `_total`, if a counter (OpenMetrics names the family without it);
/// 6. less `_created`, if a counter, histogram or summary.
///
/// Otherwise None.
pub fn family_for<'m>(name: &str, families: &'m HashMap<String, Family>) -> Option<&'m Family> {
    use Kind::{Counter, GaugeHistogram, Histogram, Summary};
    if let Some(family) = families.get(name) {
        return Some(family);
    }
    const SUFFIXES: [(&str, &[Kind]); 7] = [
        ("_bucket", &[Histogram, GaugeHistogram]),
        ("_sum", &[Histogram, GaugeHistogram, Summary]),
        ("_count", &[Histogram, GaugeHistogram, Summary]),
        ("_gsum", &[Histogram, GaugeHistogram]),
        ("_gcount", &[Histogram, GaugeHistogram]),
        ("_total", &[Counter]),
        ("_created", &[Counter, Histogram, Summary]),
    ];
    SUFFIXES.iter().find_map(|(suffix, kinds)| {
        let family = families.get(name.strip_suffix(suffix)?)?;
        family
            .kind
            .is_some_and(|kind| kinds.contains(&kind))
            .then_some(family)
    })
}
