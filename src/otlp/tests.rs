use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as Number;
use opentelemetry_proto::tonic::metrics::v1::summary_data_point::ValueAtQuantile;
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint,
    Metric as OtlpMetric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary,
    SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use super::*;
use crate::batch::value::{NORMAL_NAN, STALE_NAN};
use crate::batch::{MetricType, Value};

const NOW_MS: u64 = 1_700_000_000_000;
/// A point's time: NOW_MS less a second, with sub-millisecond digits.
const T: u64 = (NOW_MS - 1000) * 1_000_000 + 654_321;
const START: u64 = T - 60_000_000_000;
const CUMULATIVE: i32 = 2;
const DELTA: i32 = 1;

fn kv(key: &str, value: Any) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
    }
}

fn s(v: &str) -> Any {
    Any::StringValue(v.into())
}

fn request(resource: Vec<KeyValue>, metrics: Vec<OtlpMetric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "lib".into(),
                    version: "1.0".into(),
                    ..Default::default()
                }),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn metric(name: &str, data: Data) -> OtlpMetric {
    OtlpMetric {
        name: name.into(),
        data: Some(data),
        ..Default::default()
    }
}

fn number(value: Option<Number>, attributes: Vec<KeyValue>) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        start_time_unix_nano: START,
        time_unix_nano: T,
        value,
        ..Default::default()
    }
}

fn gauge(name: &str, points: Vec<NumberDataPoint>) -> OtlpMetric {
    metric(
        name,
        Data::Gauge(Gauge {
            data_points: points,
        }),
    )
}

fn sum(name: &str, temporality: i32, monotonic: bool, points: Vec<NumberDataPoint>) -> OtlpMetric {
    metric(
        name,
        Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: temporality,
            is_monotonic: monotonic,
        }),
    )
}

fn histogram(name: &str, point: HistogramDataPoint) -> OtlpMetric {
    metric(
        name,
        Data::Histogram(Histogram {
            data_points: vec![point],
            aggregation_temporality: CUMULATIVE,
        }),
    )
}

fn hist_point(bounds: &[f64], counts: &[u64], count: u64, sum: Option<f64>) -> HistogramDataPoint {
    HistogramDataPoint {
        time_unix_nano: T,
        start_time_unix_nano: START,
        count,
        sum,
        bucket_counts: counts.to_vec(),
        explicit_bounds: bounds.to_vec(),
        ..Default::default()
    }
}

fn exponential(point: ExponentialHistogramDataPoint) -> OtlpMetric {
    metric(
        "exp",
        Data::ExponentialHistogram(ExponentialHistogram {
            data_points: vec![point],
            aggregation_temporality: CUMULATIVE,
        }),
    )
}

fn exp_point(
    scale: i32,
    zero: u64,
    positive: (i32, &[u64]),
    negative: (i32, &[u64]),
) -> ExponentialHistogramDataPoint {
    let buckets = |(offset, counts): (i32, &[u64])| {
        Some(Buckets {
            offset,
            bucket_counts: counts.to_vec(),
        })
    };
    let count = zero + positive.1.iter().sum::<u64>() + negative.1.iter().sum::<u64>();
    ExponentialHistogramDataPoint {
        time_unix_nano: T,
        count,
        sum: Some(1.0),
        scale,
        zero_count: zero,
        positive: buckets(positive),
        negative: buckets(negative),
        ..Default::default()
    }
}

fn run(req: ExportMetricsServiceRequest) -> Decoded {
    decode(Encoding::Protobuf, &req.encode_to_vec(), NOW_MS).expect("decodes")
}

/// The single reason of a request with one refused point.
fn refusal(req: ExportMetricsServiceRequest) -> String {
    let d = run(req);
    assert!(d.metrics.is_empty(), "stored {:?}", d.metrics);
    assert_eq!(d.refused.points, 1, "{:?}", d.refused);
    assert_eq!(d.refused.reasons.len(), 1, "{:?}", d.refused);
    d.refused.reasons[0].clone()
}

fn tag<'a>(m: &'a Metric<'_>, key: &str) -> Option<&'a str> {
    m.tags.get(key).map(|v| v.as_ref())
}

/// (name, le or quantile, value) of every stored metric.
fn series(d: &Decoded) -> Vec<(String, Option<String>, Value)> {
    d.metrics
        .iter()
        .map(|m| {
            let extra = tag(m, "le").or(tag(m, "quantile")).map(str::to_string);
            (m.name.to_string(), extra, m.value)
        })
        .collect()
}

fn row(name: &str, extra: Option<&str>, value: Value) -> (String, Option<String>, Value) {
    (name.into(), extra.map(str::to_string), value)
}

#[test]
fn content_types() {
    let ok = [
        ("application/x-protobuf", Encoding::Protobuf),
        (
            "Application/X-Protobuf ; charset=binary",
            Encoding::Protobuf,
        ),
        ("application/json", Encoding::Json),
        ("application/json; charset=utf-8", Encoding::Json),
    ];
    for (header, want) in ok {
        assert_eq!(encoding_of(Some(header)), Ok(want), "{header}");
    }
    for bad in [
        None,
        Some(""),
        Some("text/plain"),
        Some("application/protobuf"),
    ] {
        let e = encoding_of(bad).unwrap_err();
        assert!(e.starts_with("unsupported Content-Type"), "{e}");
    }
}

#[test]
fn gauges_and_sums_keep_exact_values_types_and_times() {
    let d = run(request(
        vec![kv("service.name", s("api"))],
        vec![
            gauge("g", vec![number(Some(Number::AsInt(i64::MAX)), vec![])]),
            sum(
                "c",
                CUMULATIVE,
                true,
                vec![number(Some(Number::AsDouble(0.1 + 0.2)), vec![])],
            ),
            sum(
                "updown",
                CUMULATIVE,
                false,
                vec![number(Some(Number::AsInt(-3)), vec![])],
            ),
        ],
    ));
    assert_eq!(d.points, 3);
    assert!(d.refused.is_empty());
    let [g, c, u] = &d.metrics[..] else {
        panic!("{:?}", d.metrics)
    };
    assert_eq!(
        (g.name.as_ref(), g.kind, g.value),
        ("g", MetricType::Gauge, Value::Int(i64::MAX))
    );
    assert_eq!(c.kind, MetricType::Counter);
    assert!(c.value.same(Value::Float(0.1 + 0.2)));
    assert_eq!((u.kind, u.value), (MetricType::Gauge, Value::Int(-3)));
    for m in &d.metrics {
        assert_eq!(m.timestamp_ns, Some(T));
        assert_eq!(m.timestamp, Some(T / 1_000_000));
        assert_eq!(tag(m, "service.name"), Some("api"));
        assert_eq!(tag(m, "otel_scope_name"), Some("lib"));
        assert_eq!(tag(m, "otel_scope_version"), Some("1.0"));
        assert_eq!(tag(m, "otel_temporality"), None);
    }
    assert_eq!(g.created_timestamp, None, "a gauge has no start");
    assert_eq!(c.created_timestamp, Some(START / 1_000_000));
}

#[test]
fn nan_infinities_and_unrecorded_points_are_values() {
    let weird_nan = f64::from_bits(0x7ff8_0000_0000_00ab);
    let stale = NumberDataPoint {
        flags: 1,
        ..number(None, vec![kv("p", s("stale"))])
    };
    let d = run(request(
        vec![],
        vec![gauge(
            "g",
            vec![
                number(Some(Number::AsDouble(weird_nan)), vec![kv("p", s("nan"))]),
                number(
                    Some(Number::AsDouble(f64::NEG_INFINITY)),
                    vec![kv("p", s("inf"))],
                ),
                stale,
            ],
        )],
    ));
    let bits: Vec<u64> = d
        .metrics
        .iter()
        .map(|m| m.value.as_f64().to_bits())
        .collect();
    assert_eq!(
        bits,
        [weird_nan.to_bits(), f64::NEG_INFINITY.to_bits(), STALE_NAN]
    );
    // A histogram without a recorded value: every series stale.
    let mut p = hist_point(&[1.0], &[1, 1], 2, Some(3.0));
    p.flags = 1;
    let d = run(request(vec![], vec![histogram("h", p)]));
    assert_eq!(d.metrics.len(), 4);
    assert!(d
        .metrics
        .iter()
        .all(|m| m.value.as_f64().to_bits() == STALE_NAN));
}

#[test]
fn delta_is_stored_with_a_tag_and_unspecified_temporality_refused() {
    let d = run(request(
        vec![],
        vec![sum(
            "bytes",
            DELTA,
            true,
            vec![number(Some(Number::AsInt(5)), vec![])],
        )],
    ));
    assert_eq!(d.metrics.len(), 1);
    assert_eq!(d.metrics[0].kind, MetricType::Counter);
    assert_eq!(tag(&d.metrics[0], "otel_temporality"), Some("delta"));
    let r = refusal(request(
        vec![],
        vec![sum(
            "bytes",
            0,
            true,
            vec![number(Some(Number::AsInt(5)), vec![])],
        )],
    ));
    assert_eq!(
        r,
        r#"resource_metrics[0].scope_metrics[0].metrics[0] "bytes": aggregation_temporality 0 is neither delta (1) nor cumulative (2)"#
    );
    let r = refusal(request(
        vec![],
        vec![sum(
            "bytes",
            DELTA,
            true,
            vec![number(
                Some(Number::AsInt(5)),
                vec![kv("otel_temporality", s("x"))],
            )],
        )],
    ));
    assert!(
        r.ends_with(r#"data_points[0]: attribute "otel_temporality" is reserved"#),
        "{r}"
    );
}

#[test]
fn histograms_become_cumulative_le_buckets() {
    let d = run(request(
        vec![],
        vec![histogram(
            "http.duration",
            hist_point(&[0.005, 1.0, 250.0], &[1, 0, 3, 2], 6, Some(512.5)),
        )],
    ));
    assert_eq!(
        series(&d),
        [
            row("http.duration_bucket", Some("0.005"), Value::UInt(1)),
            row("http.duration_bucket", Some("1"), Value::UInt(1)),
            row("http.duration_bucket", Some("250"), Value::UInt(4)),
            row("http.duration_bucket", Some("+Inf"), Value::UInt(6)),
            row("http.duration_sum", None, Value::Float(512.5)),
            row("http.duration_count", None, Value::UInt(6)),
        ]
    );
    assert!(d.metrics.iter().all(|m| m.kind == MetricType::Histogram));
    assert_eq!(d.points, 1);
    // Only count (and no sum): +Inf and _count.
    let d = run(request(
        vec![],
        vec![histogram("h", hist_point(&[], &[], 9, None))],
    ));
    assert_eq!(
        series(&d),
        [
            row("h_bucket", Some("+Inf"), Value::UInt(9)),
            row("h_count", None, Value::UInt(9))
        ]
    );
}

#[test]
fn hostile_histograms_are_refused_with_what_and_where() {
    let cases: Vec<(HistogramDataPoint, &str)> = vec![
        (
            hist_point(&[1.0, 2.0, 3.0, 4.0], &[1, 1, 1], 3, None),
            "bucket_counts has 3 entries for 4 explicit_bounds (must be one more)",
        ),
        (
            hist_point(&[1.0], &[], 3, None),
            "bucket_counts is empty but explicit_bounds has 1 entries",
        ),
        (
            hist_point(&[2.0, 1.0], &[1, 1, 1], 3, None),
            "explicit_bounds not strictly increasing at [1] (2 then 1)",
        ),
        (
            hist_point(&[1.0, 1.0], &[1, 1, 1], 3, None),
            "explicit_bounds not strictly increasing at [1] (1 then 1)",
        ),
        (
            hist_point(&[f64::NAN], &[1, 1], 2, None),
            "explicit_bounds[0] is NaN, not finite",
        ),
        (
            hist_point(&[f64::INFINITY], &[1, 1], 2, None),
            "explicit_bounds[0] is inf, not finite",
        ),
        (
            hist_point(&[1.0], &[1, 1], 5, None),
            "bucket_counts add up to 2 but count is 5",
        ),
        (
            hist_point(&[1.0], &[u64::MAX, 1], 0, None),
            "bucket_counts add up to more than 2^64",
        ),
    ];
    for (point, why) in cases {
        let r = refusal(request(vec![], vec![histogram("http.duration", point)]));
        assert_eq!(
            r,
            format!(
                r#"resource_metrics[0].scope_metrics[0].metrics[0] "http.duration" data_points[0]: {why}"#
            )
        );
    }
    let bounds: Vec<f64> = (0..=MAX_BOUNDS).map(|b| b as f64).collect();
    let r = refusal(request(
        vec![],
        vec![histogram(
            "h",
            hist_point(&bounds, &vec![0; MAX_BOUNDS + 2], 0, None),
        )],
    ));
    assert!(r.ends_with("1025 explicit_bounds, at most 1024"), "{r}");
    let mut p = hist_point(&[1.0], &[1, 1], 2, None);
    p.attributes = vec![kv("le", s("5"))];
    let r = refusal(request(vec![], vec![histogram("h", p)]));
    assert!(r.ends_with(r#"attribute "le" is reserved"#), "{r}");
}

#[test]
fn exponential_histograms_become_le_buckets() {
    // Scale 0: base 2. Positive bucket i holds (2^i, 2^(i+1)], negative
    // bucket i holds [-2^(i+1), -2^i).
    let d = run(request(
        vec![],
        vec![exponential(exp_point(0, 1, (0, &[1, 2]), (0, &[3])))],
    ));
    assert_eq!(
        series(&d),
        [
            row("exp_bucket", Some("-1"), Value::UInt(3)),
            row("exp_bucket", Some("0"), Value::UInt(4)),
            row("exp_bucket", Some("2"), Value::UInt(5)),
            row("exp_bucket", Some("4"), Value::UInt(7)),
            row("exp_bucket", Some("+Inf"), Value::UInt(7)),
            row("exp_sum", None, Value::Float(1.0)),
            row("exp_count", None, Value::UInt(7)),
        ]
    );
    // Scale 1, offset -2, empty buckets skipped: bucket -1 ends at 2^0 = 1,
    // bucket 1 at 2^1 = 2.
    let d = run(request(
        vec![],
        vec![exponential(exp_point(1, 0, (-2, &[0, 4, 0, 1]), (0, &[])))],
    ));
    let les: Vec<_> = series(&d)
        .into_iter()
        .filter_map(|(_, le, v)| Some((le?, v)))
        .collect();
    assert_eq!(
        les,
        [
            ("1".into(), Value::UInt(4)),
            ("2".into(), Value::UInt(5)),
            ("+Inf".into(), Value::UInt(5))
        ]
    );
    // Scale -2: base 16.
    let d = run(request(
        vec![],
        vec![exponential(exp_point(-2, 0, (1, &[1]), (0, &[])))],
    ));
    assert_eq!(tag(&d.metrics[0], "le"), Some("256"));
}

#[test]
fn hostile_exponential_histograms_are_refused() {
    let many = vec![1u64; MAX_EXP_BUCKETS + 1];
    let mut wrong_count = exp_point(0, 1, (0, &[1]), (0, &[]));
    wrong_count.count = 3;
    let mut nan_zero = exp_point(0, 1, (0, &[1]), (0, &[]));
    nan_zero.zero_threshold = f64::NAN;
    let mut wide_zero = exp_point(0, 1, (0, &[1]), (0, &[]));
    wide_zero.zero_threshold = 10.0;
    let cases: Vec<(ExponentialHistogramDataPoint, &str)> = vec![
        (
            exp_point(21, 0, (0, &[1]), (0, &[])),
            "scale 21 outside -10..=20",
        ),
        (
            exp_point(-11, 0, (0, &[1]), (0, &[])),
            "scale -11 outside -10..=20",
        ),
        (
            exp_point(i32::MAX, 0, (0, &[1]), (0, &[])),
            "scale 2147483647 outside -10..=20",
        ),
        (
            exp_point(0, 0, (0, &many), (0, &[])),
            "positive has 1025 buckets, at most 1024",
        ),
        (
            exp_point(0, 0, (0, &[]), (0, &many)),
            "negative has 1025 buckets, at most 1024",
        ),
        (
            exp_point(0, 0, (i32::MAX, &[1]), (0, &[])),
            "bucket index 2147483648 at scale 0 is outside the range of f64",
        ),
        (
            exp_point(-10, 0, (0, &[]), (i32::MIN, &[1])),
            "bucket index -2147483648 at scale -10 is outside the range of f64",
        ),
        (
            exp_point(20, 0, (1 << 30, &[1]), (0, &[])),
            "bucket index 1073741825 at scale 20 is outside the range of f64",
        ),
        (
            wrong_count,
            "zero_count and bucket_counts add up to 2 but count is 3",
        ),
        (
            nan_zero,
            "zero_threshold NaN is not a finite non-negative number",
        ),
        (wide_zero, "zero_threshold 10 overlaps the buckets"),
    ];
    for (point, why) in cases {
        let r = refusal(request(vec![], vec![exponential(point)]));
        assert_eq!(
            r,
            format!(
                r#"resource_metrics[0].scope_metrics[0].metrics[0] "exp" data_points[0]: {why}"#
            )
        );
    }
}

#[test]
fn summaries_become_quantile_series() {
    let point = |quantile: f64| SummaryDataPoint {
        time_unix_nano: T,
        count: 10,
        sum: 4.5,
        quantile_values: vec![ValueAtQuantile {
            quantile,
            value: 0.25,
        }],
        ..Default::default()
    };
    let summary = |p| {
        metric(
            "rpc",
            Data::Summary(Summary {
                data_points: vec![p],
            }),
        )
    };
    let d = run(request(vec![], vec![summary(point(0.99))]));
    assert_eq!(
        series(&d),
        [
            row("rpc", Some("0.99"), Value::Float(0.25)),
            row("rpc_sum", None, Value::Float(4.5)),
            row("rpc_count", None, Value::UInt(10)),
        ]
    );
    assert!(d.metrics.iter().all(|m| m.kind == MetricType::Summary));
    for q in [1.5, -0.1, f64::NAN] {
        let r = refusal(request(vec![], vec![summary(point(q))]));
        assert!(r.ends_with("outside 0..=1"), "{r}");
    }
}

#[test]
fn hostile_names_refuse_the_whole_metric_once() {
    let two = || {
        vec![
            number(Some(Number::AsInt(1)), vec![]),
            number(Some(Number::AsInt(2)), vec![]),
        ]
    };
    let long = "n".repeat(256);
    let for_histogram = "h".repeat(250);
    for (m, why) in [
        (gauge("", two()), "empty metric name".to_string()),
        (gauge(&long, two()), "metric name over 255 bytes".into()),
        (
            gauge("a\nb", two()),
            "control character in the metric name".into(),
        ),
    ] {
        let d = run(request(vec![], vec![m]));
        assert!(d.metrics.is_empty());
        assert_eq!((d.refused.points, d.refused.reasons.len()), (2, 1));
        assert!(
            d.refused.reasons[0].contains(&why),
            "{:?}",
            d.refused.reasons
        );
    }
    assert!(run(request(vec![], vec![gauge(&"n".repeat(255), two())]))
        .refused
        .is_empty());
    let r = refusal(request(
        vec![],
        vec![histogram(&for_histogram, hist_point(&[], &[], 1, None))],
    ));
    assert!(r.contains("metric name over 248 bytes"), "{r}");
    // Dots, units, UTF-8: kept as sent.
    let d = run(request(
        vec![],
        vec![gauge("http.server.duration_°C", two())],
    ));
    assert_eq!(d.metrics[0].name, "http.server.duration_°C");
    // No data at all: a warning, nothing to count.
    let d = run(request(
        vec![],
        vec![OtlpMetric {
            name: "x".into(),
            ..Default::default()
        }],
    ));
    assert_eq!((d.refused.points, d.refused.noted), (0, 1));
    assert!(d.refused.reasons[0].ends_with(
        r#""x": no data (none of gauge, sum, histogram, exponential_histogram, summary)"#
    ));
}

#[test]
fn points_without_value_or_from_the_future_are_refused_alone() {
    let future = NumberDataPoint {
        time_unix_nano: (NOW_MS + MAX_FUTURE_MS + 1) * 1_000_000,
        ..number(Some(Number::AsInt(1)), vec![])
    };
    let unset_time = NumberDataPoint {
        time_unix_nano: 0,
        ..number(Some(Number::AsInt(2)), vec![])
    };
    let d = run(request(
        vec![],
        vec![gauge("g", vec![number(None, vec![]), future, unset_time])],
    ));
    assert_eq!(d.refused.points, 2);
    assert!(
        d.refused.reasons[0].ends_with("data_points[0]: no value (neither as_int nor as_double)")
    );
    assert!(
        d.refused.reasons[1].contains("data_points[1]: time_unix_nano"),
        "{:?}",
        d.refused
    );
    assert!(d.refused.reasons[1].ends_with("is more than 10 minutes in the future"));
    // 0 is unset: stored at the time of receipt (filled in when stored).
    assert_eq!(d.metrics.len(), 1);
    assert_eq!(
        (d.metrics[0].timestamp, d.metrics[0].timestamp_ns),
        (None, None)
    );
    // A whole millisecond: `timestamp` says it all.
    let whole = NumberDataPoint {
        time_unix_nano: 1_699_999_999_123_000_000,
        ..number(Some(Number::AsInt(2)), vec![])
    };
    let d = run(request(vec![], vec![gauge("g", vec![whole])]));
    let m = &d.metrics[0];
    assert_eq!(
        (m.timestamp, m.timestamp_ns),
        (Some(1_699_999_999_123), None)
    );
}

fn nested(depth: usize) -> Any {
    let mut v = s("leaf");
    for _ in 0..depth {
        v = Any::ArrayValue(ArrayValue {
            values: vec![AnyValue { value: Some(v) }],
        });
    }
    v
}

#[test]
fn attribute_values_have_a_documented_string_form() {
    let attributes = vec![
        kv("str", s("")),
        kv("int", Any::IntValue(-9_007_199_254_740_993)),
        kv("bool", Any::BoolValue(true)),
        kv("double", Any::DoubleValue(2.5)),
        kv("inf", Any::DoubleValue(f64::INFINITY)),
        kv("bytes", Any::BytesValue(vec![0, 255, 1])),
        kv(
            "array",
            Any::ArrayValue(ArrayValue {
                values: [
                    s("a\"b"),
                    Any::IntValue(1),
                    Any::BoolValue(false),
                    Any::DoubleValue(f64::NAN),
                ]
                .into_iter()
                .map(|v| AnyValue { value: Some(v) })
                .chain([AnyValue { value: None }])
                .collect(),
            }),
        ),
        kv(
            "kvlist",
            Any::KvlistValue(KeyValueList {
                values: vec![kv("k", Any::DoubleValue(1.0)), kv("n", nested(1))],
            }),
        ),
        KeyValue {
            key: "none".into(),
            value: None,
        },
        kv("deep", nested(MAX_DEPTH)),
    ];
    let d = run(request(
        vec![],
        vec![gauge("g", vec![number(Some(Number::AsInt(1)), attributes)])],
    ));
    assert!(d.refused.is_empty(), "{:?}", d.refused);
    let m = &d.metrics[0];
    let want = [
        ("str", ""),
        ("int", "-9007199254740993"),
        ("bool", "true"),
        ("double", "2.5"),
        ("inf", "+Inf"),
        ("bytes", "AP8B"),
        ("array", r#"["a\"b",1,false,"NaN",null]"#),
        ("kvlist", r#"{"k":1,"n":["leaf"]}"#),
        ("none", ""),
    ];
    for (k, v) in want {
        assert_eq!(tag(m, k), Some(v), "{k}");
    }
    assert_eq!(
        tag(m, "deep").map(|d| d.matches('[').count()),
        Some(MAX_DEPTH)
    );
}

#[test]
fn hostile_attributes_refuse_their_point() {
    let cases: Vec<(Vec<KeyValue>, &str)> = vec![
        (
            vec![kv("deep", nested(MAX_DEPTH + 1))],
            r#"attribute "deep": value nested more than 8 arrays or kvlists deep"#,
        ),
        (
            vec![kv("deep", nested(40))],
            r#"attribute "deep": value nested more than 8"#,
        ),
        (vec![kv("", s("v"))], r#"attribute "": empty attribute key"#),
        (
            vec![kv(&"k".repeat(256), s("v"))],
            "attribute key over 255 bytes",
        ),
        (
            vec![kv("a\u{1}", s("v"))],
            "control character in an attribute key",
        ),
        (
            vec![kv("a", s("1")), kv("a", s("2"))],
            r#"attribute "a": duplicate attribute"#,
        ),
        (
            vec![kv("big", s(&"v".repeat(MAX_VALUE_LEN + 1)))],
            r#"attribute "big": value over 4096 bytes"#,
        ),
        (
            vec![kv(
                "wide",
                Any::ArrayValue(ArrayValue {
                    values: vec![
                        AnyValue {
                            value: Some(s(&"x".repeat(100)))
                        };
                        1000
                    ],
                }),
            )],
            r#"attribute "wide": value over 4096 bytes"#,
        ),
        (
            (0..70).map(|i| kv(&format!("k{i}"), s("v"))).collect(),
            "tags from attributes, at most 64",
        ),
    ];
    for (attributes, why) in cases {
        let r = refusal(request(
            vec![],
            vec![gauge("g", vec![number(Some(Number::AsInt(1)), attributes)])],
        ));
        assert!(r.contains(why), "{r:?} should contain {why:?}");
    }
}

#[test]
fn the_most_specific_attribute_wins_and_bad_resources_refuse_their_points() {
    let mut req = request(
        vec![kv("host", s("resource")), kv("region", s("eu"))],
        vec![gauge(
            "g",
            vec![number(Some(Number::AsInt(1)), vec![kv("host", s("point"))])],
        )],
    );
    req.resource_metrics[0].scope_metrics[0]
        .scope
        .as_mut()
        .unwrap()
        .attributes = vec![kv("team", s("scope"))];
    let d = run(req);
    let m = &d.metrics[0];
    assert_eq!(tag(m, "host"), Some("point"));
    assert_eq!(tag(m, "region"), Some("eu"));
    assert_eq!(tag(m, "otel_scope_team"), Some("scope"));
    let two = vec![
        number(Some(Number::AsInt(1)), vec![]),
        number(Some(Number::AsInt(2)), vec![]),
    ];
    let d = run(request(vec![kv("deep", nested(20))], vec![gauge("g", two)]));
    assert!(d.metrics.is_empty());
    assert_eq!(d.refused.points, 2);
    assert_eq!(
        d.refused.reasons,
        [
            r#"resource_metrics[0].resource: attribute "deep": value nested more than 8 arrays or kvlists deep"#
        ]
    );
}

#[test]
fn a_flood_of_bad_points_formats_ten_reasons() {
    let points = (0..100_000).map(|_| number(None, vec![])).collect();
    let d = run(request(vec![], vec![gauge("g", points)]));
    assert_eq!(d.refused.points, 100_000);
    assert_eq!(d.refused.reasons.len(), MAX_REASONS);
    let message = d.refused.message();
    assert!(
        message.starts_with("100000 data points refused (100000 reasons, the first 10 shown): "),
        "{message}"
    );
    assert!(message.len() < MAX_REASONS * (MAX_REASON_LEN + 2) + 100);
}

fn json(body: &str) -> Result<Decoded, String> {
    decode(Encoding::Json, body.as_bytes(), NOW_MS)
}

fn json_points(points: &str) -> String {
    format!(
        r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"name":"g","sum":{{"aggregationTemporality":2,"isMonotonic":true,"dataPoints":{points}}}}}]}}]}}]}}"#
    )
}

#[test]
fn json_takes_64_bit_integers_as_strings_and_as_numbers() {
    let t = T.to_string();
    let body = json_points(&format!(
        r#"[{{"timeUnixNano":"{t}","asInt":"9223372036854775807"}},
            {{"timeUnixNano":{t},"asInt":9007199254740993}},
            {{"timeUnixNano":"{t}","asInt":-5}},
            {{"timeUnixNano":"{t}","asDouble":"NaN"}},
            {{"timeUnixNano":"{t}","asDouble":"-Infinity"}},
            {{"timeUnixNano":"{t}","asDouble":"1.25"}},
            {{"timeUnixNano":"{t}","asDouble":3}}]"#
    ));
    let d = json(&body).unwrap();
    let values: Vec<Value> = d.metrics.iter().map(|m| m.value).collect();
    assert_eq!(
        values[..3],
        [
            Value::Int(i64::MAX),
            Value::Int(9_007_199_254_740_993),
            Value::Int(-5)
        ]
    );
    assert_eq!(values[3].as_f64().to_bits(), NORMAL_NAN);
    assert_eq!(
        values[4..],
        [
            Value::Float(f64::NEG_INFINITY),
            Value::Float(1.25),
            Value::Float(3.0)
        ]
    );
    assert!(d
        .metrics
        .iter()
        .all(|m| m.timestamp_ns == Some(T) && m.kind == MetricType::Counter));
}

#[test]
fn json_follows_the_otlp_mapping_elsewhere_too() {
    // Enum names, unknown and snake_case fields ignored, nulls as defaults,
    // string counts and bounds, base64 bytes, hex exemplar ids ignored.
    let body = r#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"b","value":{"bytesValue":"AP8B"}}]},
        "scopeMetrics":[{"scope":null,"unknownField":{"deep":[1,2,3]},"metrics":[
          {"name":"h","histogram":{"aggregationTemporality":"AGGREGATION_TEMPORALITY_DELTA","dataPoints":[
            {"count":"3","sum":null,"bucketCounts":["1","2"],"explicitBounds":["0.5"],"bucket_counts":["9"],
             "exemplars":[{"spanId":"0102","traceId":"zz","asDouble":1}]}]}},
          {"name":"e","exponentialHistogram":{"aggregationTemporality":2,"dataPoints":[
            {"scale":"0","zeroCount":"1","count":"2","positive":{"offset":"0","bucketCounts":["1"]}}]}}]}]}]}"#;
    let d = json(body).unwrap();
    assert!(d.refused.is_empty(), "{:?}", d.refused);
    assert_eq!(
        series(&d),
        [
            row("h_bucket", Some("0.5"), Value::UInt(1)),
            row("h_bucket", Some("+Inf"), Value::UInt(3)),
            row("h_count", None, Value::UInt(3)),
            row("e_bucket", Some("0"), Value::UInt(1)),
            row("e_bucket", Some("2"), Value::UInt(2)),
            row("e_bucket", Some("+Inf"), Value::UInt(2)),
            row("e_count", None, Value::UInt(2)),
        ]
    );
    assert_eq!(tag(&d.metrics[0], "otel_temporality"), Some("delta"));
    assert_eq!(tag(&d.metrics[0], "b"), Some("AP8B"));
    assert_eq!(json(r#"{}"#).unwrap().metrics.len(), 0);
    assert_eq!(
        json(r#"{"resourceMetrics":null}"#).unwrap().metrics.len(),
        0
    );
}

#[test]
fn undecodable_json_is_an_error_with_a_path() {
    let cases = [
        ("", "invalid OTLP JSON body: EOF while parsing"),
        ("{", "invalid OTLP JSON body"),
        ("[]", "invalid OTLP JSON body: an array, not an ExportMetricsServiceRequest object"),
        (
            &json_points(r#"[{"asInt":"12x"}]"#),
            "invalid OTLP JSON body at resourceMetrics[0].scopeMetrics[0].metrics[0].sum.dataPoints[0].asInt",
        ),
        (
            &json_points(r#"[{"asInt":1.5}]"#),
            "invalid OTLP JSON body at resourceMetrics[0].scopeMetrics[0].metrics[0].sum.dataPoints[0].asInt",
        ),
        (
            &json_points(r#"[{"timeUnixNano":"-1"}]"#),
            "timeUnixNano",
        ),
        (
            &json_points(r#"[{"asInt":"1","asDouble":1}]"#),
            "resourceMetrics[0].scopeMetrics[0].metrics[0]: a data point with both asDouble and asInt",
        ),
        (
            r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"x","gauge":{},"sum":{}}]}]}]}"#,
            "metrics[0]: more than one of gauge, sum",
        ),
        (
            r#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"k","value":{"bytesValue":"!!"}}]}}]}"#,
            r#"resourceMetrics[0].resource: attribute "k": bytesValue is not base64"#,
        ),
        (
            r#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"k","value":{"intValue":"1","stringValue":"a"}}]}}]}"#,
            "an AnyValue with more than one value",
        ),
    ];
    for (body, want) in cases {
        let e = json(body).unwrap_err();
        assert!(e.contains(want), "{body}: {e:?} should contain {want:?}");
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    // JSON: serde_json stops at 128 levels.
    let mut v = r#"{"stringValue":"x"}"#.to_string();
    for _ in 0..1000 {
        v = format!(r#"{{"arrayValue":{{"values":[{v}]}}}}"#);
    }
    let body = format!(
        r#"{{"resourceMetrics":[{{"resource":{{"attributes":[{{"key":"k","value":{v}}}]}}}}]}}"#
    );
    let e = json(&body).unwrap_err();
    assert!(e.contains("recursion limit exceeded"), "{e}");
    // Protobuf: prost stops at 100 levels.
    let req = request(vec![kv("k", nested(200))], vec![]);
    let e = decode(Encoding::Protobuf, &req.encode_to_vec(), NOW_MS).unwrap_err();
    assert!(e.starts_with("invalid OTLP protobuf body: "), "{e}");
    assert!(e.ends_with("recursion limit reached"), "{e}");
    assert!(e.len() < MAX_ERROR_LEN + 10, "{e}");
}

#[test]
fn undecodable_protobuf_is_an_error_and_empty_is_nothing() {
    for garbage in [
        &b"\xff\xff\xff"[..],
        b"not protobuf at all",
        &[0x0a, 0x05, 0x01],
    ] {
        let e = decode(Encoding::Protobuf, garbage, NOW_MS).unwrap_err();
        assert!(e.starts_with("invalid OTLP protobuf body: "), "{e}");
    }
    let d = decode(Encoding::Protobuf, b"", NOW_MS).unwrap();
    assert!(d.metrics.is_empty() && d.refused.is_empty());
}

#[test]
fn answers_in_both_encodings() {
    let ok = Refused::default();
    assert!(export_response(Encoding::Protobuf, &ok).is_empty());
    assert_eq!(export_response(Encoding::Json, &ok), b"{}");
    let mut refused = Refused::default();
    refused.note(3, || "why".into());
    let body = export_response(Encoding::Protobuf, &refused);
    let back = ExportMetricsServiceResponse::decode(&body[..]).unwrap();
    let partial = back.partial_success.unwrap();
    assert_eq!(partial.rejected_data_points, 3);
    assert_eq!(partial.error_message, "3 data points refused: why");
    let body: serde_json::Value =
        serde_json::from_slice(&export_response(Encoding::Json, &refused)).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"partialSuccess": {"rejectedDataPoints": "3", "errorMessage": "3 data points refused: why"}})
    );
    let status = Status::decode(&status_body(Encoding::Protobuf, 400, "bad")[..]).unwrap();
    assert_eq!((status.code, status.message.as_str()), (3, "bad"));
    let status: serde_json::Value =
        serde_json::from_slice(&status_body(Encoding::Json, 503, "later")).unwrap();
    assert_eq!(status, serde_json::json!({"code": 14, "message": "later"}));
}

#[test]
fn floats_are_written_short() {
    for (v, want) in [
        (1.0, "1"),
        (0.005, "0.005"),
        (250.0, "250"),
        (-1.5, "-1.5"),
        (1e300, "1e300"),
        (1.5e-300, "1.5e-300"),
        (f64::INFINITY, "+Inf"),
        (f64::NAN, "NaN"),
    ] {
        assert_eq!(format_float(v), want);
    }
}

#[test]
fn a_request_stores_at_most_max_series() {
    // 1024 buckets of one byte each: 1027 series per point.
    let full = vec![1u64; MAX_EXP_BUCKETS];
    let point = exp_point(0, 0, (-512, &full), (0, &[]));
    let per_point = MAX_EXP_BUCKETS + 3;
    let points = MAX_SERIES / per_point + 1;
    let req = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![metric(
                    "exp",
                    Data::ExponentialHistogram(ExponentialHistogram {
                        data_points: vec![point; points],
                        aggregation_temporality: CUMULATIVE,
                    }),
                )],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let body = req.encode_to_vec();
    assert!(body.len() < 200_000, "{} bytes", body.len());
    let d = decode(Encoding::Protobuf, &body, NOW_MS).unwrap();
    assert_eq!(d.metrics.len(), (points - 1) * per_point);
    assert_eq!(d.refused.points, 1);
    assert!(d.refused.reasons[0].ends_with("the request makes more than 100000 series"));
}
