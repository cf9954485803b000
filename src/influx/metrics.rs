//! From a parsed line to stored metrics: one metric per numeric or boolean
//! field, named the way Telegraf's Prometheus output names them.
//!
//! | line protocol | stored metric |
//! |---|---|
//! | measurement `cpu`, field `usage_idle` | name `cpu_usage_idle` |
//! | field named `value` | name `cpu` (the measurement alone) |
//! | float field | the float (finite: the parser refuses NaN and ±Inf) |
//! | `12i` / `12u` | an exact integer (an int64 over 2^53 is not rounded) |
//! | `true` / `false` | 1.0 / 0.0 |
//! | string field | refused and counted, never stored |
//! | tags | tags, plus the request's database or bucket as tag `db` (a tag `db` in the line wins) |
//! | timestamp | `timestamp` in ms; `timestamp_ns` too when it has sub-ms digits; none → the time of receipt |
//!
//! The type is `unknown`: line protocol does not say whether a field is a
//! counter or a gauge.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::{timestamp_ns, FieldValue, Line, Precision};
use crate::batch::MAX_NAME_LEN;
use crate::record::{Metric, MetricType, Value};

/// Most tags a line may carry (the `db` tag included).
pub const MAX_TAGS: usize = 64;
/// Longest tag key, in bytes.
pub const MAX_TAG_KEY_LEN: usize = 255;
/// Longest tag value, in bytes.
pub const MAX_TAG_VALUE_LEN: usize = 4096;

/// The tag that carries the request's database (1.x) or bucket (2.x).
pub const DB_TAG: &str = "db";

/// What one line gave: its metrics, and the string fields it dropped.
#[derive(Debug)]
pub struct LineMetrics<'a> {
    pub metrics: Vec<Metric<'a>>,
    /// Names of the string fields refused (not metric values).
    pub string_fields: Vec<Cow<'a, str>>,
}

/// The metrics of one line. `Err` refuses the whole line with the reason;
/// `now_ns` stands in for a missing timestamp.
pub fn metrics_of<'a>(
    line: &Line<'a>,
    db: &'a str,
    precision: Precision,
    now_ns: i64,
) -> Result<LineMetrics<'a>, String> {
    let ns = match line.timestamp {
        Some(ts) => timestamp_ns(ts, precision)?,
        None => now_ns,
    };
    let ns = u64::try_from(ns).map_err(|_| format!("timestamp {ns} ns is before 1970"))?;
    let tags = std::sync::Arc::new(tags_of(line, db)?);
    let mut out = LineMetrics {
        metrics: Vec::with_capacity(line.fields.len()),
        string_fields: Vec::new(),
    };
    for (key, value) in &line.fields {
        let value = match value {
            FieldValue::Float(v) => Value::Float(*v),
            FieldValue::Int(v) => Value::Int(*v),
            FieldValue::UInt(v) => Value::UInt(*v),
            FieldValue::Bool(b) => Value::Float(if *b { 1.0 } else { 0.0 }),
            FieldValue::Str(_) => {
                out.string_fields.push(key.clone());
                continue;
            }
        };
        let name = metric_name(&line.measurement, key);
        if name.len() > MAX_NAME_LEN {
            return Err(format!(
                "field {key:?}: metric name {} bytes long, over {MAX_NAME_LEN}",
                name.len()
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(format!(
                "field {key:?}: control character in the metric name"
            ));
        }
        out.metrics.push(Metric {
            name,
            value,
            kind: MetricType::Unknown,
            tags: tags.clone(),
            timestamp: Some(ns / 1_000_000),
            timestamp_ns: (ns % 1_000_000 != 0).then_some(ns),
            created_timestamp: None,
            unit: None,
            help: None,
            histogram: None,
            exemplar: None,
        });
    }
    Ok(out)
}

/// `<measurement>_<field>`, or the measurement alone for a field `value`.
pub fn metric_name<'a>(measurement: &Cow<'a, str>, field: &Cow<'a, str>) -> Cow<'a, str> {
    if field == "value" {
        measurement.clone()
    } else {
        Cow::Owned(format!("{measurement}_{field}"))
    }
}

fn tags_of<'a>(
    line: &Line<'a>,
    db: &'a str,
) -> Result<BTreeMap<Cow<'a, str>, Cow<'a, str>>, String> {
    let mut tags = BTreeMap::new();
    if !db.is_empty() {
        tags.insert(Cow::Borrowed(DB_TAG), Cow::Borrowed(db));
    }
    for (k, v) in &line.tags {
        if k.len() > MAX_TAG_KEY_LEN {
            return Err(format!(
                "tag key {}…: {} bytes, over {MAX_TAG_KEY_LEN}",
                cut(k),
                k.len()
            ));
        }
        if v.len() > MAX_TAG_VALUE_LEN {
            return Err(format!(
                "tag {k:?}: value {} bytes, over {MAX_TAG_VALUE_LEN}",
                v.len()
            ));
        }
        tags.insert(k.clone(), v.clone());
    }
    if tags.len() > MAX_TAGS {
        return Err(format!("{} tags, over {MAX_TAGS}", tags.len()));
    }
    Ok(tags)
}

/// The first few characters, for a message about a long string.
fn cut(s: &str) -> &str {
    let mut end = s.len().min(40);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
