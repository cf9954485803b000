//! A batch of every kind of point the stores are handed, for their tests:
//! float and integer samples (NaN, staleness marker, -0.0), an integer
//! native histogram with exponential buckets and a start time, a float one
//! with custom buckets, exemplars, UTF-8 names, unit and help.

use std::sync::Arc;

use crate::record::metric::{histogram, BucketSpan, Histogram};
use crate::record::{value::STALE_NAN, Extra, MetricType, Sample, Value};

pub const T: i64 = 1_700_000_000_000;
pub const START: i64 = 1_699_999_000_000;

/// An integer histogram, exponential schema 3, both sides and the zero
/// bucket, with its start time (what 2.0 sends as `start_timestamp`).
pub fn int_histogram(timestamp: i64) -> Histogram {
    Histogram {
        count: Some(histogram::Count::CountInt(13)),
        sum: -0.0,
        schema: 3,
        zero_threshold: 1e-128,
        zero_count: Some(histogram::ZeroCount::ZeroCountInt(1)),
        negative_spans: vec![BucketSpan {
            offset: -2,
            length: 2,
        }],
        negative_deltas: vec![1, 0],
        negative_counts: vec![],
        positive_spans: vec![
            BucketSpan {
                offset: 0,
                length: 2,
            },
            BucketSpan {
                offset: 3,
                length: 1,
            },
        ],
        positive_deltas: vec![2, 3, -1],
        positive_counts: vec![],
        reset_hint: histogram::ResetHint::No as i32,
        timestamp,
        custom_values: vec![],
        start_timestamp: START,
    }
}

/// A float histogram with custom buckets (schema -53: `custom_values` are
/// the upper bounds), a NaN sum and a gauge reset hint.
pub fn float_histogram(timestamp: i64) -> Histogram {
    Histogram {
        count: Some(histogram::Count::CountFloat(7.5)),
        sum: f64::from_bits(0x7ff8_0000_0000_0001),
        schema: -53,
        zero_threshold: 0.0,
        zero_count: Some(histogram::ZeroCount::ZeroCountFloat(0.0)),
        negative_spans: vec![],
        negative_deltas: vec![],
        negative_counts: vec![],
        positive_spans: vec![BucketSpan {
            offset: 0,
            length: 3,
        }],
        positive_deltas: vec![],
        positive_counts: vec![2.5, -0.0, 5.0],
        reset_hint: histogram::ResetHint::Gauge as i32,
        timestamp,
        custom_values: vec![0.25, 1.0, f64::INFINITY],
        start_timestamp: 0,
    }
}

/// The UTF-8 series the histograms are points of.
pub const DURATION: &str = "http.server.request.duration";
pub const DURATION_LABELS: &[(&str, &str)] = &[("service.name", "checkout"), ("zoné", "ö☃")];

pub fn with(mut s: Sample, extra: Extra) -> Sample {
    s.extra = Some(Arc::new(extra));
    s
}

/// The batch, in the order a partition hands it over: points of one
/// series interleaved with another's.
pub fn mixed() -> Vec<Sample> {
    let counter = |v: Value, ts: i64| {
        Sample::new(
            "requests_total",
            &[("code", "200")],
            v,
            ts,
            MetricType::Counter,
            1,
        )
    };
    let duration =
        |v: Value, ts: i64| Sample::new(DURATION, DURATION_LABELS, v, ts, MetricType::Histogram, 2);
    let meta = || Extra {
        unit: Some("seconds".into()),
        help: Some("Time a request took.".into()),
        ..Extra::default()
    };
    vec![
        with(
            counter(Value::Float(5.0), T),
            Extra {
                start_timestamp: Some(START as u64),
                help: Some("Requests served.".into()),
                ..Extra::default()
            },
        ),
        with(
            duration(Value::UInt(13), T),
            Extra {
                histogram: Some(int_histogram(T)),
                start_timestamp: Some(START as u64),
                ..meta()
            },
        ),
        with(
            counter(Value::Float(1.0), T + 3),
            Extra {
                exemplar: Some(vec![
                    ("trace_id".into(), "4bf92f3577b34da6".into()),
                    ("span.id".into(), "00f067aa0ba902b7".into()),
                ]),
                ..Extra::default()
            },
        ),
        counter(Value::Int(-7), T + 5),
        with(
            duration(Value::Float(7.5), T + 10),
            Extra {
                histogram: Some(float_histogram(T + 10)),
                ..meta()
            },
        ),
        counter(Value::Float(-0.0), T + 15),
        with(
            duration(Value::Float(0.031), T + 12),
            Extra {
                exemplar: Some(vec![("trace_id".into(), "ü-1".into())]),
                ..Extra::default()
            },
        ),
        counter(Value::Float(f64::from_bits(STALE_NAN)), T + 20),
        Sample::new(
            "temperature",
            &[("room", "kitchen")],
            Value::Float(21.5),
            T,
            MetricType::Gauge,
            3,
        ),
    ]
}
