//! Protobuf to [`Decoded`], one function per version, sharing the label
//! and point rules (in the module doc).

use std::collections::HashMap;
use std::sync::Arc;

use prompb::v1::metric_metadata::MetricType as TypeV1;
use prompb::v2::metadata::MetricType as TypeV2;
use prompb::v2::Histogram;
use prompb::{v1, v2};
use prost::Message;

use super::labels::{self, NAME};
use super::{
    exemplar, family_for, histogram, Decoded, Exemplar, Family, Kind, Refused, Sample, ValidSeries,
    Version, MAX_FUTURE_MS, MAX_HELP_LEN, MAX_NAME_LEN, PROTOBUF, PROTO_V1, PROTO_V2,
};

/// Decodes and validates a decompressed body (rules in the module doc).
/// `Err` only when the body as a whole is unusable; `now_ms` bounds
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
        let family = Family {
            kind: TypeV1::try_from(m.r#type).ok().and_then(kind_of_v1),
            unit: text(&m.unit, MAX_NAME_LEN),
            help: text(&m.help, MAX_HELP_LEN),
        };
        if !family.is_empty() && labels::metric_name_ok(&m.metric_family_name) {
            families.insert(m.metric_family_name.clone(), family.clone());
            out.metadata.push((m.metric_family_name, family));
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
        let carried = Carried {
            samples: samples.len(),
            histograms: histograms.len(),
            exemplars: exemplars.len(),
        };
        let name = match labels::check(pairs()) {
            Ok(name) => name,
            Err(problem) => {
                carried.refuse_series(&mut out.refused, || {
                    format!("series {}: {problem}", describe())
                });
                continue;
            }
        };
        let family = family_for(name, &families).cloned().unwrap_or_default();
        let mut points = Points::new(now_ms, &mut out.refused, describe);
        let samples = points.samples(samples.iter().map(|s| Sample {
            value: s.value,
            timestamp_ms: s.timestamp,
            start_timestamp_ms: None,
        }));
        let histograms = points.histograms(histograms.into_iter().map(histogram::from_v1));
        let exemplars = points.exemplars(exemplars.iter().map(|e| {
            let pairs = e.labels.iter().map(|l| (l.name.as_str(), l.value.as_str()));
            (exemplar::labels(pairs), e.value, e.timestamp)
        }));
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
        out.keep(
            ValidSeries {
                name,
                labels,
                kind: family.kind,
                unit: family.unit,
                help: family.help,
                samples,
                histograms,
                exemplars,
            },
            &carried,
        );
    }
    Ok(out)
}

/// A unit or help text as remembered: None for the empty string, cut to
/// `max` bytes on a character boundary.
fn text(s: &str, max: usize) -> Option<Arc<str>> {
    (!s.is_empty()).then(|| Arc::from(&s[..labels::boundary(s, max)]))
}

fn decode_v2(bytes: &[u8], now_ms: i64) -> Result<Decoded, String> {
    let v2::Request {
        symbols,
        timeseries,
    } = request_v2(bytes)?;
    let mut out = Decoded::default();
    let mut texts = Texts {
        symbols: &symbols,
        made: HashMap::new(),
    };
    out.series.reserve(timeseries.len());
    for series in timeseries {
        series_v2(series, &mut texts, now_ms, &mut out);
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

/// 2.0's unit and help symbols as shared strings, each made once per
/// request (every series of a family refers to the same ones).
struct Texts<'s> {
    symbols: &'s [String],
    made: HashMap<u32, Arc<str>>,
}

impl Texts<'_> {
    /// The symbol `r` (checked to be in the table); None for an empty one.
    fn get(&mut self, r: u32) -> Option<Arc<str>> {
        let s = self.symbols.get(r as usize).filter(|s| !s.is_empty())?;
        Some(
            self.made
                .entry(r)
                .or_insert_with(|| Arc::from(s.as_str()))
                .clone(),
        )
    }
}

/// One 2.0 series into `out`: its metadata, and its points if its labels
/// pass; refused and counted otherwise.
fn series_v2(series: v2::TimeSeries, texts: &mut Texts<'_>, now_ms: i64, out: &mut Decoded) {
    let symbols = texts.symbols;
    let symbol = |r: u32| symbols.get(r as usize).map(String::as_str);
    // A ref past the table prints as "?" (only in a reason).
    let pairs = || {
        series
            .labels_refs
            .chunks_exact(2)
            .map(|p| (symbol(p[0]).unwrap_or("?"), symbol(p[1]).unwrap_or("?")))
    };
    let describe = || labels::describe(pairs());
    let carried = Carried {
        samples: series.samples.len(),
        histograms: series.histograms.len(),
        exemplars: series.exemplars.len(),
    };
    let metadata = series.metadata.unwrap_or_default();
    let name = match refs_v2(&series, &metadata, symbols).and_then(|()| labels::check(pairs())) {
        Ok(name) => name,
        Err(problem) => {
            carried.refuse_series(&mut out.refused, || {
                format!("series {}: {problem}", describe())
            });
            return;
        }
    };
    let kind = TypeV2::try_from(metadata.r#type).ok().and_then(kind_of_v2);
    let unit = texts.get(metadata.unit_ref);
    let help = texts.get(metadata.help_ref);
    let family = Family {
        kind,
        unit: unit.as_ref().map(|u| bounded(u, MAX_NAME_LEN)),
        help: help.as_ref().map(|h| bounded(h, MAX_HELP_LEN)),
    };
    // Series of one family usually come together: one entry for them.
    if !family.is_empty() && out.metadata.last().is_none_or(|(last, _)| last != name) {
        out.metadata.push((name.to_owned(), family));
    }
    // The deprecated per-series created timestamp (spec rc.3) stands in
    // for a point's own start timestamp where that is 0.
    let created = Some(series.created_timestamp).filter(|&t| t != 0);
    let start = |st: i64| Some(st).filter(|&t| t != 0).or(created);
    let mut points = Points::new(now_ms, &mut out.refused, describe);
    let samples = points.samples(series.samples.iter().map(|s| Sample {
        value: s.value,
        timestamp_ms: s.timestamp,
        start_timestamp_ms: start(s.start_timestamp),
    }));
    let histograms = points.histograms(series.histograms.into_iter().map(|mut h| {
        h.start_timestamp = start(h.start_timestamp).unwrap_or(0);
        h
    }));
    let exemplars = points.exemplars(series.exemplars.iter().map(|e| {
        (
            exemplar_labels_v2(&e.labels_refs, symbols),
            e.value,
            e.timestamp,
        )
    }));
    let labels = pairs()
        .filter(|(n, _)| *n != NAME)
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    out.keep(
        ValidSeries {
            name: name.to_owned(),
            labels,
            kind,
            unit,
            help,
            samples,
            histograms,
            exemplars,
        },
        &carried,
    );
}

/// `s`, or a copy cut to `max` bytes on a character boundary.
fn bounded(s: &Arc<str>, max: usize) -> Arc<str> {
    let end = labels::boundary(s, max);
    if end == s.len() {
        s.clone()
    } else {
        Arc::from(&s[..end])
    }
}

/// A 2.0 exemplar's labels: refs whole and in the table, then the rules
/// of [`exemplar::labels`].
fn exemplar_labels_v2(refs: &[u32], symbols: &[String]) -> Result<Vec<(String, String)>, String> {
    if !refs.len().is_multiple_of(2) {
        return Err(format!("labels_refs has an odd length ({})", refs.len()));
    }
    let symbol = |r: u32| {
        symbols
            .get(r as usize)
            .map(String::as_str)
            .ok_or_else(|| format!("label ref {r} out of range ({} symbols)", symbols.len()))
    };
    let pairs = refs
        .chunks_exact(2)
        .map(|p| Ok((symbol(p[0])?, symbol(p[1])?)))
        .collect::<Result<Vec<_>, String>>()?;
    exemplar::labels(pairs.into_iter())
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
struct Carried {
    samples: usize,
    histograms: usize,
    exemplars: usize,
}

impl Carried {
    fn any(&self) -> bool {
        self.samples + self.histograms + self.exemplars > 0
    }

    fn refuse_series(&self, refused: &mut Refused, reason: impl FnOnce() -> String) {
        refused.series += 1;
        refused.samples += self.samples;
        refused.histograms += self.histograms;
        refused.exemplars += self.exemplars;
        refused.note(reason);
    }
}

impl Decoded {
    /// Adds `series` if it kept a point; counts it refused if it carried
    /// some and kept none (its points were counted one by one).
    fn keep(&mut self, series: ValidSeries, carried: &Carried) {
        let kept = series.samples.len() + series.histograms.len() + series.exemplars.len();
        if kept == 0 {
            if carried.any() {
                self.refused.series += 1;
            }
            return;
        }
        self.samples += series.samples.len();
        self.histograms += series.histograms.len();
        self.exemplars += series.exemplars.len();
        self.series.push(series);
    }
}

/// Keeps the points of one series whose labels passed and refuses the
/// others, counted, with one reason per kind of point naming the first.
struct Points<'r, D> {
    /// The latest timestamp taken.
    latest: i64,
    refused: &'r mut Refused,
    describe: D,
}

impl<'r, D: Fn() -> String> Points<'r, D> {
    fn new(now_ms: i64, refused: &'r mut Refused, describe: D) -> Self {
        Points {
            latest: now_ms.saturating_add(MAX_FUTURE_MS),
            refused,
            describe,
        }
    }

    /// The timestamp rule every point obeys.
    fn timestamp(&self, ts: i64) -> Result<(), String> {
        if ts < 0 {
            Err(format!("timestamp {ts} ms, before 1970"))
        } else if ts > self.latest {
            Err(format!(
                "timestamp {ts} ms, more than 10 minutes in the future"
            ))
        } else {
            Ok(())
        }
    }

    fn samples(&mut self, samples: impl ExactSizeIterator<Item = Sample>) -> Vec<Sample> {
        let mut kept = Vec::with_capacity(samples.len());
        let mut first_bad = None;
        let mut bad = 0usize;
        for s in samples {
            if (0..=self.latest).contains(&s.timestamp_ms) {
                kept.push(s);
            } else {
                bad += 1;
                first_bad.get_or_insert(s.timestamp_ms);
            }
        }
        if let Some(ts) = first_bad {
            self.refused.samples += bad;
            let when = if ts < 0 {
                "before 1970"
            } else {
                "more than 10 minutes in the future"
            };
            let describe = &self.describe;
            self.refused.note(|| {
                format!(
                    "series {}: {bad} samples refused, the first at timestamp {ts} ms, {when}",
                    describe()
                )
            });
        }
        kept
    }

    fn histograms(
        &mut self,
        histograms: impl ExactSizeIterator<Item = Histogram>,
    ) -> Vec<Histogram> {
        let mut kept = Vec::with_capacity(histograms.len());
        let mut first_bad = None;
        let mut bad = 0usize;
        for mut h in histograms {
            match self
                .timestamp(h.timestamp)
                .and_then(|()| histogram::check(&mut h))
            {
                Ok(()) => kept.push(h),
                Err(why) => {
                    bad += 1;
                    first_bad.get_or_insert(why);
                }
            }
        }
        if let Some(why) = first_bad {
            self.refused.histograms += bad;
            let describe = &self.describe;
            self.refused.note(|| {
                format!(
                    "series {}: {bad} native histogram samples refused, the first: {why}",
                    describe()
                )
            });
        }
        kept
    }

    /// Exemplars as (labels or what is wrong with them, value, timestamp).
    fn exemplars(
        &mut self,
        exemplars: impl ExactSizeIterator<Item = (Result<Vec<(String, String)>, String>, f64, i64)>,
    ) -> Vec<Exemplar> {
        let mut kept = Vec::with_capacity(exemplars.len());
        let mut first_bad = None;
        let mut bad = 0usize;
        for (labels, value, ts) in exemplars {
            // 0 is "no timestamp" in both versions' messages.
            let checked = if ts == 0 { Ok(()) } else { self.timestamp(ts) };
            match checked.and(labels) {
                Ok(labels) => kept.push(Exemplar {
                    labels,
                    value,
                    timestamp_ms: (ts != 0).then_some(ts),
                }),
                Err(why) => {
                    bad += 1;
                    first_bad.get_or_insert(why);
                }
            }
        }
        if let Some(why) = first_bad {
            self.refused.exemplars += bad;
            let describe = &self.describe;
            self.refused.note(|| {
                format!(
                    "series {}: {bad} exemplars refused, the first: {why}",
                    describe()
                )
            });
        }
        kept
    }
}

fn kind_of_v1(t: TypeV1) -> Option<Kind> {
    match t {
        TypeV1::Counter => Some(Kind::Counter),
        TypeV1::Gauge | TypeV1::Info | TypeV1::Stateset => Some(Kind::Gauge),
        TypeV1::Histogram => Some(Kind::Histogram),
        TypeV1::Gaugehistogram => Some(Kind::GaugeHistogram),
        TypeV1::Summary => Some(Kind::Summary),
        TypeV1::Unknown => None,
    }
}

fn kind_of_v2(t: TypeV2) -> Option<Kind> {
    match t {
        TypeV2::Counter => Some(Kind::Counter),
        TypeV2::Gauge | TypeV2::Info | TypeV2::Stateset => Some(Kind::Gauge),
        TypeV2::Histogram => Some(Kind::Histogram),
        TypeV2::Gaugehistogram => Some(Kind::GaugeHistogram),
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
