use std::borrow::Cow;

use super::*;

fn one(s: &str) -> Line<'_> {
    match parse_line(s.as_bytes()) {
        Ok(Some(line)) => line,
        other => panic!("{s:?}: {other:?}"),
    }
}

fn err(s: &str) -> String {
    match parse_line(s.as_bytes()) {
        Err(e) => e,
        other => panic!("{s:?} accepted: {other:?}"),
    }
}

fn field<'a>(line: &'a Line<'_>, key: &str) -> &'a FieldValue<'a> {
    &line.fields.iter().find(|(k, _)| k == key).unwrap().1
}

#[test]
fn full_line() {
    let l = one("cpu,host=a,region=eu usage=1.5,n=3i,u=4u,ok=t,s=\"x y\" 1700000000000000000");
    assert_eq!(l.measurement, "cpu");
    assert_eq!(
        l.tags,
        vec![
            (Cow::from("host"), Cow::from("a")),
            (Cow::from("region"), Cow::from("eu"))
        ]
    );
    assert_eq!(field(&l, "usage"), &FieldValue::Float(1.5));
    assert_eq!(field(&l, "n"), &FieldValue::Int(3));
    assert_eq!(field(&l, "u"), &FieldValue::UInt(4));
    assert_eq!(field(&l, "ok"), &FieldValue::Bool(true));
    assert_eq!(field(&l, "s"), &FieldValue::Str("x y".into()));
    assert_eq!(l.timestamp, Some(1_700_000_000_000_000_000));
    assert!(matches!(l.measurement, Cow::Borrowed(_)));
}

#[test]
fn no_timestamp_no_tags() {
    let l = one("m v=1");
    assert_eq!(l.timestamp, None);
    assert!(l.tags.is_empty());
    assert_eq!(field(&l, "v"), &FieldValue::Float(1.0));
}

#[test]
fn floats() {
    for (s, x) in [
        ("1", 1.0),
        ("1.5", 1.5),
        ("-1e3", -1000.0),
        ("1E+5", 1e5),
        (".5", 0.5),
        ("-0", -0.0),
        ("1.7976931348623157e308", f64::MAX),
    ] {
        assert_eq!(
            field(&one(&format!("m v={s}")), "v"),
            &FieldValue::Float(x),
            "{s}"
        );
    }
    for s in [
        "inf", "-inf", "NaN", "nan", "+1", "1e999", "1x", "1.2.3", "e5", "--1",
    ] {
        err(&format!("m v={s}"));
    }
}

#[test]
fn integers_exact() {
    let big = (1i64 << 53) + 1;
    assert_eq!(
        field(&one(&format!("m v={big}i")), "v"),
        &FieldValue::Int(big)
    );
    assert_eq!(
        field(&one(&format!("m v={}i", i64::MAX)), "v"),
        &FieldValue::Int(i64::MAX)
    );
    assert_eq!(
        field(&one(&format!("m v={}i", i64::MIN)), "v"),
        &FieldValue::Int(i64::MIN)
    );
    assert_eq!(
        field(&one(&format!("m v={}u", u64::MAX)), "v"),
        &FieldValue::UInt(u64::MAX)
    );
    assert!(err("m v=9223372036854775808i").contains("out of range"));
    assert!(err("m v=18446744073709551616u").contains("out of range"));
    assert!(err("m v=-1u").contains("invalid unsigned"));
    assert_eq!(err("m value=12x"), "field \"value\": invalid value \"12x\"");
    assert_eq!(
        err("m value=1.5i"),
        "field \"value\": invalid integer \"1.5i\""
    );
    err("m v=i");
    err("m v=+1i");
}

#[test]
fn booleans() {
    for s in ["t", "T", "true", "True", "TRUE"] {
        assert_eq!(
            field(&one(&format!("m v={s}")), "v"),
            &FieldValue::Bool(true)
        );
    }
    for s in ["f", "F", "false", "False", "FALSE"] {
        assert_eq!(
            field(&one(&format!("m v={s}")), "v"),
            &FieldValue::Bool(false)
        );
    }
    err("m v=tRUE");
    err("m v=yes");
}

#[test]
fn escapes_from_the_docs() {
    let l = one(r#"my\ Measurement fieldKey="string value""#);
    assert_eq!(l.measurement, "my Measurement");
    let l = one(r#"myMeasurement fieldKey="\"string\" within a string""#);
    assert_eq!(
        field(&l, "fieldKey"),
        &FieldValue::Str(r#""string" within a string"#.into())
    );
    let l = one(r#"myMeasurement,tag\ Key1=tag\ Value1,tag\ Key2=tag\ Value2 fieldKey=100"#);
    assert_eq!(l.tags[0], ("tag Key1".into(), "tag Value1".into()));
    let l = one(r#"myMeasurement,tagKey=🍭 fieldKey="Launch 🚀" 1556813561098000000"#);
    assert_eq!(l.tags[0].1, "🍭");
    assert_eq!(field(&l, "fieldKey"), &FieldValue::Str("Launch 🚀".into()));
    let l = one(r#"myMeasurement fieldKey="\\""#);
    assert_eq!(field(&l, "fieldKey"), &FieldValue::Str("\\".into()));
    let l = one(r#"myMeasurement fieldKey="\\\\\"""#);
    assert_eq!(field(&l, "fieldKey"), &FieldValue::Str(r#"\\""#.into()));
    let l = one(r#"m\,x,k\,1\=2=v\=1\,2 f\ k\=1=1"#);
    assert_eq!(l.measurement, "m,x");
    assert_eq!(l.tags[0], ("k,1=2".into(), "v=1,2".into()));
    assert_eq!(l.fields[0].0, "f k=1");
    // A backslash before anything else is literal, as in InfluxDB.
    let l = one(r#"m\a,k=v\b f="a\nb""#);
    assert_eq!(l.measurement, r"m\a");
    assert_eq!(l.tags[0].1, r"v\b");
    assert_eq!(field(&l, "f"), &FieldValue::Str(r"a\nb".into()));
    // `=` is literal in a measurement.
    assert_eq!(one("a=b v=1").measurement, "a=b");
    assert_eq!(one(r"a\\b v=1").measurement, r"a\b");
}

#[test]
fn structural_errors() {
    assert_eq!(err("cpu"), "missing fields");
    assert_eq!(err("cpu,host=a"), "missing fields");
    assert_eq!(err(",host=a v=1"), "empty measurement");
    assert_eq!(err(" v=1"), "missing fields");
    assert!(err("cpu,host v=1").contains("missing tag value"));
    assert!(err("cpu,host= v=1").contains("empty tag value"));
    assert!(err("cpu,=a v=1").contains("empty tag key"));
    assert_eq!(err("cpu,a=1,b=2,a=3 v=1"), "duplicate tag key \"a\"");
    assert_eq!(err("cpu v=1,v=2"), "duplicate field key \"v\"");
    assert_eq!(err("cpu v="), "field \"v\": missing value");
    assert!(err("cpu v").contains("missing value"));
    assert!(err("cpu =1").contains("empty field key"));
    assert_eq!(err("cpu s=\"abc"), "field \"s\": unterminated string");
    assert!(err("cpu s=\"a\"b").contains("unexpected"));
    assert!(err("cpu v=1 12x").contains("invalid timestamp"));
    assert!(err("cpu v=1 1.5").contains("invalid timestamp"));
    assert!(err("cpu v=1 99999999999999999999").contains("out of range"));
    assert!(err("cpu v=1 1 2").contains("invalid timestamp"));
    assert!(err("cpu v=1,").contains("empty field key"));
    assert!(parse_line(b"cpu v=\"\xff\"")
        .unwrap_err()
        .contains("invalid UTF-8"));
}

#[test]
fn whitespace_comments_line_ends() {
    let p = parse(b"# comment\r\n\r\ncpu v=1 -5\r\n   \n  mem v=2i  \n#x y=1\ndisk v=t");
    let ok: Vec<_> = p.ok().collect();
    assert_eq!(ok.len(), 3);
    assert_eq!(ok[0].timestamp, Some(-5));
    assert_eq!(ok[1].measurement, "mem");
    assert_eq!(p.errors().count(), 0);
}

#[test]
fn errors_carry_line_numbers() {
    let p = parse(b"cpu v=1\n# c\nm value=12x\ncpu v=2\n\nbad\ncpu s=\"x\n");
    let errors: Vec<String> = p.errors().map(|e| e.to_string()).collect();
    assert_eq!(
        errors,
        [
            "line 3: field \"value\": invalid value \"12x\"",
            "line 6: missing fields",
            "line 7: field \"s\": unterminated string",
        ]
    );
    assert_eq!(p.ok().count(), 2);
}

#[test]
fn field_type_conflict_between_lines() {
    let p = parse(b"cpu v=1\ncpu v=2i\nmem v=2i\ncpu v=3\ncpu w=\"a\",v=1\ncpu w=1\n");
    let errors: Vec<_> = p
        .errors()
        .map(|e| (e.line_number, e.message.clone()))
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0].0, 2);
    assert!(
        errors[0].1.contains("field type conflict"),
        "{}",
        errors[0].1
    );
    assert_eq!(errors[1].0, 6);
    assert_eq!(p.ok().count(), 4);
}

#[test]
fn display_round_trips() {
    for s in [
        r#"m\,x\ y,k\,1\=2=v\=1\,2\ z f\ k\=1=1.5,i=-3i,u=7u,b=false,s="a\"b\\c" 123"#,
        r"m\a,k\\=v\b f=1e300",
        "m f=-0.0",
    ] {
        let l = one(s);
        let again = l.to_string();
        assert_eq!(one(&again), l, "{s} -> {again}");
    }
}

#[test]
fn hostile() {
    let huge = format!("m v={}", "1".repeat(MAX_LINE));
    assert!(err(&huge).contains("line too long"));
    let many: String = (0..100_000)
        .map(|i| format!("f{i}=1"))
        .collect::<Vec<_>>()
        .join(",");
    assert!(err(&format!("m {many}")).contains("line too long"));
    // As many fields as fit, with the set-based duplicate check.
    let fit: String = (0..6000)
        .map(|i| format!("f{i}=1"))
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(one(&format!("m {fit}")).fields.len(), 6000);
    assert!(err(&format!("m {fit},f5999=2")).contains("duplicate field key"));
    // Deep escaping: every byte of a long name escaped.
    let deep = "\\\\".repeat(MAX_LINE / 4);
    assert_eq!(one(&format!("{deep} v=1")).measurement.len(), MAX_LINE / 4);
    let s = format!("m s=\"{}\"", "\\\"".repeat(MAX_LINE / 4));
    assert_eq!(
        field(&one(&s), "s"),
        &FieldValue::Str("\"".repeat(MAX_LINE / 4).into())
    );
    // Only delimiters and garbage.
    for s in [
        "=", ",", " ", "\\", "\"", "m,", "m ,", "m v=\"", "m v=\\", "m\\", ",,,", "m v=1 \\",
    ] {
        let _ = parse_line(s.as_bytes());
    }
}

#[test]
fn precision() {
    for (s, p) in [
        ("ns", Precision::Nanoseconds),
        ("n", Precision::Nanoseconds),
        ("us", Precision::Microseconds),
        ("u", Precision::Microseconds),
        ("µ", Precision::Microseconds),
        ("ms", Precision::Milliseconds),
        ("s", Precision::Seconds),
        ("m", Precision::Minutes),
        ("h", Precision::Hours),
    ] {
        assert_eq!(Precision::parse(s), Ok(p));
    }
    assert!(Precision::parse("x").is_err());
    assert!(Precision::parse("").is_err());
    assert_eq!(timestamp_ns(5, Precision::Seconds), Ok(5_000_000_000));
    assert_eq!(timestamp_ns(-2, Precision::Hours), Ok(-7_200_000_000_000));
    assert_eq!(timestamp_ns(i64::MAX, Precision::Nanoseconds), Ok(i64::MAX));
    assert!(timestamp_ns(i64::MAX / 1000 + 1, Precision::Microseconds).is_err());
    assert!(timestamp_ns(i64::MIN, Precision::Milliseconds).is_err());
}

mod to_metrics {
    use super::*;
    use crate::influx::metrics::{metric_name, LineMetrics, MAX_TAGS};
    use crate::record::{MetricType, Value};

    fn of(line: &str, precision: Precision) -> Result<LineMetrics<'_>, String> {
        metrics_of(&one(line), "d", precision, 42)
    }

    #[test]
    fn one_metric_per_numeric_field_named_like_telegraf() {
        let got = of(
            "cpu,host=a value=1,idle=2i,up=f,s=\"x\" 5",
            Precision::Seconds,
        )
        .unwrap();
        let names: Vec<&str> = got.metrics.iter().map(|m| m.name.as_ref()).collect();
        assert_eq!(names, ["cpu", "cpu_idle", "cpu_up"]);
        assert_eq!(got.string_fields, [Cow::from("s")]);
        assert_eq!(got.metrics[1].value, Value::Int(2));
        assert_eq!(got.metrics[2].value, Value::Float(0.0));
        for m in &got.metrics {
            assert_eq!(m.kind, MetricType::Unknown);
            assert_eq!(m.timestamp, Some(5_000));
            assert_eq!(m.timestamp_ns, None);
            assert_eq!(m.tags.get("db").map(|v| v.as_ref()), Some("d"));
            assert_eq!(m.tags.get("host").map(|v| v.as_ref()), Some("a"));
        }
        assert_eq!(metric_name(&"m".into(), &"value".into()), "m");
    }

    #[test]
    fn timestamps_keep_their_nanoseconds_or_take_the_receipt_time() {
        let got = of("m f=1 1700000000123456789", Precision::Nanoseconds).unwrap();
        assert_eq!(got.metrics[0].timestamp, Some(1_700_000_000_123));
        assert_eq!(got.metrics[0].timestamp_ns, Some(1_700_000_000_123_456_789));
        let got = of("m f=1", Precision::Seconds).unwrap();
        assert_eq!(got.metrics[0].timestamp, Some(0), "now_ns = 42");
        assert_eq!(got.metrics[0].timestamp_ns, Some(42));
        let e = of("m f=1 -5", Precision::Nanoseconds).unwrap_err();
        assert!(e.contains("before 1970"), "{e}");
        let e = of("m f=1 153722867280912931", Precision::Minutes).unwrap_err();
        assert!(e.contains("out of range"), "{e}");
    }

    #[test]
    fn limits_refuse_the_line() {
        let long = format!("m {}=1", "f".repeat(300));
        assert!(of(&long, Precision::Seconds)
            .unwrap_err()
            .contains("over 255"));
        let tags: String = (0..MAX_TAGS).map(|i| format!(",t{i}=v")).collect();
        let e = of(&format!("m{tags} f=1"), Precision::Seconds).unwrap_err();
        assert!(e.contains("65 tags, over 64"), "{e}");
        let value = "v".repeat(5000);
        let e = of(&format!("m,t={value} f=1"), Precision::Seconds).unwrap_err();
        assert!(e.contains("tag \"t\": value 5000 bytes"), "{e}");
    }
}
