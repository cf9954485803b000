//! Attributes to tags: the key rules, and the string form of a value.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use base64::Engine as _;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};

use super::{cut, format_float, MAX_DEPTH, MAX_KEY_LEN, MAX_VALUE_LEN};

/// A stored metric's tags.
pub(super) type Tags = BTreeMap<Cow<'static, str>, Cow<'static, str>>;

/// Longest key quoted in a reason.
const QUOTED: usize = 64;

/// Adds `attributes` to `tags` as `prefix` + key, over whatever a less
/// specific list put there. Err says which attribute and what is wrong.
pub(super) fn add(tags: &mut Tags, attributes: &[KeyValue], prefix: &str) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    for kv in attributes {
        let key = if prefix.is_empty() {
            kv.key.clone()
        } else {
            format!("{prefix}{}", kv.key)
        };
        let problem = if kv.key.is_empty() {
            Some("empty attribute key".to_string())
        } else if key.len() > MAX_KEY_LEN {
            Some(format!("attribute key over {MAX_KEY_LEN} bytes"))
        } else if key.chars().any(char::is_control) {
            Some("control character in an attribute key".to_string())
        } else if !seen.insert(kv.key.as_str()) {
            Some("duplicate attribute".to_string())
        } else {
            None
        };
        if let Some(p) = problem {
            return Err(format!("attribute {:?}: {p}", cut(&kv.key, QUOTED)));
        }
        let value = render(kv.value.as_ref())
            .map_err(|p| format!("attribute {:?}: {p}", cut(&kv.key, QUOTED)))?;
        tags.insert(Cow::Owned(key), Cow::Owned(value));
    }
    Ok(())
}

/// The string form of an attribute value (module doc, "Attribute values").
pub(super) fn render(value: Option<&AnyValue>) -> Result<String, String> {
    let out = match value.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => format_float(*d),
        Some(Value::BytesValue(b)) => base64::engine::general_purpose::STANDARD.encode(b),
        Some(nested) => {
            let mut out = String::new();
            json(Some(nested), 1, &mut out)?;
            out
        }
    };
    if out.len() > MAX_VALUE_LEN {
        return Err(format!("value over {MAX_VALUE_LEN} bytes"));
    }
    Ok(out)
}

/// Writes an array or kvlist element as compact JSON, refusing depth and
/// length as it goes (so a huge array stops at the limit, not at the end).
fn json(value: Option<&Value>, depth: usize, out: &mut String) -> Result<(), String> {
    if out.len() > MAX_VALUE_LEN {
        return Err(format!("value over {MAX_VALUE_LEN} bytes"));
    }
    match value {
        None => out.push_str("null"),
        Some(Value::StringValue(s)) => quote(s, out)?,
        Some(Value::BoolValue(b)) => {
            let _ = write!(out, "{b}");
        }
        Some(Value::IntValue(i)) => {
            let _ = write!(out, "{i}");
        }
        Some(Value::DoubleValue(d)) if d.is_finite() => out.push_str(&format_float(*d)),
        Some(Value::DoubleValue(d)) => quote(&format_float(*d), out)?,
        Some(Value::BytesValue(b)) => {
            quote(&base64::engine::general_purpose::STANDARD.encode(b), out)?
        }
        Some(Value::ArrayValue(a)) => {
            deeper(depth)?;
            out.push('[');
            for (i, v) in a.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json(v.value.as_ref(), depth + 1, out)?;
            }
            out.push(']');
        }
        Some(Value::KvlistValue(kv)) => {
            deeper(depth)?;
            out.push('{');
            for (i, pair) in kv.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                quote(&pair.key, out)?;
                out.push(':');
                let v = pair.value.as_ref().and_then(|v| v.value.as_ref());
                json(v, depth + 1, out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

fn deeper(depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "value nested more than {MAX_DEPTH} arrays or kvlists deep"
        ));
    }
    Ok(())
}

/// Appends `s` as a JSON string. Serializing a str cannot fail; if it
/// did, the value is refused rather than stored without it.
fn quote(s: &str, out: &mut String) -> Result<(), String> {
    let quoted = serde_json::to_string(s).map_err(|e| format!("cannot write as JSON: {e}"))?;
    out.push_str(&quoted);
    Ok(())
}
