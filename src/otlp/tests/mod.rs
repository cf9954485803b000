//! The mapping, case by case: what each kind of point is stored as. The
//! hostile tables are in `hostile`, the JSON mapping and the answers in
//! `json`.

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
use crate::record::value::{NORMAL_NAN, STALE_NAN};
use crate::record::{MetricType, Value};

mod hostile;
mod json;

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
