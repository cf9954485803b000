//! The label rules of a series, shared by both versions, and how a series
//! is named in a reason.

use std::borrow::Cow;
use std::fmt::Write;

use super::{MAX_LABELS, MAX_NAME_LEN, MAX_VALUE_LEN};

pub(super) const NAME: &str = "__name__";

/// Room for the series in a reason, leaving some for what is wrong with it.
const DESCRIBE_LEN: usize = 120;
/// Longest label value quoted in a reason.
const QUOTED_VALUE_LEN: usize = 32;

/// `s` cut to at most `max` bytes on a character boundary, with `…` when
/// something was cut.
pub(super) fn cut(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &s[..end]))
}

/// Shortens `s` in place to at most `max` bytes on a character boundary.
pub(super) fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// `{__name__="x",job="y"}`, values cut, the whole at most about
/// [`DESCRIBE_LEN`] bytes.
pub(super) fn describe<'a>(labels: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::from("{");
    for (i, (name, value)) in labels.enumerate() {
        if out.len() > DESCRIBE_LEN {
            out.push('…');
            break;
        }
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "{}={:?}",
            cut(name, QUOTED_VALUE_LEN),
            cut(value, QUOTED_VALUE_LEN)
        );
    }
    out.push('}');
    out
}

/// A metric name this service stores: non-empty, short, printable.
pub(super) fn metric_name_ok(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN && !name.chars().any(char::is_control)
}

fn label_name_ok(name: &str) -> bool {
    let mut bytes = name.bytes();
    let first_ok = matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'));
    first_ok && name.len() <= MAX_NAME_LEN && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Checks every label rule of the module doc; Ok is the metric name, Err
/// what is wrong (without the series, which the caller adds).
pub(super) fn check<'a>(
    labels: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<&'a str, String> {
    let mut metric = None;
    let mut previous: Option<&str> = None;
    let mut count = 0usize;
    for (name, value) in labels {
        if let Some(prev) = previous {
            if name == prev {
                return Err(format!("duplicate label {:?}", cut(name, QUOTED_VALUE_LEN)));
            }
            if name < prev {
                return Err("labels not sorted".into());
            }
        }
        previous = Some(name);
        if name == NAME {
            if !metric_name_ok(value) {
                return Err(if value.is_empty() {
                    "empty metric name".into()
                } else if value.len() > MAX_NAME_LEN {
                    format!("metric name over {MAX_NAME_LEN} bytes")
                } else {
                    "control character in metric name".into()
                });
            }
            metric = Some(value);
            continue;
        }
        count += 1;
        if count > MAX_LABELS {
            return Err(format!("more than {MAX_LABELS} labels"));
        }
        if !label_name_ok(name) {
            return Err(format!(
                "invalid label name {:?}",
                cut(name, QUOTED_VALUE_LEN)
            ));
        }
        if value.is_empty() {
            return Err(format!("label {name:?} has an empty value"));
        }
        if value.len() > MAX_VALUE_LEN {
            return Err(format!(
                "label {name:?} has a value over {MAX_VALUE_LEN} bytes"
            ));
        }
    }
    metric.ok_or_else(|| "no __name__ label".into())
}
