//! A decoded `ExportMetricsServiceRequest` to stored metrics: the walk over
//! resources, scopes and metrics, the metric-wide rules, and one function
//! per kind of data point.

use std::borrow::Cow;
use std::fmt;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as Number;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, DataPointFlags, ExponentialHistogramDataPoint, HistogramDataPoint,
    NumberDataPoint, SummaryDataPoint,
};

use super::attrs::{self, Tags};
use super::{
    cut, exponential, format_float, Decoded, MAX_BOUNDS, MAX_FUTURE_MS, MAX_NAME_LEN, MAX_SERIES,
    MAX_TAGS,
};
use crate::batch::value::STALE_NAN;
use crate::batch::{Metric, MetricType, Value};

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

/// What every series of one metric shares.
struct Family<'a> {
    name: &'a str,
    kind: MetricType,
    base: &'a Tags,
    delta: bool,
    /// Whether `start_time_unix_nano` means something (not for gauges).
    started: bool,
    now_ms: u64,
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
            number,
        ),
        Data::Sum(s) => {
            let kind = if s.is_monotonic {
                MetricType::Counter
            } else {
                MetricType::Gauge
            };
            each(out, at, &s.data_points, &family(kind, true), number)
        }
        Data::Histogram(h) => each(
            out,
            at,
            &h.data_points,
            &family(MetricType::Histogram, true),
            histogram,
        ),
        Data::ExponentialHistogram(h) => each(
            out,
            at,
            &h.data_points,
            &family(MetricType::Histogram, true),
            exponential_histogram,
        ),
        Data::Summary(s) => each(
            out,
            at,
            &s.data_points,
            &family(MetricType::Summary, true),
            summary,
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

/// One point's tags and times, and how its series are made.
struct Point<'a> {
    family: &'a Family<'a>,
    tags: Tags,
    timestamp: Option<u64>,
    timestamp_ns: Option<u64>,
    created: Option<u64>,
    stale: bool,
}

impl<'a> Point<'a> {
    fn new(
        family: &'a Family<'a>,
        attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue],
        time_ns: u64,
        start_ns: u64,
        flags: u32,
    ) -> Result<Point<'a>, String> {
        let mut tags = family.base.clone();
        attrs::add(&mut tags, attributes, "")?;
        if tags.len() > MAX_TAGS {
            return Err(format!(
                "{} tags from attributes, at most {MAX_TAGS}",
                tags.len()
            ));
        }
        if family.delta {
            reserve(&mut tags, "otel_temporality", "delta")?;
        }
        let ms = time_ns / 1_000_000;
        if ms > family.now_ms.saturating_add(MAX_FUTURE_MS) {
            return Err(format!(
                "time_unix_nano {time_ns} is more than 10 minutes in the future"
            ));
        }
        let set = |ns: u64| (ns != 0).then_some(ns);
        Ok(Point {
            family,
            tags,
            timestamp: set(time_ns).map(|ns| ns / 1_000_000),
            // As for line protocol: only when it says more than `timestamp`.
            timestamp_ns: set(time_ns).filter(|ns| ns % 1_000_000 != 0),
            created: set(start_ns)
                .filter(|_| family.started)
                .map(|ns| ns / 1_000_000),
            stale: flags & DataPointFlags::NoRecordedValueMask as u32 != 0,
        })
    }

    /// A series of this point: `suffix` on the name, `extra` tag, `value`
    /// (the staleness marker instead on a point without a recorded value).
    fn series(
        &self,
        suffix: &str,
        extra: Option<(&'static str, String)>,
        value: Value,
    ) -> Metric<'static> {
        self.with_tags(self.tags.clone(), suffix, extra, value)
    }

    /// The point's last series: its tags move instead of being copied.
    fn last(mut self, suffix: &str, value: Value) -> Metric<'static> {
        let tags = std::mem::take(&mut self.tags);
        self.with_tags(tags, suffix, None, value)
    }

    fn with_tags(
        &self,
        mut tags: Tags,
        suffix: &str,
        extra: Option<(&'static str, String)>,
        value: Value,
    ) -> Metric<'static> {
        if let Some((k, v)) = extra {
            tags.insert(Cow::Borrowed(k), Cow::Owned(v));
        }
        Metric {
            name: Cow::Owned(format!("{}{suffix}", self.family.name)),
            value: if self.stale {
                Value::Float(f64::from_bits(STALE_NAN))
            } else {
                value
            },
            kind: self.family.kind,
            tags,
            timestamp: self.timestamp,
            timestamp_ns: self.timestamp_ns,
            created_timestamp: self.created,
        }
    }
}

/// A tag the conversion adds; an attribute of the same key is refused.
fn reserve(tags: &mut Tags, key: &'static str, value: &'static str) -> Result<(), String> {
    if tags.contains_key(key) {
        return Err(format!("attribute {key:?} is reserved"));
    }
    tags.insert(Cow::Borrowed(key), Cow::Borrowed(value));
    Ok(())
}

fn number(p: &NumberDataPoint, family: &Family<'_>) -> Result<Vec<Metric<'static>>, String> {
    let point = Point::new(
        family,
        &p.attributes,
        p.time_unix_nano,
        p.start_time_unix_nano,
        p.flags,
    )?;
    let value = match p.value {
        Some(Number::AsInt(i)) => Value::Int(i),
        Some(Number::AsDouble(d)) => Value::Float(d),
        None if point.stale => Value::Float(f64::NAN),
        None => return Err("no value (neither as_int nor as_double)".into()),
    };
    Ok(vec![point.last("", value)])
}

/// `le` must be a label of the bucket series only.
fn no_attribute(point: &Point<'_>, key: &str) -> Result<(), String> {
    if point.tags.contains_key(key) {
        return Err(format!("attribute {key:?} is reserved"));
    }
    Ok(())
}

/// The `le` buckets (cumulative), `+Inf`, `_sum` and `_count`.
fn le_series(
    point: Point<'_>,
    buckets: &[(f64, u64)],
    count: u64,
    sum: Option<f64>,
) -> Vec<Metric<'static>> {
    let mut out = Vec::with_capacity(buckets.len() + 3);
    for &(le, cumulative) in buckets {
        out.push(point.series(
            "_bucket",
            Some(("le", format_float(le))),
            Value::UInt(cumulative),
        ));
    }
    out.push(point.series("_bucket", Some(("le", "+Inf".into())), Value::UInt(count)));
    if let Some(sum) = sum {
        out.push(point.series("_sum", None, Value::Float(sum)));
    }
    out.push(point.last("_count", Value::UInt(count)));
    out
}

fn histogram(p: &HistogramDataPoint, family: &Family<'_>) -> Result<Vec<Metric<'static>>, String> {
    let point = Point::new(
        family,
        &p.attributes,
        p.time_unix_nano,
        p.start_time_unix_nano,
        p.flags,
    )?;
    no_attribute(&point, "le")?;
    let (bounds, counts) = (&p.explicit_bounds, &p.bucket_counts);
    if bounds.len() > MAX_BOUNDS {
        return Err(format!(
            "{} explicit_bounds, at most {MAX_BOUNDS}",
            bounds.len()
        ));
    }
    if counts.is_empty() && !bounds.is_empty() {
        return Err(format!(
            "bucket_counts is empty but explicit_bounds has {} entries",
            bounds.len()
        ));
    }
    if !counts.is_empty() && counts.len() != bounds.len() + 1 {
        return Err(format!(
            "bucket_counts has {} entries for {} explicit_bounds (must be one more)",
            counts.len(),
            bounds.len()
        ));
    }
    for (i, &b) in bounds.iter().enumerate() {
        if !b.is_finite() {
            return Err(format!("explicit_bounds[{i}] is {b}, not finite"));
        }
        if i > 0 && b <= bounds[i - 1] {
            return Err(format!(
                "explicit_bounds not strictly increasing at [{i}] ({} then {b})",
                bounds[i - 1]
            ));
        }
    }
    let mut buckets = Vec::with_capacity(bounds.len());
    let mut cumulative = 0u64;
    for (i, &c) in counts.iter().enumerate() {
        cumulative = cumulative
            .checked_add(c)
            .ok_or("bucket_counts add up to more than 2^64")?;
        if let Some(&le) = bounds.get(i) {
            buckets.push((le, cumulative));
        }
    }
    if !counts.is_empty() && cumulative != p.count {
        return Err(format!(
            "bucket_counts add up to {cumulative} but count is {}",
            p.count
        ));
    }
    Ok(le_series(point, &buckets, p.count, p.sum))
}

fn exponential_histogram(
    p: &ExponentialHistogramDataPoint,
    family: &Family<'_>,
) -> Result<Vec<Metric<'static>>, String> {
    let point = Point::new(
        family,
        &p.attributes,
        p.time_unix_nano,
        p.start_time_unix_nano,
        p.flags,
    )?;
    no_attribute(&point, "le")?;
    let buckets = exponential::buckets(p)?;
    Ok(le_series(point, &buckets, p.count, p.sum))
}

fn summary(p: &SummaryDataPoint, family: &Family<'_>) -> Result<Vec<Metric<'static>>, String> {
    let point = Point::new(
        family,
        &p.attributes,
        p.time_unix_nano,
        p.start_time_unix_nano,
        p.flags,
    )?;
    no_attribute(&point, "quantile")?;
    let mut out = Vec::with_capacity(p.quantile_values.len() + 2);
    for (i, q) in p.quantile_values.iter().enumerate() {
        if !(0.0..=1.0).contains(&q.quantile) {
            return Err(format!(
                "quantile_values[{i}].quantile is {}, outside 0..=1",
                q.quantile
            ));
        }
        out.push(point.series(
            "",
            Some(("quantile", format_float(q.quantile))),
            Value::Float(q.value),
        ));
    }
    out.push(point.series("_sum", None, Value::Float(p.sum)));
    out.push(point.last("_count", Value::UInt(p.count)));
    Ok(out)
}
