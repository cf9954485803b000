//! Native histogram samples: 1.0's message as 2.0's (the one stored), and
//! the structural checks before one is stored. The checks are those of
//! Prometheus' own `Histogram.Validate` and `FloatHistogram.Validate`
//! (`model/histogram` of prometheus/prometheus: `histogram.go`,
//! `float_histogram.go`, `generic.go`), so that a histogram stored here is
//! one a Prometheus behind `consume --sink remote-write` takes; plus the
//! few a stored record needs to read back the same (see [`check`]).

use std::ops::RangeInclusive;

use prompb::v1;
use prompb::v2::histogram::{Count, ResetHint, ZeroCount};
use prompb::v2::{BucketSpan, Histogram};

/// Schemas of exponential buckets: each power of two divided into
/// 2^schema buckets.
pub const EXPONENTIAL_SCHEMAS: RangeInclusive<i32> = -4..=8;
/// The schema of custom buckets (bounds in `custom_values`).
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;

/// 1.0's histogram as 2.0's: the same fields by the same numbers (reset
/// hints included), without a start timestamp.
pub(super) fn from_v1(h: v1::Histogram) -> Histogram {
    use v1::histogram as h1;
    Histogram {
        count: h.count.map(|c| match c {
            h1::Count::CountInt(n) => Count::CountInt(n),
            h1::Count::CountFloat(f) => Count::CountFloat(f),
        }),
        sum: h.sum,
        schema: h.schema,
        zero_threshold: h.zero_threshold,
        zero_count: h.zero_count.map(|c| match c {
            h1::ZeroCount::ZeroCountInt(n) => ZeroCount::ZeroCountInt(n),
            h1::ZeroCount::ZeroCountFloat(f) => ZeroCount::ZeroCountFloat(f),
        }),
        negative_spans: spans_v1(h.negative_spans),
        negative_deltas: h.negative_deltas,
        negative_counts: h.negative_counts,
        positive_spans: spans_v1(h.positive_spans),
        positive_deltas: h.positive_deltas,
        positive_counts: h.positive_counts,
        reset_hint: h.reset_hint,
        timestamp: h.timestamp,
        custom_values: h.custom_values,
        start_timestamp: 0,
    }
}

fn spans_v1(spans: Vec<v1::BucketSpan>) -> Vec<BucketSpan> {
    spans
        .into_iter()
        .map(|s| BucketSpan {
            offset: s.offset,
            length: s.length,
        })
        .collect()
}

/// Whether `h` is a float histogram: Prometheus' `IsFloatHistogram`, a
/// float count. Anything else (an integer count, or none) is an integer
/// histogram.
pub fn is_float(h: &Histogram) -> bool {
    matches!(h.count, Some(Count::CountFloat(_)))
}

/// Checks `h` (all but its timestamp, which the caller checks as any
/// point's) and sets what protobuf leaves unset: an absent count or zero
/// count is the 0 Prometheus reads it as, of the histogram's kind. `Err`
/// says what is wrong.
///
/// Beyond Prometheus' checks, refused rather than stored as something else:
/// - a zero count of the other kind than the count (an integer zero count
///   in a float histogram, or the reverse): Prometheus reads it as 0, so
///   the observations in it would be lost without a word;
/// - a reset hint outside the four the spec names: the stored record's JSON
///   form (and `consume`'s output) has a name for each of the four only.
pub(super) fn check(h: &mut Histogram) -> Result<(), String> {
    let float = is_float(h);
    let count = h.count.get_or_insert(Count::CountInt(0));
    let zero = h.zero_count.get_or_insert(if float {
        ZeroCount::ZeroCountFloat(0.0)
    } else {
        ZeroCount::ZeroCountInt(0)
    });
    if ResetHint::try_from(h.reset_hint).is_err() {
        return Err(format!("unknown reset hint {}", h.reset_hint));
    }
    match (*count, *zero) {
        (Count::CountInt(count), ZeroCount::ZeroCountInt(zero)) => check_int(h, count, zero),
        (Count::CountFloat(count), ZeroCount::ZeroCountFloat(zero)) => check_float(h, count, zero),
        (Count::CountInt(_), ZeroCount::ZeroCountFloat(_)) => {
            Err("an integer histogram with a float zero count".into())
        }
        (Count::CountFloat(_), ZeroCount::ZeroCountInt(_)) => {
            Err("a float histogram with an integer zero count".into())
        }
    }
}

fn schema_error(schema: i32) -> String {
    format!(
        "schema {schema}: must be {}..={} (exponential buckets) or {CUSTOM_BUCKETS_SCHEMA} \
         (custom buckets)",
        EXPONENTIAL_SCHEMAS.start(),
        EXPONENTIAL_SCHEMAS.end()
    )
}

/// `Histogram.Validate`: buckets as deltas, the count equal to the
/// buckets' sum (at least that sum when the sum is NaN: NaN observations
/// count but fill no bucket).
fn check_int(h: &Histogram, count: u64, zero: u64) -> Result<(), String> {
    let mut negative = 0u64;
    if h.schema == CUSTOM_BUCKETS_SCHEMA {
        custom_bounds(&h.custom_values, &h.positive_spans, h.positive_deltas.len())?;
        custom_without_zero_or_negative(
            zero != 0,
            h.zero_threshold,
            &h.negative_spans,
            h.negative_deltas.len(),
        )?;
    } else if EXPONENTIAL_SCHEMAS.contains(&h.schema) {
        spans(&h.positive_spans, h.positive_deltas.len())
            .map_err(|e| format!("positive side: {e}"))?;
        spans(&h.negative_spans, h.negative_deltas.len())
            .map_err(|e| format!("negative side: {e}"))?;
        negative = deltas(&h.negative_deltas).map_err(|e| format!("negative side: {e}"))?;
        exponential_without_bounds(&h.custom_values)?;
    } else {
        return Err(schema_error(h.schema));
    }
    let positive = deltas(&h.positive_deltas).map_err(|e| format!("positive side: {e}"))?;
    let in_buckets = negative
        .checked_add(positive)
        .and_then(|n| n.checked_add(zero))
        .ok_or("observations in the buckets overflow 64 bits")?;
    if h.sum.is_nan() {
        if in_buckets > count {
            return Err(format!(
                "{in_buckets} observations in the buckets, but the count is {count}"
            ));
        }
    } else if in_buckets != count {
        return Err(format!(
            "{in_buckets} observations in the buckets, but the count is {count} \
             (they must be equal unless the sum is NaN)"
        ));
    }
    Ok(())
}

/// `FloatHistogram.Validate`: buckets as absolute counts, none negative;
/// the count is not compared with the buckets (float rounding would refuse
/// good histograms).
fn check_float(h: &Histogram, count: f64, zero: f64) -> Result<(), String> {
    if h.schema == CUSTOM_BUCKETS_SCHEMA {
        custom_bounds(&h.custom_values, &h.positive_spans, h.positive_counts.len())?;
        custom_without_zero_or_negative(
            zero != 0.0,
            h.zero_threshold,
            &h.negative_spans,
            h.negative_counts.len(),
        )?;
    } else if EXPONENTIAL_SCHEMAS.contains(&h.schema) {
        spans(&h.positive_spans, h.positive_counts.len())
            .map_err(|e| format!("positive side: {e}"))?;
        spans(&h.negative_spans, h.negative_counts.len())
            .map_err(|e| format!("negative side: {e}"))?;
        counts(&h.negative_counts).map_err(|e| format!("negative side: {e}"))?;
        if zero < 0.0 {
            return Err(format!("the zero bucket has a count of {zero}"));
        }
        exponential_without_bounds(&h.custom_values)?;
    } else {
        return Err(schema_error(h.schema));
    }
    if count < 0.0 {
        return Err(format!("the count is {count}"));
    }
    counts(&h.positive_counts).map_err(|e| format!("positive side: {e}"))
}

/// `checkHistogramSpans`: only the first span may have a negative offset
/// (where the buckets start), and the spans cover as many buckets as sent.
fn spans(spans: &[BucketSpan], buckets: usize) -> Result<(), String> {
    if let Some((i, s)) = spans.iter().enumerate().skip(1).find(|(_, s)| s.offset < 0) {
        return Err(format!("span {} has a negative offset {}", i + 1, s.offset));
    }
    let need: u64 = spans.iter().map(|s| u64::from(s.length)).sum();
    if need != buckets as u64 {
        return Err(format!("spans need {need} buckets, {buckets} sent"));
    }
    Ok(())
}

/// `checkHistogramBuckets` with deltas: each bucket's count (the running
/// sum of the deltas) is not negative. Their total, or Err.
fn deltas(deltas: &[i64]) -> Result<u64, String> {
    let mut bucket = 0i64;
    let mut total = 0u64;
    for (i, &d) in deltas.iter().enumerate() {
        bucket = bucket
            .checked_add(d)
            .ok_or_else(|| format!("bucket {} overflows 64 bits", i + 1))?;
        let n = u64::try_from(bucket)
            .map_err(|_| format!("bucket {} has a count of {bucket}", i + 1))?;
        total = total
            .checked_add(n)
            .ok_or("observations in the buckets overflow 64 bits")?;
    }
    Ok(total)
}

/// `checkHistogramBuckets` with absolute counts: none negative (NaN is
/// not negative, as in Prometheus).
fn counts(counts: &[f64]) -> Result<(), String> {
    match counts.iter().position(|&c| c < 0.0) {
        Some(i) => Err(format!("bucket {} has a count of {}", i + 1, counts[i])),
        None => Ok(()),
    }
}

/// `checkHistogramCustomBounds`: bounds strictly increasing, none NaN, the
/// last not +Inf (the +Inf bucket is implied); spans with no negative
/// offset that cover as many buckets as sent and no more than the bounds
/// and +Inf make.
fn custom_bounds(bounds: &[f64], spans: &[BucketSpan], buckets: usize) -> Result<(), String> {
    let bad = |what: String| Err(format!("custom buckets: {what}"));
    if bounds.iter().any(|b| b.is_nan()) {
        return bad("a bound is NaN".into());
    }
    if let Some(pair) = bounds.windows(2).find(|p| p[1] <= p[0]) {
        return bad(format!(
            "bounds must be strictly increasing, {} follows {}",
            pair[1], pair[0]
        ));
    }
    if bounds.last() == Some(&f64::INFINITY) {
        return bad("the last bound is +Inf (it is implied, not sent)".into());
    }
    if let Some((i, s)) = spans.iter().enumerate().find(|(_, s)| s.offset < 0) {
        return bad(format!("span {} has a negative offset {}", i + 1, s.offset));
    }
    let need: u64 = spans.iter().map(|s| u64::from(s.length)).sum();
    if need != buckets as u64 {
        return bad(format!("spans need {need} buckets, {buckets} sent"));
    }
    let reach: u64 = spans
        .iter()
        .map(|s| u64::from(s.length) + s.offset.unsigned_abs() as u64)
        .sum();
    if reach > bounds.len() as u64 + 1 {
        return bad(format!(
            "{} bounds are too few for spans that reach bucket {reach}",
            bounds.len()
        ));
    }
    Ok(())
}

/// Custom buckets have neither a zero bucket nor negative buckets (a
/// negative observation goes in the bucket its bound gives).
fn custom_without_zero_or_negative(
    zero_count: bool,
    zero_threshold: f64,
    negative_spans: &[BucketSpan],
    negative_buckets: usize,
) -> Result<(), String> {
    if zero_count {
        Err("custom buckets: the zero count must be 0".into())
    } else if zero_threshold != 0.0 {
        Err("custom buckets: the zero threshold must be 0".into())
    } else if !negative_spans.is_empty() {
        Err("custom buckets: must not have negative spans".into())
    } else if negative_buckets > 0 {
        Err("custom buckets: must not have negative buckets".into())
    } else {
        Ok(())
    }
}

fn exponential_without_bounds(bounds: &[f64]) -> Result<(), String> {
    if bounds.is_empty() {
        Ok(())
    } else {
        Err("exponential buckets must not have custom bounds".into())
    }
}
