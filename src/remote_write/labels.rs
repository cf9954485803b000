//! The label rules of a series, shared by both versions, and how a series
//! is named in a reason.

use std::borrow::Cow;
use std::fmt::Write;

use super::{MAX_LABELS, MAX_NAME_LEN, MAX_VALUE_LEN};

pub(super) const NAME: &str = "__name__";

/// Room for the series in a reason, leaving some for what is wrong with it.
const DESCRIBE_LEN: usize = 120;
/// Longest label value quoted in a reason.
pub(super) const QUOTED_VALUE_LEN: usize = 32;

/// The length of the longest prefix of `s` of at most `max` bytes that
/// ends on a character boundary.
pub(super) fn boundary(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// `s` cut to at most `max` bytes on a character boundary, with `…` when
/// something was cut.
pub(super) fn cut(s: &str, max: usize) -> Cow<'_, str> {
    let end = boundary(s, max);
    if end == s.len() {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(format!("{}…", &s[..end]))
    }
}

/// Shortens `s` in place to at most `max` bytes on a character boundary.
pub(super) fn truncate(s: &mut String, max: usize) {
    let end = boundary(s, max);
    s.truncate(end);
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
    name_problem(name).is_none()
}

/// Why a metric or label name is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NameProblem {
    Empty,
    TooLong,
    Control,
}

impl std::fmt::Display for NameProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NameProblem::Empty => f.write_str("empty"),
            NameProblem::TooLong => write!(f, "over {MAX_NAME_LEN} bytes"),
            NameProblem::Control => f.write_str("control character"),
        }
    }
}

/// What keeps `name` (a metric or label name) from being stored, if
/// anything: any other UTF-8 is a name (see the module doc).
pub(super) fn name_problem(name: &str) -> Option<NameProblem> {
    if name.is_empty() {
        Some(NameProblem::Empty)
    } else if name.len() > MAX_NAME_LEN {
        Some(NameProblem::TooLong)
    } else if name.chars().any(char::is_control) {
        Some(NameProblem::Control)
    } else {
        None
    }
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
            if let Some(problem) = name_problem(value) {
                return Err(match problem {
                    NameProblem::Empty => "empty metric name".into(),
                    NameProblem::TooLong => format!("metric name {problem}"),
                    NameProblem::Control => "control character in metric name".into(),
                });
            }
            metric = Some(value);
            continue;
        }
        count += 1;
        if count > MAX_LABELS {
            return Err(format!("more than {MAX_LABELS} labels"));
        }
        if let Some(problem) = name_problem(name) {
            return Err(format!(
                "invalid label name {:?}: {problem}",
                cut(name, QUOTED_VALUE_LEN)
            ));
        }
        let quoted = || cut(name, QUOTED_VALUE_LEN);
        if value.is_empty() {
            return Err(format!("label {:?} has an empty value", quoted()));
        }
        if value.len() > MAX_VALUE_LEN {
            return Err(format!(
                "label {:?} has a value over {MAX_VALUE_LEN} bytes",
                quoted()
            ));
        }
    }
    metric.ok_or_else(|| "no __name__ label".into())
}
