//! A decoded `ExportMetricsServiceRequest` to stored metrics: the walk over
//! resources, scopes and metrics, and the metric-wide rules; `points` makes
//! the series of each data point.

use std::borrow::Cow;
use std::fmt;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::AggregationTemporality;

use super::attrs::{self, Tags};
use super::points::{self, Family};
use super::{cut, Decoded, MAX_NAME_LEN, MAX_SERIES};
use crate::record::{Metric, MetricType};

/// Longest name quoted in a reason.
const QUOTED: usize = 64;

/// Where in the request a reason is about.
#[derive(Clone, Copy)]
struct At<'a> {
    resource: usize,
    scope: usize,
    metric: usize,
    name: &'a str,
}

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "resource_metrics[{}].scope_metrics[{}].metrics[{}] {:?}",
            self.resource,
            self.scope,
            self.metric,
            cut(self.name, QUOTED)
        )
    }
}

pub(super) fn convert(request: ExportMetricsServiceRequest, now_ms: u64) -> Decoded {
    let mut out = Decoded::default();
    for (r, rm) in request.resource_metrics.iter().enumerate() {
        let mut resource = Tags::new();
        let attributes = rm.resource.as_ref().map(|res| &res.attributes[..]);
        if let Err(why) = attrs::add(&mut resource, attributes.unwrap_or_default(), "") {
            let points = rm.scope_metrics.iter().flat_map(|s| &s.metrics);
            let points = points.map(|m| point_count(m.data.as_ref())).sum();
            out.refused
                .note(points, || format!("resource_metrics[{r}].resource: {why}"));
            continue;
        }
        for (s, sm) in rm.scope_metrics.iter().enumerate() {
            let mut base = resource.clone();
            if let Err(why) = scope_tags(&mut base, sm.scope.as_ref()) {
                let points = sm
                    .metrics
                    .iter()
                    .map(|m| point_count(m.data.as_ref()))
                    .sum();
                out.refused.note(points, || {
                    format!("resource_metrics[{r}].scope_metrics[{s}].scope: {why}")
                });
                continue;
            }
            for (m, metric) in sm.metrics.iter().enumerate() {
                let at = At {
                    resource: r,
                    scope: s,
                    metric: m,
                    name: &metric.name,
                };
                one_metric(&mut out, at, &base, metric.data.as_ref(), now_ms);
            }
        }
    }
    out
}

fn scope_tags(
    tags: &mut Tags,
    scope: Option<&opentelemetry_proto::tonic::common::v1::InstrumentationScope>,
) -> Result<(), String> {
    let Some(scope) = scope else { return Ok(()) };
    for (key, value) in [
        ("otel_scope_name", &scope.name),
        ("otel_scope_version", &scope.version),
    ] {
        if !value.is_empty() {
            if value.chars().any(char::is_control) || value.len() > super::MAX_VALUE_LEN {
                return Err(format!("{key} has a control character or is too long"));
            }
            tags.insert(Cow::Borrowed(key), Cow::Owned(value.clone()));
        }
    }
    attrs::add(tags, &scope.attributes, "otel_scope_")
}

fn point_count(data: Option<&Data>) -> usize {
    match data {
        None => 0,
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
    }
}

fn one_metric(out: &mut Decoded, at: At<'_>, base: &Tags, data: Option<&Data>, now_ms: u64) {
    let Some(data) = data else {
        out.refused.note(0, || {
            format!("{at}: no data (none of gauge, sum, histogram, exponential_histogram, summary)")
        });
        return;
    };
    let points = point_count(Some(data));
    let suffix = match data {
        Data::Histogram(_) | Data::ExponentialHistogram(_) => "_bucket",
        Data::Summary(_) => "_count",
        Data::Gauge(_) | Data::Sum(_) => "",
    };
    if let Err(why) = check_name(at.name, suffix) {
        out.refused.note(points, || format!("{at}: {why}"));
        return;
    }
    let temporality = match data {
        Data::Sum(s) => Some(s.aggregation_temporality),
        Data::Histogram(h) => Some(h.aggregation_temporality),
        Data::ExponentialHistogram(h) => Some(h.aggregation_temporality),
        Data::Gauge(_) | Data::Summary(_) => None,
    };
    let delta = match temporality.map(AggregationTemporality::try_from) {
        None | Some(Ok(AggregationTemporality::Cumulative)) => false,
        Some(Ok(AggregationTemporality::Delta)) => true,
        Some(_) => {
            out.refused.note(points, || {
                format!(
                    "{at}: aggregation_temporality {} is neither delta (1) nor cumulative (2)",
                    temporality.unwrap_or_default()
                )
            });
            return;
        }
    };
    let family = |kind, started| Family {
        name: at.name,
        kind,
        base,
        delta,
        started,
        now_ms,
    };
    match data {
        Data::Gauge(g) => each(
            out,
            at,
            &g.data_points,
            &family(MetricType::Gauge, false),
            points::number,
        ),
        Data::Sum(s) => {
            let kind = if s.is_monotonic {
                MetricType::Counter
            } else {
                MetricType::Gauge
            };
            each(out, at, &s.data_points, &family(kind, true), points::number)
        }
        Data::Histogram(h) => each(
            out,
            at,
            &h.data_points,
            &family(MetricType::Histogram, true),
            points::histogram,
        ),
        Data::ExponentialHistogram(h) => each(
            out,
            at,
            &h.data_points,
            &family(MetricType::Histogram, true),
            points::exponential_histogram,
        ),
        Data::Summary(s) => each(
            out,
            at,
            &s.data_points,
            &family(MetricType::Summary, true),
            points::summary,
        ),
    }
}

/// Converts each point, keeping its series only when all of them are valid.
fn each<P>(
    out: &mut Decoded,
    at: At<'_>,
    points: &[P],
    family: &Family<'_>,
    convert: fn(&P, &Family<'_>) -> Result<Vec<Metric<'static>>, String>,
) {
    for (i, p) in points.iter().enumerate() {
        let converted = convert(p, family).and_then(|series| {
            if out.metrics.len() + series.len() > MAX_SERIES {
                return Err(format!("the request makes more than {MAX_SERIES} series"));
            }
            Ok(series)
        });
        match converted {
            Ok(series) => {
                out.metrics.extend(series);
                out.points += 1;
            }
            Err(why) => out
                .refused
                .note(1, || format!("{at} data_points[{i}]: {why}")),
        }
    }
}

fn check_name(name: &str, suffix: &str) -> Result<(), String> {
    if name.is_empty() {
        Err("empty metric name".into())
    } else if name.len() + suffix.len() > MAX_NAME_LEN {
        Err(format!(
            "metric name over {} bytes (with the {suffix:?} its series get, {MAX_NAME_LEN})",
            MAX_NAME_LEN - suffix.len()
        ))
    } else if name.chars().any(char::is_control) {
        Err("control character in the metric name".into())
    } else {
        Ok(())
    }
}
