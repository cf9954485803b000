//! An exponential histogram point as cumulative `le` buckets.
//!
//! At scale `s` the base is 2^(2^−s); positive bucket `i` holds the values
//! in (base^i, base^(i+1)], negative bucket `i` their opposites, and the
//! zero bucket those within `zero_threshold` of 0.

use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;
use opentelemetry_proto::tonic::metrics::v1::ExponentialHistogramDataPoint;

use super::{MAX_EXP_BUCKETS, MAX_SCALE, MIN_SCALE};

/// (le, cumulative count) for every bucket that holds something, `+Inf`
/// left out; Err when the point breaks a rule of the module doc.
pub(super) fn buckets(p: &ExponentialHistogramDataPoint) -> Result<Vec<(f64, u64)>, String> {
    if !(MIN_SCALE..=MAX_SCALE).contains(&p.scale) {
        return Err(format!(
            "scale {} outside {MIN_SCALE}..={MAX_SCALE}",
            p.scale
        ));
    }
    if !(p.zero_threshold.is_finite() && p.zero_threshold >= 0.0) {
        return Err(format!(
            "zero_threshold {} is not a finite non-negative number",
            p.zero_threshold
        ));
    }
    let (pos_offset, positive) = side(p.positive.as_ref());
    let (neg_offset, negative) = side(p.negative.as_ref());
    for (what, counts) in [("positive", positive), ("negative", negative)] {
        if counts.len() > MAX_EXP_BUCKETS {
            return Err(format!(
                "{what} has {} buckets, at most {MAX_EXP_BUCKETS}",
                counts.len()
            ));
        }
    }
    let mut out = Vec::new();
    let mut cumulative = 0u64;
    let mut add = |le: f64, count: u64, out: &mut Vec<(f64, u64)>| -> Result<(), String> {
        cumulative = cumulative
            .checked_add(count)
            .ok_or("bucket counts add up to more than 2^64")?;
        if out.last().is_some_and(|&(previous, _)| le <= previous) {
            return Err(format!(
                "zero_threshold {} overlaps the buckets",
                p.zero_threshold
            ));
        }
        out.push((le, cumulative));
        Ok(())
    };
    // Most negative first: bucket i of the negative side ends at −base^i.
    for (k, &count) in negative.iter().enumerate().rev() {
        if count > 0 {
            add(-power(neg_offset + k as i64, p.scale)?, count, &mut out)?;
        }
    }
    if p.zero_count > 0 {
        add(p.zero_threshold, p.zero_count, &mut out)?;
    }
    for (k, &count) in positive.iter().enumerate() {
        if count > 0 {
            add(power(pos_offset + k as i64 + 1, p.scale)?, count, &mut out)?;
        }
    }
    if cumulative != p.count {
        return Err(format!(
            "zero_count and bucket_counts add up to {cumulative} but count is {}",
            p.count
        ));
    }
    Ok(out)
}

/// A side's offset and counts; none is empty.
fn side(b: Option<&Buckets>) -> (i64, &[u64]) {
    match b {
        Some(b) => (b.offset as i64, &b.bucket_counts),
        None => (0, &[]),
    }
}

/// base^index = 2^(index · 2^−scale), when it is a finite non-zero f64.
fn power(index: i64, scale: i32) -> Result<f64, String> {
    let exponent = if scale <= 0 {
        // Exact: an integer power of two (scale ≥ −10, |index| < 2^32).
        (index << -scale) as f64
    } else {
        index as f64 / (1u64 << scale) as f64
    };
    let v = exponent.exp2();
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!(
            "bucket index {index} at scale {scale} is outside the range of f64"
        ))
    }
}
