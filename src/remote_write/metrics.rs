//! From a decoded request to stored metrics: one metric per float sample,
//! per native histogram sample and per exemplar, with the name, the labels
//! as tags, values and timestamps exactly as sent, and what the sender
//! said of the series (in this request, or in an earlier metadata request
//! remembered per sender): type (else `unknown`; `histogram` for a series
//! of native histograms), unit and help.

use std::borrow::Cow;
use std::collections::BTreeMap;

use prompb::v2::histogram::Count;
use prompb::v2::Histogram;

use super::types::TypeCache;
use super::{Decoded, Kind};
use crate::record::{ExemplarPoint, HistogramPoint, Metric, MetricType, Value};

/// The metrics of `decoded`, series by series in the order sent: its float
/// samples, then its histograms, then its exemplars. The request's
/// metadata is remembered for `client` first; a series that came with
/// nothing of its own (no type, unit or help) then takes what `client`
/// said of its family, in this request or an earlier one.
pub fn metrics_of<'a>(
    decoded: &'a mut Decoded,
    client: &str,
    types: &TypeCache,
) -> Vec<Metric<'a>> {
    types.remember(client, &decoded.metadata);
    described_earlier(decoded, client, types);
    let decoded: &'a Decoded = decoded;
    let mut metrics = Vec::with_capacity(decoded.points());
    for series in &decoded.series {
        let kind = match series.kind {
            Some(k) => Some(k),
            None if !series.histograms.is_empty() => Some(Kind::Histogram),
            None => None,
        };
        let tags: BTreeMap<_, _> = series
            .labels
            .iter()
            .map(|(k, v)| (Cow::Borrowed(k.as_str()), Cow::Borrowed(v.as_str())))
            .collect();
        // Every point of the series, its value and times still to set.
        let point = |value: Value, timestamp: Option<i64>| Metric {
            name: series.name.as_str().into(),
            value,
            kind: metric_type(kind),
            tags: tags.clone(),
            timestamp: timestamp.map(ms),
            created_timestamp: None,
            timestamp_ns: None,
            unit: series.unit.as_deref().map(Cow::Borrowed),
            help: series.help.as_deref().map(Cow::Borrowed),
            histogram: None,
            exemplar: None,
        };
        for s in &series.samples {
            metrics.push(Metric {
                created_timestamp: start(s.start_timestamp_ms),
                ..point(s.value.into(), Some(s.timestamp_ms))
            });
        }
        for h in &series.histograms {
            metrics.push(Metric {
                created_timestamp: start(Some(h.start_timestamp)),
                histogram: Some(Box::new(HistogramPoint(h.clone()))),
                ..point(count(h), Some(h.timestamp))
            });
        }
        for e in &series.exemplars {
            metrics.push(Metric {
                exemplar: Some(Box::new(ExemplarPoint {
                    labels: e.labels.iter().cloned().collect(),
                })),
                // Without a timestamp the record writer gives it the
                // receive time, as any metric without one.
                ..point(Value::Float(e.value), e.timestamp_ms)
            });
        }
    }
    metrics
}

/// Fills in, for each series that came with no type, unit or help of its
/// own, what `client` said of its family.
fn described_earlier(decoded: &mut Decoded, client: &str, types: &TypeCache) {
    let bare: Vec<usize> = (0..decoded.series.len())
        .filter(|&i| {
            let s = &decoded.series[i];
            s.kind.is_none() && s.unit.is_none() && s.help.is_none()
        })
        .collect();
    if bare.is_empty() {
        return;
    }
    let names: Vec<&str> = bare
        .iter()
        .map(|&i| decoded.series[i].name.as_str())
        .collect();
    let families = types.families(client, &names);
    for (i, family) in bare.into_iter().zip(families) {
        if let Some(family) = family {
            let s = &mut decoded.series[i];
            s.kind = family.kind;
            s.unit = family.unit;
            s.help = family.help;
        }
    }
}

/// A timestamp already checked to be in `0..=now + 10 min`, as stored.
fn ms(t: i64) -> u64 {
    t.max(0) as u64
}

/// A start timestamp as stored: one before 1970 (or 0, absent) is none.
fn start(t: Option<i64>) -> Option<u64> {
    t.filter(|&t| t > 0).map(ms)
}

/// A histogram's count, the value a reader that knows nothing of
/// histograms sees: exact for an integer histogram. Decoding sets it; unset
/// it would be protobuf's 0 of an integer histogram, as Prometheus reads it.
fn count(h: &Histogram) -> Value {
    match h.count {
        Some(Count::CountFloat(f)) => Value::Float(f),
        Some(Count::CountInt(n)) => Value::UInt(n),
        None => Value::UInt(0),
    }
}

/// Prometheus' types as stored; no type is `unknown`, never a guess.
fn metric_type(kind: Option<Kind>) -> MetricType {
    match kind {
        Some(Kind::Counter) => MetricType::Counter,
        Some(Kind::Gauge) => MetricType::Gauge,
        Some(Kind::Histogram) => MetricType::Histogram,
        Some(Kind::GaugeHistogram) => MetricType::GaugeHistogram,
        Some(Kind::Summary) => MetricType::Summary,
        None => MetricType::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote_write::{Family, Sample, ValidSeries};

    fn series(name: &str, kind: Option<Kind>, samples: &[(f64, i64)]) -> ValidSeries {
        ValidSeries {
            name: name.into(),
            labels: vec![("job".into(), "api".into())],
            kind,
            unit: None,
            help: None,
            samples: samples
                .iter()
                .map(|&(value, timestamp_ms)| Sample {
                    value,
                    timestamp_ms,
                    start_timestamp_ms: None,
                })
                .collect(),
            histograms: vec![],
            exemplars: vec![],
        }
    }

    fn typed(kind: Kind) -> Family {
        Family {
            kind: Some(kind),
            ..Family::default()
        }
    }

    #[test]
    fn one_metric_per_sample_typed_by_the_request_or_the_sender() {
        let types = TypeCache::default();
        types.remember("prom", &[("up".into(), typed(Kind::Gauge))]);
        let mut decoded = Decoded {
            series: vec![
                series("up", None, &[(1.0, 10), (0.0, 20)]),
                series("http_requests_total", Some(Kind::Counter), &[(5.0, 10)]),
                series("other", None, &[(2.0, -5)]),
            ],
            metadata: vec![],
            samples: 4,
            ..Decoded::default()
        };
        let mut theirs_decoded = decoded.clone();
        let got = metrics_of(&mut decoded, "prom", &types);
        let summary: Vec<(&str, MetricType, Option<u64>)> = got
            .iter()
            .map(|m| (m.name.as_ref(), m.kind, m.timestamp))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("up", MetricType::Gauge, Some(10)),
                ("up", MetricType::Gauge, Some(20)),
                ("http_requests_total", MetricType::Counter, Some(10)),
                // Before 1970 is refused by decoding; stored as 0 if it came.
                ("other", MetricType::Unknown, Some(0)),
            ]
        );
        assert!(got
            .iter()
            .all(|m| m.tags.get("job").map(|v| v.as_ref()) == Some("api")));
        // Another sender's metadata does not type this one's series.
        let theirs = metrics_of(&mut theirs_decoded, "someone-else", &types);
        assert_eq!(theirs[0].kind, MetricType::Unknown);
    }

    #[test]
    fn a_requests_metadata_is_remembered_for_its_sender() {
        let types = TypeCache::default();
        let mut decoded = Decoded {
            series: vec![series("up", None, &[(1.0, 10)])],
            metadata: vec![("up".into(), typed(Kind::Gauge))],
            samples: 1,
            ..Decoded::default()
        };
        assert_eq!(
            metrics_of(&mut decoded, "prom", &types)[0].kind,
            MetricType::Gauge
        );
        assert_eq!(
            types.families("prom", &["up"]),
            vec![Some(typed(Kind::Gauge))]
        );
    }
}
