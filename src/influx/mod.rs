//! InfluxDB line protocol (Telegraf, InfluxDB client libraries): a pure
//! parser, no HTTP. [`parse`] takes a whole request body and answers each
//! line on its own; [`decode`] maps each good line to its metrics
//! (`metrics.rs`) and counts the bad ones, so the caller can store the good
//! lines and refuse the bad ones as InfluxDB 1.x does (partial writes).
//!
//! Rules, after InfluxDB 1.6's own parser (`line.rs` says which of its
//! functions each comes from, and where metricstream differs on purpose):
//! floats must start with a digit, '-' or '.' (so inf, NaN and +1 are
//! refused) and be finite; `12i` is i64 and `12u` u64, both exact; booleans
//! t/T/true/True/TRUE and f/F/false/False/FALSE; a backslash escapes `,`
//! and space in measurements (and is dropped before `=` and `"`), `,` `=`
//! and space in tag keys and values, `,` `=` space and `"` in field keys,
//! `"` and `\` in string fields, and is a literal character before
//! anything else (`C:\\share` keeps both backslashes); a string field may
//! span lines. Tag values may not be empty. Duplicate tag or field keys,
//! and a field whose type changes within one body, refuse the line.
//! `write.rs` writes a [`Line`] back so that the parser reads the same.
//!
//! Limits: a line is at most [`MAX_LINE`] bytes (names and values live
//! inside it, so that bounds them too).

mod line;
pub mod metrics;
mod precision;
#[cfg(test)]
mod tests;
mod write;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

pub use line::{lines, parse_line, Lines};
pub use metrics::metrics_of;
pub use precision::{timestamp_ns, Precision};

use crate::record::Metric;

/// Longest accepted line, in bytes (without its line end). Bounds the work
/// and memory one line can cost; Telegraf lines are a few hundred bytes.
pub const MAX_LINE: usize = 64 * 1024;
/// How many reasons [`Refused::reasons`] keeps.
pub const MAX_REASONS: usize = 10;

#[derive(Debug, Clone, PartialEq)]
pub struct Line<'a> {
    pub measurement: Cow<'a, str>,
    pub tags: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    pub fields: Vec<(Cow<'a, str>, FieldValue<'a>)>,
    /// In the request's precision; see [`timestamp_ns`].
    pub timestamp: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    Float(f64),
    Int(i64),
    UInt(u64),
    Bool(bool),
    Str(Cow<'a, str>),
}

impl FieldValue<'_> {
    pub fn type_name(&self) -> &'static str {
        match self {
            FieldValue::Float(_) => "float",
            FieldValue::Int(_) => "integer",
            FieldValue::UInt(_) => "unsigned",
            FieldValue::Bool(_) => "boolean",
            FieldValue::Str(_) => "string",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based, counting every text line of the body (comments and blanks
    /// too): the one the line starts on (a string field may span several).
    pub line_number: usize,
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line_number, self.message)
    }
}

impl std::error::Error for LineError {}

/// One entry per line that is neither blank nor a comment, in body order.
#[derive(Debug, Default)]
pub struct Parsed<'a> {
    pub lines: Vec<Result<Line<'a>, LineError>>,
    /// The 1-based line number of each entry of `lines`.
    numbers: Vec<usize>,
}

impl<'a> Parsed<'a> {
    /// Each entry with its 1-based line number in the body.
    pub fn numbered(&self) -> impl Iterator<Item = (usize, &Result<Line<'a>, LineError>)> {
        self.numbers.iter().copied().zip(&self.lines)
    }

    pub fn ok(&self) -> impl Iterator<Item = &Line<'a>> {
        self.lines.iter().filter_map(|l| l.as_ref().ok())
    }

    pub fn errors(&self) -> impl Iterator<Item = &LineError> {
        self.lines.iter().filter_map(|l| l.as_ref().err())
    }
}

type FieldTypes<'a> = HashMap<Cow<'a, str>, HashMap<Cow<'a, str>, &'static str, Fast>, Fast>;

/// The type map costs a lookup per field; SipHash's flood resistance buys
/// nothing for a map that lives one request and is capped by its body.
type Fast = crate::hash::Fx;

/// Parses a body line by line ([`lines`]). A field whose type differs
/// from the one an earlier line of the same body gave it (same
/// measurement) fails its line with "field type conflict", as InfluxDB
/// refuses such a point.
pub fn parse(body: &[u8]) -> Parsed<'_> {
    let mut out = Parsed::default();
    let mut types: FieldTypes<'_> = HashMap::default();
    for (line_number, raw) in lines(body) {
        let result = match parse_line(raw) {
            Ok(None) => continue,
            Ok(Some(line)) => check_types(&mut types, line),
            Err(message) => Err(message),
        };
        out.lines.push(result.map_err(|message| LineError {
            line_number,
            message,
        }));
        out.numbers.push(line_number);
    }
    out
}

/// A request body as stored metrics, and what was refused: the valid lines
/// are kept, the others counted with their reasons.
#[derive(Debug, Default)]
pub struct Decoded<'a> {
    /// The metrics of every line kept, in body order.
    pub metrics: Vec<Metric<'a>>,
    pub refused: Refused,
}

/// What was refused, with the first reasons.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refused {
    /// Lines that are neither blank nor a comment, refused or not.
    pub lines: usize,
    /// Lines refused whole: unparseable, or a metric they make is invalid.
    pub lines_refused: usize,
    /// String fields refused (not metric values); the rest of their line
    /// is kept.
    pub strings_refused: usize,
    /// The first [`MAX_REASONS`], each naming its line: `line 3: …`.
    pub reasons: Vec<String>,
}

impl Refused {
    /// Points refused: whole lines and string fields.
    pub fn points(&self) -> usize {
        self.lines_refused + self.strings_refused
    }

    /// Formats the reason only while there is room for it.
    fn note(&mut self, number: usize, why: impl FnOnce() -> String) {
        if self.reasons.len() < MAX_REASONS {
            self.reasons.push(format!("line {number}: {}", why()));
        }
    }
}

/// Parses `body` and maps each valid line to its metrics ([`metrics_of`]):
/// `db` is the request's database or bucket, `precision` its timestamps',
/// and `now_ns` (the time of receipt) stands in for a missing timestamp.
pub fn decode<'a>(body: &'a [u8], db: &'a str, precision: Precision, now_ns: i64) -> Decoded<'a> {
    let parsed = parse(body);
    let mut out = Decoded::default();
    let refused = &mut out.refused;
    refused.lines = parsed.lines.len();
    for (number, line) in parsed.numbered() {
        let got = match line {
            Ok(line) => metrics_of(line, db, precision, now_ns),
            Err(e) => Err(e.message.clone()),
        };
        let got = match got {
            Ok(got) => got,
            Err(why) => {
                refused.lines_refused += 1;
                refused.note(number, || why);
                continue;
            }
        };
        if !got.string_fields.is_empty() {
            refused.strings_refused += got.string_fields.len();
            refused.note(number, || {
                let names: Vec<String> =
                    got.string_fields.iter().map(|k| format!("{k:?}")).collect();
                format!(
                    "string field {} refused (not a metric value)",
                    names.join(", ")
                )
            });
        }
        out.metrics.extend(got.metrics);
    }
    out
}

fn check_types<'a>(types: &mut FieldTypes<'a>, line: Line<'a>) -> Result<Line<'a>, String> {
    let known = match types.get_mut(line.measurement.as_ref()) {
        Some(known) => known,
        None => types.entry(line.measurement.clone()).or_default(),
    };
    let mut new = false;
    for (key, value) in &line.fields {
        match known.get(key.as_ref()) {
            Some(&seen) if seen != value.type_name() => {
                return Err(format!(
                    "field {key:?}: field type conflict: {} here, {seen} on an earlier line",
                    value.type_name()
                ));
            }
            Some(_) => {}
            None => new = true,
        }
    }
    if !new {
        return Ok(line);
    }
    for (key, value) in &line.fields {
        if !known.contains_key(key.as_ref()) {
            known.insert(key.clone(), value.type_name());
        }
    }
    Ok(line)
}
