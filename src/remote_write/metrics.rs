//! From a decoded request to stored metrics: one metric per float sample,
//! with the name, the labels as tags, value and timestamp exactly as sent,
//! and the type the sender gave (in this request, or in an earlier metadata
//! request remembered per sender), else `unknown`.

use std::collections::BTreeMap;

use super::types::TypeCache;
use super::{Decoded, Kind};
use crate::record::{Metric, MetricType};

/// The metrics of `decoded`, in the order sent. The request's metadata is
/// remembered for `client` first, so a series whose family it describes is
/// typed by it; a series without a type of its own takes what `client`
/// described earlier.
pub fn metrics_of<'a>(decoded: &'a Decoded, client: &str, types: &TypeCache) -> Vec<Metric<'a>> {
    types.remember(client, &decoded.metadata);
    let untyped: Vec<&str> = decoded
        .series
        .iter()
        .filter(|s| s.kind.is_none())
        .map(|s| s.name.as_str())
        .collect();
    let mut remembered = types.kinds(client, &untyped).into_iter();
    let mut metrics = Vec::with_capacity(decoded.samples);
    for series in &decoded.series {
        let kind = match series.kind {
            Some(k) => Some(k),
            None => remembered.next().flatten(),
        };
        let kind = metric_type(kind);
        let tags: BTreeMap<_, _> = series
            .labels
            .iter()
            .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
            .collect();
        for &(value, ts) in &series.samples {
            metrics.push(Metric {
                name: series.name.as_str().into(),
                value: value.into(),
                kind,
                tags: tags.clone(),
                timestamp: Some(ts.max(0) as u64),
                created_timestamp: series.created_timestamp_ms.map(|t| t.max(0) as u64),
                timestamp_ns: None,
                unit: None,
                help: None,
                histogram: None,
                exemplar: None,
            });
        }
    }
    metrics
}

/// Prometheus' types as stored; no type is `unknown`, never a guess.
fn metric_type(kind: Option<Kind>) -> MetricType {
    match kind {
        Some(Kind::Counter) => MetricType::Counter,
        Some(Kind::Gauge) => MetricType::Gauge,
        Some(Kind::Histogram) => MetricType::Histogram,
        Some(Kind::Summary) => MetricType::Summary,
        None => MetricType::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote_write::Series;

    fn series(name: &str, kind: Option<Kind>, samples: &[(f64, i64)]) -> Series {
        Series {
            name: name.into(),
            labels: vec![("job".into(), "api".into())],
            kind,
            samples: samples.to_vec(),
            created_timestamp_ms: None,
        }
    }

    #[test]
    fn one_metric_per_sample_typed_by_the_request_or_the_sender() {
        let types = TypeCache::default();
        types.remember("prom", &[("up".into(), Kind::Gauge)]);
        let decoded = Decoded {
            series: vec![
                series("up", None, &[(1.0, 10), (0.0, 20)]),
                series("http_requests_total", Some(Kind::Counter), &[(5.0, 10)]),
                series("other", None, &[(2.0, -5)]),
            ],
            metadata: vec![],
            samples: 4,
            ..Decoded::default()
        };
        let got = metrics_of(&decoded, "prom", &types);
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
        let theirs = metrics_of(&decoded, "someone-else", &types);
        assert_eq!(theirs[0].kind, MetricType::Unknown);
    }

    #[test]
    fn a_requests_metadata_is_remembered_for_its_sender() {
        let types = TypeCache::default();
        let decoded = Decoded {
            series: vec![series("up", None, &[(1.0, 10)])],
            metadata: vec![("up".into(), Kind::Gauge)],
            samples: 1,
            ..Decoded::default()
        };
        assert_eq!(
            metrics_of(&decoded, "prom", &types)[0].kind,
            MetricType::Gauge
        );
        assert_eq!(types.kinds("prom", &["up"]), vec![Some(Kind::Gauge)]);
    }
}
