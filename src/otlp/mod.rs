//! OTLP/HTTP metrics bodies (`ExportMetricsServiceRequest`, protobuf or
//! JSON) to the metrics this service stores. Pure functions; the HTTP
//! handler (`http::otlp`) maps the errors to statuses (415, 413, 400) and
//! the refusals to `partial_success`.
//!
//! The message types are `opentelemetry-proto`'s, generated from
//! OpenTelemetry's own `.proto` files. Protobuf bodies decode with prost.
//! JSON bodies go through our own serde layer (`json/`) into the same
//! types, because the crate's `with-serde` derive does not follow the OTLP
//! JSON mapping (checked against opentelemetry-proto 0.31's source): it
//! reads `asInt`, `count`, `bucketCounts` and the time fields of exponential
//! histograms and summaries only as JSON numbers (OTLP writes 64-bit
//! integers as strings), the other time fields only as strings,
//! `NaN`/`Infinity` not at all, and it requires every field of an exemplar,
//! exponential histogram or summary point. (Like any serde derive, ours
//! also reads a nested message written as an array of its fields in order;
//! no OTLP sender writes that, and the request itself must be an object.)
//!
//! # Encodings ([`encoding_of`])
//! `Content-Type: application/x-protobuf` or `application/json` (media
//! type case-insensitive, parameters such as `charset` ignored); anything
//! else, or none, is a 415. The answer is in the request's encoding.
//!
//! # JSON (the OTLP JSON mapping, read leniently where it costs nothing)
//! - Field names are lowerCamelCase (`resourceMetrics`, `timeUnixNano`);
//!   unknown fields are ignored, as the spec requires; `null` is the default.
//! - 64-bit integers (`timeUnixNano`, `asInt`, `count`, `bucketCounts`,
//!   `intValue`, …) are decimal strings, and are also taken as JSON numbers
//!   (exact: a number over 2^53 is not rounded). Other numbers may be
//!   strings too, as the protobuf JSON mapping allows.
//! - Doubles are numbers, or the strings `"NaN"`, `"Infinity"`, `"-Infinity"`
//!   (`"NaN"` is read as Prometheus' NaN, stored as `"NaN"`; a protobuf
//!   NaN keeps its bits, so Python's `float('nan')` is stored as
//!   `"NaN:0x7ff8000000000000"`, see `batch::value`).
//! - Enums (`aggregationTemporality`) are integers; their names
//!   (`"AGGREGATION_TEMPORALITY_DELTA"`) are taken too.
//! - `bytesValue` is base64 (standard or URL-safe alphabet); trace and span
//!   ids of exemplars are hex (exemplars are not stored, see below).
//! - More than one of `gauge`, `sum`, `histogram`, `exponentialHistogram`,
//!   `summary` in one metric is an error, as it is for a protobuf oneof.
//!
//! # Whole-request errors ([`decode`] returns `Err`, a 400)
//! The body is not the encoding's `ExportMetricsServiceRequest`: prost's
//! message (truncated, garbage, a string that is not UTF-8, nesting over
//! prost's 100 levels), or serde_json's with the path of the field
//! (`resourceMetrics[0].scopeMetrics[0].metrics[1].sum.dataPoints[0].asInt:
//! …`; JSON nested over 128 levels is one of these). An empty protobuf
//! body is an empty request (200, nothing stored); an empty JSON body is not
//! JSON (400).
//!
//! # What is stored
//! One stored metric per number point, several per histogram or summary
//! point:
//!
//! | OTLP | stored name | type |
//! |---|---|---|
//! | Gauge | `<name>` | gauge |
//! | Sum, monotonic | `<name>` | counter |
//! | Sum, not monotonic (UpDownCounter) | `<name>` | gauge |
//! | Histogram | `<name>_bucket{le=…}` (cumulative, with `le="+Inf"` = count), `<name>_sum`, `<name>_count` | histogram |
//! | ExponentialHistogram | the same `le` series (below) | histogram |
//! | Summary | `<name>{quantile=…}`, `<name>_sum`, `<name>_count` | summary |
//!
//! - **Names** are kept as sent: dots and units are not rewritten, no
//!   `_total` is added (Prometheus 3 takes UTF-8 names the same way). A
//!   name is non-empty, at most [`MAX_NAME_LEN`] bytes *with* the longest
//!   suffix its type adds (`_bucket`, `_count`), and has no control
//!   character. `description`, `unit` and `metadata` are not stored.
//! - **Delta temporality** is stored as sent (each value is the change over
//!   its interval, not a running total) with the tag
//!   `otel_temporality="delta"` on every series of the metric, so no
//!   consumer mistakes it for a cumulative one. Cumulative metrics carry no
//!   such tag. `AGGREGATION_TEMPORALITY_UNSPECIFIED` (0) is invalid in OTLP:
//!   the metric's points are refused.
//! - **Values**: `as_int` is stored as an exact integer, `as_double` as a
//!   float; NaN and ±Inf are values (stored as `"NaN"`, `"+Inf"`, `"-Inf"`).
//!   Bucket counts and `_count` are exact unsigned integers. A histogram
//!   without `sum` has no `_sum` series. `min`, `max` and exemplars are not
//!   stored. A point flagged `NO_RECORDED_VALUE` is stored, every series of
//!   it, with Prometheus' staleness marker (`"StaleNaN"`), as Prometheus'
//!   own OTLP receiver does.
//! - **`le` and `quantile`** are written as the shortest decimal that reads
//!   back to the same f64 (`0.005`, `1`, `250`), in exponent form past 24
//!   characters (`1e300`), and `+Inf`.
//! - **Exponential histograms** become cumulative `le` buckets: negative
//!   buckets (most negative first, `le` = −2^(i·2^−scale)), then the zero
//!   bucket (`le` = `zero_threshold`), then positive buckets (`le` =
//!   2^((i+1)·2^−scale)), then `+Inf` = count. Only buckets that hold
//!   something are written (a skipped `le` has the count of the one below
//!   it, so nothing is lost).
//! - **Tags** come from, least specific first: resource attributes (keys as
//!   sent, e.g. `service.name`), the scope as `otel_scope_name` and
//!   `otel_scope_version` (when non-empty) and its attributes as
//!   `otel_scope_<key>`, then the point's attributes. On a clash the more
//!   specific wins: a point attribute over a scope one over a resource one.
//!   Then `le`/`quantile` and `otel_temporality`, which no attribute may
//!   take (the point is refused).
//! - **Attribute values**: strings as they are (empty included), booleans
//!   `true`/`false`, integers in decimal, doubles as `le` above (NaN,
//!   `+Inf`, `-Inf`), bytes as base64, arrays and kvlists as compact JSON
//!   (`["a",1,true]`, `{"k":"v"}`; doubles that are not finite as strings),
//!   an empty value as `""`.
//! - **Timestamps**: `time_unix_nano` is stored in milliseconds as
//!   `timestamp`, and whole as `timestamp_ns` when it has digits below the
//!   millisecond (as for line protocol); 0 (unset) means the time of receipt.
//!   `start_time_unix_nano`, when set, becomes `created_timestamp` (ms) on
//!   sums, histograms and summaries (gauges have no start).
//!
//! # Per-point rules (the point is refused, the rest of the request kept)
//! A refused point counts once in [`Refused::points`] whatever number of
//! series it would have made. Reasons say where and what:
//! `resource_metrics[0].scope_metrics[1].metrics[2] "http.duration"
//! data_points[0]: bucket_counts has 3 entries for 4 explicit_bounds`.
//! Only the first [`MAX_REASONS`] are kept, each under [`MAX_REASON_LEN`]
//! bytes. A metric-wide problem (name, temporality, an attribute of the
//! resource or scope) refuses all the points it covers, with one reason.
//! - Attribute keys are non-empty, at most [`MAX_KEY_LEN`] bytes (with their
//!   prefix), without control characters, and unique within their list;
//!   values are at most [`MAX_VALUE_LEN`] bytes written out, and nested at
//!   most [`MAX_DEPTH`] arrays or kvlists deep; at most [`MAX_TAGS`] tags
//!   after merging.
//! - `time_unix_nano` is at most [`MAX_FUTURE_MS`] past the time of receipt.
//! - A number point has `as_int` or `as_double` (unless flagged
//!   `NO_RECORDED_VALUE`).
//! - Histogram: at most [`MAX_BOUNDS`] `explicit_bounds`, `bucket_counts`
//!   has one entry more (or both are empty), the bounds are finite and
//!   strictly increasing, and the bucket counts add up to `count`.
//! - Exponential histogram: `scale` in [`MIN_SCALE`]`..=`[`MAX_SCALE`] (the
//!   spec's range), at most [`MAX_EXP_BUCKETS`] buckets a side, every
//!   non-empty bucket's bound a finite non-zero f64, `zero_threshold`
//!   finite and not negative and below the positive buckets, and
//!   `zero_count` plus the bucket counts equal to `count`.
//! - Summary: every quantile in `0..=1`.
//!
//! - The request stores at most [`MAX_SERIES`] metrics: the points past
//!   that are refused.
//!
//! A metric with no data at all is noted in the reasons (a warning: there
//! is no point to refuse). When points were refused and none kept, the
//! handler answers 400 with the same message (the spec's "bad data"), not
//! a partial success.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;

// Whole-request errors are cut as `POST /metrics` errors are: prost names
// every message on the way down, which for a deeply nested body is kilobytes.
use crate::batch::shorten_message as shorten;
pub use crate::batch::MAX_ERROR_LEN;
use crate::record::Metric;

pub mod answer;
mod attrs;
mod convert;
mod exponential;
mod json;
mod points;
#[cfg(test)]
mod tests;

pub use answer::{export_response, status_body, Status};

/// Longest stored metric name, in bytes (suffix included).
pub const MAX_NAME_LEN: usize = 255;
/// Longest tag key, in bytes (prefix included).
pub const MAX_KEY_LEN: usize = 255;
/// Longest tag value, in bytes, as written out.
pub const MAX_VALUE_LEN: usize = 4096;
/// Most tags from attributes a point may have after merging.
pub const MAX_TAGS: usize = 64;
/// Deepest nesting of arrays and kvlists in an attribute value.
pub const MAX_DEPTH: usize = 8;
/// How far past the time of receipt a point's time may be: 10 minutes.
pub const MAX_FUTURE_MS: u64 = 10 * 60 * 1000;
/// The exponential histogram scales the OTLP spec allows.
pub const MIN_SCALE: i32 = -10;
pub const MAX_SCALE: i32 = 20;
/// Most buckets on one side (positive or negative) of an exponential
/// histogram point (the SDKs' default is 160).
pub const MAX_EXP_BUCKETS: usize = 1024;
/// Most `explicit_bounds` a histogram point may have.
pub const MAX_BOUNDS: usize = 1024;
/// Most metrics one request may store, about what a 1 MiB remote_write
/// body can carry: an exponential histogram bucket costs one byte on the
/// wire and makes a stored metric of a few hundred, so without a cap a
/// small body could make gigabytes.
pub const MAX_SERIES: usize = 100_000;
/// How many reasons [`Refused::reasons`] keeps.
pub const MAX_REASONS: usize = 10;
/// Longest reason, in bytes.
pub const MAX_REASON_LEN: usize = 300;

/// How a request body (and its answer) is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// The encoding a `Content-Type` header names; `Err` is a 415's message.
pub fn encoding_of(content_type: Option<&str>) -> Result<Encoding, String> {
    let header = content_type.unwrap_or_default();
    let media = header.split(';').next().unwrap_or_default().trim();
    if media.eq_ignore_ascii_case("application/x-protobuf") {
        Ok(Encoding::Protobuf)
    } else if media.eq_ignore_ascii_case("application/json") {
        Ok(Encoding::Json)
    } else {
        Err(format!(
            "unsupported Content-Type {:?}: OTLP/HTTP takes application/x-protobuf or \
             application/json",
            cut(header, 100)
        ))
    }
}

/// A decoded request: what to store and what was refused.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Every stored metric, in the order of the request.
    pub metrics: Vec<Metric<'static>>,
    /// Data points kept (a histogram point is one, whatever it makes).
    pub points: usize,
    pub refused: Refused,
}

/// What was refused, with the first reasons.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refused {
    /// Data points refused: `partial_success.rejected_data_points`.
    pub points: usize,
    /// Reasons noted, kept or not (warnings included).
    pub noted: usize,
    /// The first [`MAX_REASONS`], each under [`MAX_REASON_LEN`] bytes.
    pub reasons: Vec<String>,
}

impl Refused {
    /// Nothing refused and nothing to warn about.
    pub fn is_empty(&self) -> bool {
        self.points == 0 && self.noted == 0
    }

    /// Counts `points` refused for one reason, formatted only while there is
    /// room for it (a request of 100,000 bad points formats ten).
    fn note(&mut self, points: usize, reason: impl FnOnce() -> String) {
        self.points += points;
        self.noted += 1;
        if self.reasons.len() < MAX_REASONS {
            let mut r = reason();
            truncate(&mut r, MAX_REASON_LEN);
            self.reasons.push(r);
        }
    }

    /// `partial_success.error_message`: how many, then the first reasons.
    pub fn message(&self) -> String {
        let mut m = format!("{} data points refused", self.points);
        if self.noted > self.reasons.len() {
            m.push_str(&format!(
                " ({} reasons, the first {} shown)",
                self.noted,
                self.reasons.len()
            ));
        }
        if !self.reasons.is_empty() {
            m.push_str(": ");
            m.push_str(&self.reasons.join("; "));
        }
        m
    }
}

/// Decodes and validates a (decompressed) body; the rules are in the
/// module doc. `Err` only when the body as a whole cannot be decoded;
/// `now_ms` bounds the points' times.
pub fn decode(encoding: Encoding, bytes: &[u8], now_ms: u64) -> Result<Decoded, String> {
    let request = match encoding {
        Encoding::Protobuf => ExportMetricsServiceRequest::decode(bytes)
            .map_err(|e| shorten(format!("invalid OTLP protobuf body: {e}")))?,
        Encoding::Json => json::decode(bytes).map_err(shorten)?,
    };
    Ok(convert::convert(request, now_ms))
}

/// A float as `le`, `quantile` and attribute values write it: the
/// shortest decimal that reads back the same, exponent form when that is
/// long, and Prometheus' `+Inf`, `-Inf`, `NaN`.
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let plain = format!("{v}");
    if plain.len() > 24 {
        format!("{v:e}")
    } else {
        plain
    }
}

/// `s` cut to at most `max` bytes on a character boundary, `…` if cut.
fn cut(s: &str, max: usize) -> String {
    let mut out = s.to_string();
    if out.len() > max {
        truncate(&mut out, max);
        out.push('…');
    }
    out
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}
