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
    // A bare `=` is literal in a measurement.
    assert_eq!(one("a=b v=1").measurement, "a=b");
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
        r"m\a,k\\x=v\b f=1e300",
        r#"C:\\share\\x,path=C:\\share\\x,h=two\\\ words,e\\\,q=\=x f\\\,k=1,s="a\\\"b" 5"#,
        "m s=\"two\nlines\" 5",
        "m f=-0.0",
    ] {
        let l = one(s);
        assert_eq!(l.unwritable(), None, "{s}");
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
    let deep = "\\ ".repeat(MAX_LINE / 4);
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

/// The measurement, tags and fields of one line, for the table tests.
type Parts = (String, Vec<(String, String)>, Vec<(String, String)>);

fn parts(s: &str) -> Parts {
    let l = one(s);
    let fields = l
        .fields
        .iter()
        .map(|(k, v)| {
            let v = match v {
                FieldValue::Str(s) => s.to_string(),
                FieldValue::Float(x) => x.to_string(),
                other => other.to_string(),
            };
            (k.to_string(), v)
        })
        .collect();
    let tags = l
        .tags
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (l.measurement.to_string(), tags, fields)
}

fn tag(k: &str, v: &str) -> Vec<(String, String)> {
    vec![(k.to_string(), v.to_string())]
}

/// Outside string fields a backslash before a backslash is two literal
/// characters (InfluxDB's `unescapeTag`, `escape.Unescape`,
/// `escape.AppendUnescaped` drop a backslash only before `,` `=` space
/// `"`): Windows paths keep every backslash, in every part.
#[test]
fn double_backslashes_are_literal_outside_strings() {
    let (m, tags, _) = parts(r"cpu,path=C:\\share\\x value=1");
    assert_eq!(m, "cpu");
    assert_eq!(tags, tag("path", r"C:\\share\\x"));
    // The space is escaped by the backslash right before it; only that
    // one is dropped.
    assert_eq!(
        parts(r"cpu,host=two\\\ words value=1").1,
        tag("host", r"two\\ words")
    );
    assert_eq!(parts(r"a\\b v=1").0, r"a\\b");
    assert_eq!(parts(r"m,k\\x=1 v=1").1, tag(r"k\\x", "1"));
    assert_eq!(parts(r"m f\\x=1").2, tag(r"f\\x", "1"));
    // Only in a string field is `\\` one backslash.
    assert_eq!(parts(r#"m s="a\\b\"c\d""#).2, tag("s", r#"a\b"c\d"#));
    // A backslash before an ordinary byte is literal everywhere.
    let (m, tags, fields) = parts(r#"m\a,k\b=v\c f\d="\e""#);
    assert_eq!(m, r"m\a");
    assert_eq!(tags, tag(r"k\b", r"v\c"));
    assert_eq!(fields, tag(r"f\d", r"\e"));
}

/// In a measurement and in tags, a delimiter right after a backslash is
/// escaped whatever comes before that backslash (`scanMeasurement`,
/// `scanTagsKey`, `scanTagsValue` look at the one byte before).
#[test]
fn a_backslash_before_a_delimiter_always_escapes_it_in_names() {
    assert_eq!(parts(r"m\\ x f=1").0, r"m\ x");
    assert_eq!(parts(r"m\\,x f=1").0, r"m\,x");
    assert_eq!(parts(r"m\\\,x f=1").0, r"m\\,x");
    assert_eq!(parts(r"m,t\\=x=1 f=1").1, tag(r"t\=x", "1"));
    assert_eq!(parts(r"m,t=a\\,b f=1").1, tag("t", r"a\,b"));
    assert_eq!(parts(r"m,t\ =a f=1").1, tag("t ", "a"));
    assert_eq!(parts(r"m,\=k=a f=1").1, tag("=k", "a"));
    // So a name never ends in a backslash: the delimiter after it is
    // part of the name and the line falls apart.
    assert!(err(r"m,t=x\\ f=1").contains("unescaped '='"));
    assert!(err(r"m,t=a\ f=1").contains("unescaped '='"));
    assert!(err(r"m,t\=v f=1").contains("missing tag value"));
    assert_eq!(err(r"m\ f=1"), "missing fields");
    assert_eq!(err(r"m\\ f=1"), "missing fields");
}

/// What each part drops a backslash before: a measurement `,` `"` space
/// `=` (`escape.Unescape`), tags `,` space `=` (`unescapeTag`), field keys
/// `,` `"` space `=` (`escape.AppendUnescaped`).
#[test]
fn each_part_has_its_own_escapes() {
    assert_eq!(parts(r"a\=b v=1").0, "a=b");
    assert_eq!(parts(r#"a\"b v=1"#).0, r#"a"b"#);
    assert_eq!(parts(r"\#x v=1").0, r"\#x");
    assert_eq!(parts(r#"m,t=a\"b f=1"#).1, tag("t", r#"a\"b"#));
    assert_eq!(parts(r#"m f\"x=1"#).2, tag(r#"f"x"#, "1"));
    assert_eq!(parts(r"m f\=x=1").2, tag("f=x", "1"));
    assert_eq!(parts(r"m f\ x=1,g\,y=2").2[1], ("g,y".into(), "2".into()));
    // A bare `"` is literal in a field key.
    assert_eq!(parts(r#"m f"x=1"#).2, tag(r#"f"x"#, "1"));
    // A tag value may start with a bare `=` (`scanTagsValue` checks its
    // first byte for `,` and space only).
    assert_eq!(parts("m,t==x f=1").1, tag("t", "=x"));
    assert_eq!(parts("m,t== f=1").1, tag("t", "="));
    assert!(err("m,t=a=b f=1").contains("unescaped '='"));
    assert!(err("m,=k=a f=1").contains("empty tag key"));
}

/// Field keys are read in backslash pairs from the left (`scanFields`),
/// so an even run of backslashes does not escape what follows it.
#[test]
fn field_keys_pair_their_backslashes() {
    assert_eq!(parts(r"m a\\\,b=1").2, tag(r"a\\,b", "1"));
    assert_eq!(parts(r#"m f\\"x=8"#).2, tag(r#"f\"x"#, "8"));
    assert_eq!(parts(r#"m f\\\"x=8"#).2, tag(r#"f\\"x"#, "8"));
    assert!(err(r"m a\\,b=1").contains("missing value"));
    assert!(err(r"m a\\ b=1").contains("missing value"));
    // InfluxDB's second pass reads the `=` after `\\` as escaped and
    // stores a field `a\=1,b`: refused here.
    assert!(err(r"m a\\=1,b=2").contains("ends in a backslash"));
    assert!(err(r"m f\\=1").contains("ends in a backslash"));
}

#[test]
fn string_fields() {
    assert_eq!(parts(r#"m f="\"" 1"#).2, tag("f", "\""));
    assert_eq!(parts(r#"m f="\\" 1"#).2, tag("f", "\\"));
    assert_eq!(parts(r#"m f="a\\\"b""#).2, tag("f", r#"a\"b"#));
    assert_eq!(err(r#"m f="\" 1"#), "field \"f\": unterminated string");
    assert_eq!(err(r#"m f="x\"#), "field \"f\": unterminated string");
    // A newline inside the quotes is part of the string.
    assert_eq!(parts("m s=\"a\nb\" 5").2, tag("s", "a\nb"));
    assert_eq!(parts("m s=\"a\\\nb\" 5").2, tag("s", "a\\\nb"));
    // InfluxDB would store `a"` for this; refused here.
    assert!(err(r#"m s="a"b,c=1"#).contains("unexpected 'b'"));
    assert!(err("m v=\"x\"\t 5").contains("unexpected '\\t'"));
}

/// A body splits at `\n` outside a string's quotes and not right after a
/// backslash (`scanLine`); line numbers are where each line starts.
#[test]
fn lines_split_as_influxdb_splits_them() {
    let body =
        b"m s=\"a\nb\" 5\nn v=2 6\r\nx,t=a\\\nb v=1 7\n# c=1 \"q\nswallowed v=1\n\"\nlast v=1";
    let got: Vec<(usize, &[u8])> = lines(body).collect();
    let want: Vec<(usize, &[u8])> = vec![
        (1, b"m s=\"a\nb\" 5"),
        (3, b"n v=2 6\r"),
        (4, b"x,t=a\\\nb v=1 7"),
        // A comment's `"` after an `=` opens a "string" too.
        (6, b"# c=1 \"q\nswallowed v=1\n\""),
        (9, b"last v=1"),
    ];
    assert_eq!(got, want);
    let p = parse(body);
    let ok: Vec<_> = p.ok().collect();
    assert_eq!(ok.len(), 4, "{:?}", p.lines);
    assert_eq!(ok[2].tags[0].1, "a\\\nb");
    let p = parse(b"m v=1\nm s=\"open\nm v=2\nm v=3\n");
    let numbered: Vec<_> = p.numbered().map(|(n, l)| (n, l.is_ok())).collect();
    assert_eq!(numbered, [(1, true), (2, false)]);
    // A backslash pairs with the byte after it only if one more follows.
    assert_eq!(lines(b"a\\\nb").count(), 1);
    assert_eq!(lines(b"a\\\n").count(), 1);
    assert_eq!(lines(b"a\\\n\n").count(), 1);
    assert_eq!(lines(b"a\n\\\n").count(), 2);
}

/// Spaces, tabs and NULs are skipped before a line, its fields and its
/// timestamp (`skipWhitespace`); only a space separates.
#[test]
fn tabs_are_no_separators() {
    assert_eq!(parts("\t m v=1").0, "m");
    assert_eq!(parts("\0m v=1").0, "m");
    assert_eq!(parse_line(b"\t# comment"), Ok(None));
    assert_eq!(parts("m\tx v=1").0, "m\tx");
    assert_eq!(parts("m,t=a\tb v=1").1, tag("t", "a\tb"));
    assert_eq!(one("m \t v=1 \t 5").timestamp, Some(5));
    assert_eq!(one("m v=1 \t").timestamp, None);
    assert_eq!(one("m v=1 5   ").timestamp, Some(5));
    assert!(err("m v=1\t5").contains("invalid value"));
    assert!(err("m v=1\t").contains("invalid value"));
    assert!(err("m v=1 5\t").contains("invalid timestamp"));
    assert!(err("m,t=x\tv=1 5").contains("unescaped '='"));
    assert_eq!(err("m\tv=1"), "missing fields");
    // A CRLF line end is the one place metricstream is looser.
    assert_eq!(one("m v=1 5\r").timestamp, Some(5));
    assert_eq!(parse_line(b" \r"), Ok(None));
}

/// What the writer can and cannot put in line protocol.
#[test]
fn unwritable_lines() {
    let line =
        |m: &'static str, tags: Vec<(&'static str, &'static str)>, field: &'static str| Line {
            measurement: m.into(),
            tags: tags
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            fields: vec![(field.into(), FieldValue::Float(1.0))],
            timestamp: Some(5),
        };
    // Writable, and read back the same: backslashes everywhere.
    for l in [
        line(r"C:\share", vec![("path", r"C:\share\x")], "value"),
        line(r"a\,b", vec![(r"k\=", r"v\ "), ("e", "=x")], r"f\\,x"),
        line(r#"a\"b=c"#, vec![("q", r#"a"b"#)], r#"f\"x"#),
        line(" lead", vec![("t", " x")], " f"),
    ] {
        assert_eq!(l.unwritable(), None, "{l}");
        assert_eq!(one(&l.to_string()), l, "{l}");
    }
    assert_eq!(
        line(r"C:\share", vec![], "v").to_string(),
        r"C:\share v=1.0 5"
    );
    assert_eq!(
        line("m", vec![("t", r"a\,b c")], "v").to_string(),
        r"m,t=a\\,b\ c v=1.0 5"
    );
    assert_eq!(line(r"a\=b", vec![], "v").to_string(), r"a\\=b v=1.0 5");
    for (l, why) in [
        (line(r"ends\", vec![], "v"), "ends in a backslash"),
        (line("m", vec![(r"k\", "v")], "v"), "ends in a backslash"),
        (line("m", vec![("k", r"C:\")], "v"), "ends in a backslash"),
        (line("m", vec![], r"f\"), "ends in a backslash"),
        (line("m", vec![("k", "a\nb")], "v"), "newline"),
        (line("a\nb", vec![], "v"), "newline"),
        (line("m", vec![("k", "")], "v"), "empty"),
        (line("#m", vec![], "v"), "comment"),
        (line("\tm", vec![], "v"), "skipped"),
        (line("m", vec![], "\0f"), "skipped"),
        (line("m", vec![], r"f\,x"), "odd run of backslashes"),
        (line("m", vec![], r"f\\\ x"), "odd run of backslashes"),
        // `scanLine` pairs the backslashes: the space opens its "fields",
        // the `=` in the tag key then counts, and the `"` opens a string
        // that would swallow the next line.
        (line(r"m\ x", vec![(r"k\=", r#"a"b"#)], "v"), "run on"),
    ] {
        let got = l.unwritable().unwrap_or_default();
        assert!(got.contains(why), "{l:?}: {got:?} lacks {why:?}");
    }
    let mut nan = line("m", vec![], "v");
    nan.fields[0].1 = FieldValue::Float(f64::NAN);
    assert!(nan.unwritable().is_some());
}

proptest::proptest! {
    /// Any line the writer calls writable reads back the same, and ends
    /// where a body's reader ends it.
    #[test]
    fn writable_lines_read_back_the_same(
        m in NAME,
        tags in proptest::collection::btree_map(NAME, NAME, 0..4),
        fields in proptest::collection::btree_map(FIELD_KEY, field_value(), 1..4),
        ts in proptest::option::of(proptest::num::i64::ANY),
    ) {
        let l = Line {
            measurement: m.into(),
            tags: tags.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
            fields: fields.into_iter().map(|(k, v)| (k.into(), v)).collect(),
            timestamp: ts,
        };
        if l.unwritable().is_none() {
            let text = l.to_string();
            proptest::prop_assert_eq!(parse_line(text.as_bytes()), Ok(Some(l.clone())), "{}", text);
            let body = format!("{text}\nnext v=1");
            proptest::prop_assert_eq!(lines(body.as_bytes()).count(), 2, "{}", body);
        }
    }

    /// Every line the parser takes reads back the same once written, and
    /// is writable, but where `scanLine`'s guess at quotes would run it on
    /// into the next line of a body.
    #[test]
    fn parsed_lines_are_writable(text in line_text()) {
        if let Ok(Some(l)) = parse_line(text.as_bytes()) {
            if let Some(why) = l.unwritable() {
                proptest::prop_assert!(why.contains("run on"), "{:?}: {}", text, why);
            }
            let again = l.to_string();
            proptest::prop_assert_eq!(parse_line(again.as_bytes()), Ok(Some(l)), "{:?} -> {:?}", text, again);
        }
    }
}

/// Names made of the bytes that matter to the escaping (never ending in
/// a backslash, which no line can carry).
const NAME: &str = r#"[a\\\\,= "\t#é]{0,5}[a,= "é]"#;
/// Field keys: backslashes in pairs, or before a byte nothing escapes.
const FIELD_KEY: &str = r#"([a,= "\té]|\\\\\\\\|\\\\a){0,4}[a"é]"#;

/// Lines of escaped and bare delimiters and backslashes, most of them
/// with a parseable shape.
fn line_text() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    use proptest::sample::select;
    // Mostly ordinary bytes and escapes; now and then a bare delimiter.
    let piece = || {
        prop_oneof![
            8 => select(vec!["a", "é", "\"", "\t", "#"]),
            6 => select(vec!["\\\\", "\\,", "\\=", "\\ ", "\\\"", "\\a"]),
            1 => select(vec![",", "=", " ", "\\"]),
        ]
    };
    let part = move || proptest::collection::vec(piece(), 1..4).prop_map(|p| p.concat());
    let string = proptest::collection::vec(
        select(vec!["a", " ", ",", "=", "\\\\", "\\\"", "\\a", "\n"]),
        0..4,
    )
    .prop_map(|p| format!("\"{}\"", p.concat()));
    let value = prop_oneof![
        select(vec!["1i", "t", "-2.5"]).prop_map(String::from),
        string
    ];
    let tag = (part(), part()).prop_map(|(k, v)| format!(",{k}={v}"));
    let field = (part(), value).prop_map(|(k, v)| format!("{k}={v}"));
    (
        part(),
        proptest::collection::vec(tag, 0..3),
        proptest::collection::vec(field, 1..3),
        select(vec!["", " 12", " -3 ", " \t5"]),
    )
        .prop_map(|(m, tags, fields, ts)| format!("{m}{} {}{ts}", tags.concat(), fields.join(",")))
}

fn field_value() -> impl proptest::strategy::Strategy<Value = FieldValue<'static>> {
    use proptest::prelude::*;
    prop_oneof![
        proptest::num::f64::NORMAL.prop_map(FieldValue::Float),
        any::<i64>().prop_map(FieldValue::Int),
        any::<u64>().prop_map(FieldValue::UInt),
        any::<bool>().prop_map(FieldValue::Bool),
        r#"[a\\\\,= "\n]{0,5}"#.prop_map(|s| FieldValue::Str(s.into())),
    ]
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
