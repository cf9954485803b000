//! The OTLP JSON mapping, undecodable bodies, and the answers' bodies.

use super::*;

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
