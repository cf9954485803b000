//! The series of one data point, per kind: its tags and times ([`Point`]),
//! and the rules of its kind.

use std::borrow::Cow;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as Number;
use opentelemetry_proto::tonic::metrics::v1::{
    DataPointFlags, ExponentialHistogramDataPoint, HistogramDataPoint, NumberDataPoint,
    SummaryDataPoint,
};

use super::attrs::{self, Tags};
use super::{exponential, format_float, MAX_BOUNDS, MAX_FUTURE_MS, MAX_TAGS};
use crate::record::value::STALE_NAN;
use crate::record::{Metric, MetricType, Value};

/// What every series of one metric shares.
pub(super) struct Family<'a> {
    pub(super) name: &'a str,
    pub(super) kind: MetricType,
    pub(super) base: &'a Tags,
    pub(super) delta: bool,
    /// Whether `start_time_unix_nano` means something (not for gauges).
    pub(super) started: bool,
    pub(super) now_ms: u64,
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
        attributes: &[KeyValue],
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
            name: Cow::Owned([self.family.name, suffix].concat()),
            value: if self.stale {
                Value::Float(f64::from_bits(STALE_NAN))
            } else {
                value
            },
            kind: self.family.kind,
            tags: std::sync::Arc::new(tags),
            timestamp: self.timestamp,
            timestamp_ns: self.timestamp_ns,
            created_timestamp: self.created,
            unit: None,
            help: None,
            histogram: None,
            exemplar: None,
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

pub(super) fn number(
    p: &NumberDataPoint,
    family: &Family<'_>,
) -> Result<Vec<Metric<'static>>, String> {
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

pub(super) fn histogram(
    p: &HistogramDataPoint,
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

pub(super) fn exponential_histogram(
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

pub(super) fn summary(
    p: &SummaryDataPoint,
    family: &Family<'_>,
) -> Result<Vec<Metric<'static>>, String> {
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
