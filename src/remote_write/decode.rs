//! Protobuf to [`Decoded`], one function per version, sharing the label
//! and sample rules.

use std::collections::HashMap;

use prompb::v1::metric_metadata::MetricType as TypeV1;
use prompb::v2::metadata::MetricType as TypeV2;
use prompb::{v1, v2};
use prost::Message;

use super::labels::{self, NAME};
use super::{
    kind_for, Decoded, Kind, Refused, Series, Version, MAX_FUTURE_MS, PROTOBUF, PROTO_V1, PROTO_V2,
};

/// Decodes and validates a decompressed body (rules in the module doc).
/// `Err` only when the body as a whole is unusable; `now_ms` bounds sample
/// timestamps.
pub fn decode(version: Version, bytes: &[u8], now_ms: i64) -> Result<Decoded, String> {
    match version {
        Version::V1 => decode_v1(bytes, now_ms),
        Version::V2 => decode_v2(bytes, now_ms),
    }
}

fn decode_v1(bytes: &[u8], now_ms: i64) -> Result<Decoded, String> {
    let request = v1::WriteRequest::decode(bytes)
        .map_err(|e| format!("invalid remote write 1.0 body: {e}"))?;
    if request.timeseries.is_empty() && request.metadata.is_empty() && !bytes.is_empty() {
        return Err(wrong_version(Version::V1, bytes));
    }
    let mut out = Decoded::default();
    let mut families = HashMap::with_capacity(request.metadata.len());
    for m in request.metadata {
        let Some(kind) = TypeV1::try_from(m.r#type).ok().and_then(kind_of_v1) else {
            continue;
        };
        if labels::metric_name_ok(&m.metric_family_name) {
            families.insert(m.metric_family_name.clone(), kind);
            out.metadata.push((m.metric_family_name, kind));
        }
    }
    out.series.reserve(request.timeseries.len());
    for series in request.timeseries {
        let v1::TimeSeries {
            labels,
            samples,
            exemplars,
            histograms,
        } = series;
        let pairs = || labels.iter().map(|l| (l.name.as_str(), l.value.as_str()));
        let describe = || labels::describe(pairs());
        let counts = Counts {
            samples: samples.len(),
            histograms: histograms.len(),
            exemplars: exemplars.len(),
        };
        if let Err(problem) = labels::check(pairs()) {
            counts.refuse_series(&mut out.refused, || {
                format!("series {}: {problem}", describe())
            });
            continue;
        }
        let (kept, _) = keep(
            samples.iter().map(|s| (s.value, s.timestamp, 0)),
            &counts,
            now_ms,
            &mut out.refused,
            describe,
        );
        if kept.is_empty() {
            continue;
        }
        let mut name = String::new();
        let labels = labels
            .into_iter()
            .filter_map(|l| {
                if l.name == NAME {
                    name = l.value;
                    None
                } else {
                    Some((l.name, l.value))
                }
            })
            .collect();
        out.samples += kept.len();
        out.series.push(Series {
            kind: kind_for(&name, &families),
            name,
            labels,
            samples: kept,
            created_timestamp_ms: None,
        });
    }
    Ok(out)
}

fn decode_v2(bytes: &[u8], now_ms: i64) -> Result<Decoded, String> {
    let request = request_v2(bytes)?;
    let symbols = &request.symbols;
    let mut out = Decoded::default();
    out.series.reserve(request.timeseries.len());
    for series in &request.timeseries {
        series_v2(series, symbols, now_ms, &mut out);
    }
    Ok(out)
}

/// The 2.0 request in `bytes`, refused whole when it is not one or its
/// symbol table does not start with the empty string.
fn request_v2(bytes: &[u8]) -> Result<v2::Request, String> {
    let request =
        v2::Request::decode(bytes).map_err(|e| format!("invalid remote write 2.0 body: {e}"))?;
    if request.symbols.is_empty() && request.timeseries.is_empty() && !bytes.is_empty() {
        return Err(wrong_version(Version::V2, bytes));
    }
    match request.symbols.first() {
        Some(first) if !first.is_empty() => Err(format!(
            "symbols[0] is {:?}: remote write 2.0 requires the empty string first",
            labels::cut(first, 40)
        )),
        None if !request.timeseries.is_empty() => {
            Err("symbols is empty: remote write 2.0 requires the empty string first".into())
        }
        _ => Ok(request),
    }
}

/// One 2.0 series into `out`: its metadata, and its samples if its labels
/// pass; refused and counted otherwise.
fn series_v2(series: &v2::TimeSeries, symbols: &[String], now_ms: i64, out: &mut Decoded) {
    let symbol = |r: u32| symbols.get(r as usize).map(String::as_str);
    // A ref past the table prints as "?" (only in a reason).
    let pairs = || {
        series
            .labels_refs
            .chunks_exact(2)
            .map(|p| (symbol(p[0]).unwrap_or("?"), symbol(p[1]).unwrap_or("?")))
    };
    let describe = || labels::describe(pairs());
    let counts = Counts {
        samples: series.samples.len(),
        histograms: series.histograms.len(),
        exemplars: series.exemplars.len(),
    };
    let metadata = series.metadata.unwrap_or_default();
    let name = match refs_v2(series, &metadata, symbols).and_then(|()| labels::check(pairs())) {
        Ok(name) => name,
        Err(problem) => {
            counts.refuse_series(&mut out.refused, || {
                format!("series {}: {problem}", describe())
            });
            return;
        }
    };
    let kind = TypeV2::try_from(metadata.r#type).ok().and_then(kind_of_v2);
    if let Some(kind) = kind {
        // Series of one family usually come together: one entry for them.
        if out.metadata.last().is_none_or(|(last, _)| last != name) {
            out.metadata.push((name.to_owned(), kind));
        }
    }
    let (kept, start) = keep(
        series
            .samples
            .iter()
            .map(|s| (s.value, s.timestamp, s.start_timestamp)),
        &counts,
        now_ms,
        &mut out.refused,
        describe,
    );
    if kept.is_empty() {
        return;
    }
    out.samples += kept.len();
    out.series.push(Series {
        name: name.to_owned(),
        labels: pairs()
            .filter(|(n, _)| *n != NAME)
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect(),
        kind,
        samples: kept,
        created_timestamp_ms: Some(series.created_timestamp).filter(|&t| t != 0).or(start),
    });
}

/// Whether a 2.0 series' references into the symbol table (label pairs,
/// metadata help and unit) are whole and in range.
fn refs_v2(
    series: &v2::TimeSeries,
    metadata: &v2::Metadata,
    symbols: &[String],
) -> Result<(), String> {
    let in_range = |r: u32| (r as usize) < symbols.len();
    let refs = &series.labels_refs;
    if !refs.len().is_multiple_of(2) {
        Err(format!("labels_refs has an odd length ({})", refs.len()))
    } else if let Some(r) = refs.iter().copied().find(|&r| !in_range(r)) {
        Err(format!(
            "label ref {r} out of range ({} symbols)",
            symbols.len()
        ))
    } else if !in_range(metadata.help_ref) || !in_range(metadata.unit_ref) {
        Err(format!(
            "metadata help_ref {} or unit_ref {} out of range ({} symbols)",
            metadata.help_ref,
            metadata.unit_ref,
            symbols.len()
        ))
    } else {
        Ok(())
    }
}

/// What one series carried, for the refusal counters.
struct Counts {
    samples: usize,
    histograms: usize,
    exemplars: usize,
}

impl Counts {
    fn refuse_series(&self, refused: &mut Refused, reason: impl FnOnce() -> String) {
        refused.series += 1;
        refused.samples += self.samples;
        refused.histograms += self.histograms;
        refused.exemplars += self.exemplars;
        refused.note(reason);
    }
}

/// The float samples of a series whose labels passed that are kept, and
/// the first non-zero start timestamp among them; refuses and counts the
/// rest, histograms and exemplars included.
fn keep(
    samples: impl ExactSizeIterator<Item = (f64, i64, i64)>,
    counts: &Counts,
    now_ms: i64,
    refused: &mut Refused,
    describe: impl Fn() -> String,
) -> (Vec<(f64, i64)>, Option<i64>) {
    let latest = now_ms.saturating_add(MAX_FUTURE_MS);
    let mut kept = Vec::with_capacity(samples.len());
    let mut start = None;
    let mut first_bad = None;
    let mut bad = 0usize;
    for (value, ts, st) in samples {
        if (0..=latest).contains(&ts) {
            kept.push((value, ts));
            if start.is_none() && st != 0 {
                start = Some(st);
            }
        } else {
            bad += 1;
            first_bad.get_or_insert(ts);
        }
    }
    if let Some(ts) = first_bad {
        refused.samples += bad;
        let when = if ts < 0 {
            "before 1970"
        } else {
            "more than 10 minutes in the future"
        };
        refused.note(|| {
            format!(
                "series {}: {bad} samples refused, the first at timestamp {ts} ms, {when}",
                describe()
            )
        });
    }
    if counts.histograms > 0 {
        refused.histograms += counts.histograms;
        refused.note(|| {
            format!(
                "series {}: {} native histogram samples are not supported",
                describe(),
                counts.histograms
            )
        });
    }
    if counts.exemplars > 0 {
        refused.exemplars += counts.exemplars;
        refused.note(|| {
            format!(
                "series {}: {} exemplars are not supported",
                describe(),
                counts.exemplars
            )
        });
    }
    let carried = counts.samples + counts.histograms + counts.exemplars;
    if kept.is_empty() && carried > 0 {
        refused.series += 1;
    }
    (kept, start)
}

fn kind_of_v1(t: TypeV1) -> Option<Kind> {
    match t {
        TypeV1::Counter => Some(Kind::Counter),
        TypeV1::Gauge | TypeV1::Info | TypeV1::Stateset => Some(Kind::Gauge),
        TypeV1::Histogram | TypeV1::Gaugehistogram => Some(Kind::Histogram),
        TypeV1::Summary => Some(Kind::Summary),
        TypeV1::Unknown => None,
    }
}

fn kind_of_v2(t: TypeV2) -> Option<Kind> {
    match t {
        TypeV2::Counter => Some(Kind::Counter),
        TypeV2::Gauge | TypeV2::Info | TypeV2::Stateset => Some(Kind::Gauge),
        TypeV2::Histogram | TypeV2::Gaugehistogram => Some(Kind::Histogram),
        TypeV2::Summary => Some(Kind::Summary),
        TypeV2::Unspecified => None,
    }
}

/// The error for a non-empty body that decoded to nothing in the version
/// asked. The versions share no field number, so the other version's
/// decoder tells whether this is a body of it sent with the wrong type.
fn wrong_version(asked: Version, bytes: &[u8]) -> String {
    let n = bytes.len();
    match asked {
        Version::V1 => match v2::Request::decode(bytes) {
            Ok(r) if !r.symbols.is_empty() || !r.timeseries.is_empty() => format!(
                "a remote write 2.0 body (symbols and timeseries, fields 4 and 5) sent as 1.0: \
                 send Content-Type: {PROTOBUF};proto={PROTO_V2}"
            ),
            _ => format!(
                "no timeseries or metadata in a {n}-byte body: not a remote write 1.0 WriteRequest"
            ),
        },
        Version::V2 => match v1::WriteRequest::decode(bytes) {
            Ok(r) if !r.timeseries.is_empty() || !r.metadata.is_empty() => format!(
                "a remote write 1.0 body (timeseries and metadata, fields 1 and 3) sent as 2.0: \
                 send Content-Type: {PROTOBUF} or {PROTOBUF};proto={PROTO_V1}"
            ),
            _ => format!(
                "no symbols or timeseries in a {n}-byte body: not a remote write 2.0 Request"
            ),
        },
    }
}
