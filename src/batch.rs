//! Decoding and validating a `POST /metrics` body into the metrics to
//! store (see [`crate::record`] for how they are stored).
//!
//! The wire format is the C++ system's, accepted unchanged. Strings borrow
//! from the request body where they can (no escapes), so a typical batch is
//! decoded with few allocations. The error for a bad batch names the field:
//! `metrics[3].value: expected a finite number`.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::record::metric::REQUEST_TYPES;
pub use crate::record::{Metric, MetricType, Value};

/// At most this many metrics in one request (the contract's limit).
pub const MAX_METRICS: usize = 1000;
/// Longest metric name, in bytes.
pub const MAX_NAME_LEN: usize = 255;
/// At most this many tags on one metric.
pub const MAX_TAGS: usize = 64;
/// Longest tag key or tag value, in bytes.
pub const MAX_TAG_LEN: usize = 255;

#[derive(Debug, Deserialize)]
struct Wire<'a> {
    #[serde(borrow)]
    metrics: Vec<Object<Metric<'a>>>,
}

/// A struct that must arrive as a JSON object. serde's derive also reads a
/// struct from an array of its fields in order (`["cpu",1,"gauge"]`), which
/// the contract does not allow and no client means.
#[derive(Debug)]
struct Object<T>(T);

trait Named {
    /// What the error says was expected.
    const EXPECTED: &'static str;
}

impl Named for Wire<'_> {
    const EXPECTED: &'static str = r#"an object {"metrics":[...]}"#;
}

impl Named for Metric<'_> {
    const EXPECTED: &'static str = "a metric object";
}

impl<'de, T: Deserialize<'de> + Named> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Object<T>, D::Error> {
        struct Fields<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Named> Visitor<'de> for Fields<T> {
            type Value = Object<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(T::EXPECTED)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Object<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Object)
            }
        }
        d.deserialize_map(Fields(PhantomData))
    }
}

/// A batch that failed decoding or validation; the text says what and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BatchError(pub String);

/// Decodes and validates a request body. Everything is checked before
/// anything is stored, so a batch is accepted whole or not at all.
pub fn decode(body: &[u8]) -> Result<Vec<Metric<'_>>, BatchError> {
    let wire: Object<Wire<'_>> = match serde_json::from_slice(body) {
        Ok(w) => w,
        Err(_) => return Err(shorten(describe_decode_error(body))),
    };
    let mut metrics: Vec<Metric<'_>> = wire.0.metrics.into_iter().map(|m| m.0).collect();
    validate(&metrics).map_err(shorten)?;
    // The contract's values are floats: `17` is stored as `17.0`, as always.
    for m in &mut metrics {
        m.value = Value::Float(m.value.as_f64());
    }
    Ok(metrics)
}

/// Longest error message, in bytes. Messages quote the client's strings (a
/// tag key in the path, an unknown type): a 1 MiB key must not come back as
/// a 1 MiB answer (or log line).
pub const MAX_ERROR_LEN: usize = 400;

fn shorten(e: BatchError) -> BatchError {
    BatchError(shorten_message(e.0))
}

/// A message cut to about [`MAX_ERROR_LEN`] bytes: keeps the head (the
/// path, where) and the tail (what was expected), `…` between.
pub fn shorten_message(m: String) -> String {
    if m.len() <= MAX_ERROR_LEN {
        return m;
    }
    let mut head = MAX_ERROR_LEN / 2;
    while !m.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = m.len() - MAX_ERROR_LEN / 3;
    while !m.is_char_boundary(tail) {
        tail += 1;
    }
    format!("{} … {}", &m[..head], &m[tail..])
}

/// Decoding again with path tracking only on the (rare) error path keeps
/// the fast path free of its bookkeeping.
fn describe_decode_error(body: &[u8]) -> BatchError {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let decoded = serde_path_to_error::deserialize::<_, Object<Wire<'_>>>(&mut *de);
    match decoded {
        // Only what follows the value can be wrong (path tracking does not
        // check for trailing characters).
        Ok(_) => match de.end() {
            Err(e) => BatchError(format!("invalid JSON after the object: {e}")),
            Ok(()) => BatchError("invalid JSON".into()),
        },
        Err(e) => {
            let path = readable_path(&e.path().to_string());
            let inner = e.into_inner();
            let known_path = !path.is_empty();
            match inner.classify() {
                serde_json::error::Category::Data if known_path => {
                    BatchError(format!("{path}: {inner}"))
                }
                _ if known_path => BatchError(format!("invalid JSON in {path}: {inner}")),
                _ => BatchError(format!("invalid JSON: {inner}")),
            }
        }
    }
}

/// serde_path_to_error writes `?` for a map key it had not read yet (an
/// error inside a key, or the end of input before one): drop those segments
/// so the message names the innermost known place, e.g. `metrics[0].tags`.
fn readable_path(path: &str) -> String {
    let mut p = path;
    while let Some(rest) = p.strip_suffix(".?").or_else(|| p.strip_suffix('?')) {
        p = rest;
    }
    if p == "." {
        p = "";
    }
    p.to_string()
}

fn validate(metrics: &[Metric<'_>]) -> Result<(), BatchError> {
    if metrics.is_empty() {
        return Err(BatchError("metrics: the batch is empty".into()));
    }
    if metrics.len() > MAX_METRICS {
        return Err(BatchError(format!(
            "metrics: at most {MAX_METRICS} metrics per request, got {}",
            metrics.len()
        )));
    }
    for (i, m) in metrics.iter().enumerate() {
        let err = |field: &str, what: String| BatchError(format!("metrics[{i}].{field}: {what}"));
        if m.name.is_empty() {
            return Err(err("name", "must not be empty".into()));
        }
        if m.name.len() > MAX_NAME_LEN {
            return Err(err(
                "name",
                format!("longer than {MAX_NAME_LEN} bytes ({})", m.name.len()),
            ));
        }
        if m.name.chars().any(char::is_control) {
            return Err(err("name", "contains a control character".into()));
        }
        if !m.kind.in_requests() {
            let expected: Vec<String> = REQUEST_TYPES.iter().map(|t| format!("`{t}`")).collect();
            return Err(err(
                "type",
                format!(
                    "unknown variant `{}`, expected one of {}",
                    m.kind.as_str(),
                    expected.join(", ")
                ),
            ));
        }
        if m.histogram.is_some() || m.exemplar.is_some() {
            let field = if m.histogram.is_some() {
                "histogram"
            } else {
                "exemplar"
            };
            return Err(err(field, "POST /metrics takes plain samples only".into()));
        }
        if !m.value.is_finite() {
            return Err(err("value", "expected a finite number".into()));
        }
        if m.tags.len() > MAX_TAGS {
            return Err(err(
                "tags",
                format!("at most {MAX_TAGS} tags, got {}", m.tags.len()),
            ));
        }
        for (k, v) in m.tags.iter() {
            if k.is_empty() || k.len() > MAX_TAG_LEN || v.len() > MAX_TAG_LEN {
                return Err(err(
                    &format!("tags.{k}"),
                    format!(
                        "tag keys must be 1-{MAX_TAG_LEN} bytes and values at most {MAX_TAG_LEN}"
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> String {
        err_bytes(body.as_bytes())
    }

    fn err_bytes(body: &[u8]) -> String {
        match decode(body) {
            Ok(m) => panic!("accepted {}: {m:?}", String::from_utf8_lossy(body)),
            Err(e) => e.0,
        }
    }

    fn metric(extra: &str) -> String {
        format!(r#"{{"metrics":[{{"name":"cpu","value":1.5,"type":"gauge"{extra}}}]}}"#)
    }

    #[test]
    fn accepts_the_cpp_load_test_body() {
        let body = r#"{
            "metrics": [
                {
                    "name": "cpu_usage",
                    "value": 42.123456,
                    "type": "gauge",
                    "tags": {"host": "web1", "region": "us-west"}
                },
                {
                    "name": "memory_usage",
                    "value": 7999999999,
                    "type": "gauge",
                    "tags": {"host": "web1"}
                },
                {
                    "name": "requests_total",
                    "value": 17,
                    "type": "counter",
                    "tags": {"service": "api", "host": "web1"}
                }
            ]
        }"#;
        let m = decode(body.as_bytes()).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].name, "cpu_usage");
        assert_eq!(m[1].value, Value::Float(7_999_999_999.0));
        assert_eq!(m[2].kind, MetricType::Counter);
        assert_eq!(m[2].tags["service"], "api");
        assert_eq!(m[0].timestamp, None);
    }

    #[test]
    fn accepts_every_type_and_timestamp() {
        for t in ["counter", "gauge", "histogram", "summary"] {
            let body = format!(
                r#"{{"metrics":[{{"name":"x","value":0,"type":"{t}","timestamp":1732646400000}}]}}"#
            );
            let m = decode(body.as_bytes()).unwrap();
            assert_eq!(m[0].timestamp, Some(1_732_646_400_000));
        }
    }

    #[test]
    fn rejects_malformed_json() {
        let e = err(r#"{"metrics":[{"name":"x""#);
        assert!(e.starts_with("invalid JSON in metrics[0]"), "{e}");
        assert!(err("{not json").starts_with("invalid JSON: key must be a string"));
        assert!(err("not json").starts_with("invalid JSON"));
        assert!(err("").starts_with("invalid JSON"));
    }

    #[test]
    fn rejects_empty_and_oversized_batches() {
        assert_eq!(err(r#"{"metrics":[]}"#), "metrics: the batch is empty");
        let one = r#"{"name":"x","value":1,"type":"gauge"}"#;
        let ok = format!(r#"{{"metrics":[{}]}}"#, vec![one; 1000].join(","));
        assert_eq!(decode(ok.as_bytes()).unwrap().len(), 1000);
        let too_many = format!(r#"{{"metrics":[{}]}}"#, vec![one; 1001].join(","));
        assert_eq!(
            err(&too_many),
            "metrics: at most 1000 metrics per request, got 1001"
        );
    }

    #[test]
    fn rejects_missing_metrics_field() {
        assert!(err(r#"{"data":[]}"#).contains("missing field `metrics`"));
    }

    #[test]
    fn rejects_bad_names() {
        let e = err(r#"{"metrics":[{"name":"","value":1,"type":"gauge"}]}"#);
        assert_eq!(e, "metrics[0].name: must not be empty");
        let long = "n".repeat(256);
        let e = err(&format!(
            r#"{{"metrics":[{{"name":"{long}","value":1,"type":"gauge"}}]}}"#
        ));
        assert!(e.starts_with("metrics[0].name: longer than 255"), "{e}");
        let ok = "n".repeat(255);
        assert!(decode(
            format!(r#"{{"metrics":[{{"name":"{ok}","value":1,"type":"gauge"}}]}}"#).as_bytes()
        )
        .is_ok());
        let e = err(r#"{"metrics":[{"name":"a\u0001b","value":1,"type":"gauge"}]}"#);
        assert_eq!(e, "metrics[0].name: contains a control character");
    }

    #[test]
    fn rejects_non_finite_and_out_of_range_values() {
        // JSON has no NaN/Infinity; such literals are a syntax error.
        assert!(err(&metric("").replace("1.5", "NaN")).contains("metrics[0]"));
        assert!(err(&metric("").replace("1.5", "Infinity")).contains("metrics[0]"));
        // 1e400 does not fit an f64.
        assert!(err(&metric("").replace("1.5", "1e400")).contains("metrics[0].value"));
    }

    #[test]
    fn rejects_unknown_type() {
        let e = err(r#"{"metrics":[{"name":"x","value":1,"type":"meter"}]}"#);
        assert!(
            e.starts_with("metrics[0].type: unknown variant `meter`"),
            "{e}"
        );
    }

    #[test]
    fn rejects_wrong_field_types_with_a_path() {
        let second =
            |m: &str| format!(r#"{{"metrics":[{{"name":"ok","value":1,"type":"gauge"}},{m}]}}"#);
        let e = err(&second(r#"{"name":"x","value":"1","type":"gauge"}"#));
        assert!(
            e.starts_with("metrics[1].value: invalid type: string"),
            "{e}"
        );
        let e = err(&second(r#"{"name":5,"value":1,"type":"gauge"}"#));
        assert!(e.starts_with("metrics[1].name: invalid type"), "{e}");
        let e = err(&second(
            r#"{"name":"x","value":1,"type":"gauge","tags":{"a":1}}"#,
        ));
        assert!(e.starts_with("metrics[1].tags.a: invalid type"), "{e}");
        let e = err(&second(
            r#"{"name":"x","value":1,"type":"gauge","timestamp":-5}"#,
        ));
        assert!(e.starts_with("metrics[1].timestamp: invalid value"), "{e}");
        let e = err(&second(r#"{"value":1,"type":"gauge"}"#));
        assert!(e.contains("missing field `name`"), "{e}");
        let e = err(r#"{"metrics":{"name":"x"}}"#);
        assert!(e.starts_with("metrics: invalid type: map"), "{e}");
    }

    #[test]
    fn rejects_too_many_or_too_long_tags() {
        let tags: Vec<String> = (0..65).map(|i| format!(r#""k{i}":"v""#)).collect();
        let e = err(&metric(&format!(r#","tags":{{{}}}"#, tags.join(","))));
        assert_eq!(e, "metrics[0].tags: at most 64 tags, got 65");
        let e = err(&metric(r#","tags":{"":"v"}"#));
        assert!(e.starts_with("metrics[0].tags."), "{e}");
    }

    /// The error for `body`, checked to start with `want`.
    fn err_starting(body: &[u8], want: &str) {
        let e = err_bytes(body);
        assert!(e.starts_with(want), "{e:?} should start with {want:?}");
    }

    #[test]
    fn metrics_and_the_batch_must_be_objects() {
        // serde's derive would take these arrays of fields as a metric.
        err_starting(
            br#"{"metrics":[["cpu",1,"gauge"]]}"#,
            "metrics[0]: invalid type: sequence, expected a metric object",
        );
        err_starting(
            br#"[[["cpu",1,"gauge"]]]"#,
            r#"invalid JSON: invalid type: sequence, expected an object {"metrics":[...]}"#,
        );
        err_starting(
            "[".repeat(100_000).as_bytes(),
            "invalid JSON: invalid type: sequence",
        );
        err_starting(
            br#"{"metrics":[5]}"#,
            "metrics[0]: invalid type: integer `5`, expected a metric object",
        );
    }

    #[test]
    fn deep_nesting_in_an_ignored_field_is_skipped_without_recursion() {
        // Unknown fields are ignored; serde_json skips them with a loop, not
        // recursion, so depth cannot overflow the stack (the body limit
        // bounds the work).
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let body = format!(
            r#"{{"x":{deep},"metrics":[{{"name":"a","value":1,"type":"gauge","y":{deep}}}]}}"#
        );
        assert_eq!(decode(body.as_bytes()).unwrap().len(), 1);
    }

    #[test]
    fn a_type_that_is_not_a_string_says_what_it_takes() {
        err_starting(
            metric("").replace(r#""gauge""#, "5").as_bytes(),
            "metrics[0].type: invalid type: integer `5`, expected one of `counter`",
        );
    }

    #[test]
    fn errors_name_the_innermost_known_place() {
        // The input ends where the next key would be: no `?` in the path.
        err_starting(
            br#"{"metrics":[{"name":"x""#,
            "invalid JSON in metrics[0]: EOF",
        );
        err_starting(
            b"{\"metrics\":[{\"name\":\"a\",\"value\":1,\"type\":\"gauge\",\"tags\":{\"k\xff\":\"v\"}}]}",
            "invalid JSON in metrics[0].tags: invalid unicode",
        );
        err_starting(
            format!("{} x", metric("")).as_bytes(),
            "invalid JSON after the object: trailing characters",
        );
    }

    #[test]
    fn long_client_strings_are_cut_out_of_messages() {
        let key = "k".repeat(100_000);
        let e = err(&metric(&format!(r#","tags":{{"{key}":"v"}}"#)));
        assert!(e.len() <= MAX_ERROR_LEN + 10, "{} bytes", e.len());
        assert!(e.starts_with("metrics[0].tags.kkk"), "{e}");
        assert!(e.ends_with("values at most 255"), "{e}");
        let e = err(&metric("").replace("gauge", &"é".repeat(50_000)));
        assert!(e.len() <= MAX_ERROR_LEN + 10, "{} bytes", e.len());
        assert!(e.starts_with("metrics[0].type: unknown variant"), "{e}");
        assert!(e.contains("expected one of"), "{e}");
    }

    #[test]
    fn escaped_strings_are_decoded() {
        let m = decode(
            br#"{"metrics":[{"name":"a\"b","value":1,"type":"gauge","tags":{"k\n":"v\u00e9"}}]}"#,
        )
        .unwrap();
        assert_eq!(m[0].name, "a\"b");
        assert_eq!(m[0].tags["k\n"], "v\u{e9}");
    }
}
