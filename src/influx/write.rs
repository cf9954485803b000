//! Line protocol out: a [`Line`] written so that InfluxDB's parser, and
//! `line.rs`, which follows it, read back the same measurement, tags,
//! fields and timestamp. The influx sink writes its points with it.
//!
//! Each part gets a backslash before each byte its reader drops one before
//! (the escape sets of `line.rs`): `,` and space in a measurement, and `=`
//! and `"` too, which InfluxDB's own writer leaves bare but its reader
//! unescapes, so that a backslash before them survives; `,` `=` and space
//! in tags; those and `"` in field keys; `"` and `\` in strings. Every
//! other backslash is written as it is, because the reader keeps it:
//! `C:\share` is written `C:\share`, and `a\,b` as `a\\,b`.
//!
//! Some text has no line-protocol form at all; [`Line::unwritable`] says
//! which, so a writer can refuse it instead of sending something that
//! reads back different.

use std::fmt;

use super::line::{FIELD_KEY_ESCAPES, MEASUREMENT_ESCAPES, STRING_ESCAPES, TAG_ESCAPES};
use super::{lines, FieldValue, Line};

impl Line<'_> {
    /// Why [`Display`](fmt::Display) cannot write this line so that it
    /// parses back the same, if it cannot. A line without fields is
    /// checked as the head of a line whose fields are added after it (the
    /// sink's series key).
    pub fn unwritable(&self) -> Option<String> {
        let m = &self.measurement;
        if m.starts_with('#') {
            return Some(format!(
                "measurement {m:?}: a line starting with '#' is a comment"
            ));
        }
        if m.starts_with(['\t', '\0']) {
            return Some(format!(
                "measurement {m:?}: a tab or NUL before a line is skipped"
            ));
        }
        bad_name("measurement", m)
            .or_else(|| {
                self.tags.iter().find_map(|(k, v)| {
                    bad_name("tag key", k).or_else(|| bad_name(&format!("tag {k:?}: value"), v))
                })
            })
            .or_else(|| {
                let first = self.fields.first().map(|(k, _)| k);
                first
                    .filter(|k| k.starts_with(['\t', '\0']))
                    .map(|k| format!("field key {k:?}: a tab or NUL before the fields is skipped"))
            })
            .or_else(|| self.fields.iter().find_map(|(k, v)| bad_field(k, v)))
            .or_else(|| self.runs_on())
    }

    /// The line must end where a body's reader ends it: its guess at
    /// where quotes are can be misled by backslashes before escaped bytes
    /// (`scanLine` pairs them, the tag reader does not), and would then run
    /// on into the next line.
    fn runs_on(&self) -> Option<String> {
        let text = format!("{self}\n");
        match lines(text.as_bytes()).next() {
            Some((_, line)) if line.len() + 1 == text.len() => None,
            _ => Some(format!(
                "{:?} would run on past its newline (InfluxDB's scanLine would read a '\"' in it \
                 as opening a string)",
                &text[..text.len() - 1]
            )),
        }
    }
}

/// What a measurement, tag key, tag value or field key cannot be.
fn bad_name(what: &str, s: &str) -> Option<String> {
    if s.is_empty() {
        Some(format!("empty {what}"))
    } else if s.ends_with('\\') {
        Some(format!(
            "{what} {s:?} ends in a backslash, which would escape the delimiter after it"
        ))
    } else if s.contains('\n') {
        Some(format!(
            "{what} {s:?} holds a newline, which line protocol has no escape for"
        ))
    } else {
        None
    }
}

fn bad_field(key: &str, value: &FieldValue<'_>) -> Option<String> {
    if let Some(why) = bad_name("field key", key) {
        return Some(why);
    }
    if odd_backslashes_before(key, b", =") {
        return Some(format!(
            "field key {key:?}: an odd run of backslashes before ',', ' ' or '=' \
             (the reader pairs backslashes in field keys)"
        ));
    }
    match value {
        FieldValue::Float(x) if !x.is_finite() => {
            Some(format!("field {key:?}: {x} is no line-protocol number"))
        }
        _ => None,
    }
}

/// Whether a byte of `set` in `s` follows an odd number of backslashes.
fn odd_backslashes_before(s: &str, set: &[u8]) -> bool {
    let mut run = 0usize;
    for b in s.bytes() {
        if b == b'\\' {
            run += 1;
            continue;
        }
        if run % 2 == 1 && set.contains(&b) {
            return true;
        }
        run = 0;
    }
    false
}

/// Line protocol for `line`, escaped so that [`parse_line`](super::parse_line)
/// gives it back (see [`Line::unwritable`] for what cannot be).
impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        escape(f, &self.measurement, MEASUREMENT_ESCAPES)?;
        for (k, v) in &self.tags {
            f.write_str(",")?;
            escape(f, k, TAG_ESCAPES)?;
            f.write_str("=")?;
            escape(f, v, TAG_ESCAPES)?;
        }
        for (i, (k, v)) in self.fields.iter().enumerate() {
            f.write_str(if i == 0 { " " } else { "," })?;
            escape(f, k, FIELD_KEY_ESCAPES)?;
            write!(f, "={v}")?;
        }
        if let Some(ts) = self.timestamp {
            write!(f, " {ts}")?;
        }
        Ok(())
    }
}

/// A field's value as line protocol writes it (`1.5`, `3i`, `"text"`).
impl fmt::Display for FieldValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::Float(x) => write!(f, "{x:?}"),
            FieldValue::Int(x) => write!(f, "{x}i"),
            FieldValue::UInt(x) => write!(f, "{x}u"),
            FieldValue::Bool(x) => write!(f, "{x}"),
            FieldValue::Str(s) => {
                f.write_str("\"")?;
                escape(f, s, STRING_ESCAPES)?;
                f.write_str("\"")
            }
        }
    }
}

/// `s` with a backslash before each byte of `special`. Writes unescaped
/// runs whole: the sink formats every series key it sends here.
fn escape(f: &mut fmt::Formatter<'_>, s: &str, special: &[u8]) -> fmt::Result {
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        // Only ASCII bytes are special, so `i` is a char boundary.
        if special.contains(&b) {
            f.write_str(&s[start..i])?;
            f.write_str("\\")?;
            start = i;
        }
    }
    f.write_str(&s[start..])
}
