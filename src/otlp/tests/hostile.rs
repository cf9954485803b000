//! Hostile points, each refused alone with what and where.

use super::*;

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
