use std::borrow::Cow;
use std::collections::HashSet;

use super::{FieldValue, Line, MAX_LINE};

/// Above this many tags or fields a line checks duplicates with a set
/// instead of comparing pairs (a hostile line may carry thousands).
const LINEAR_DUP_CHECK: usize = 16;

/// Bytes that end a name, by kind: looked up per byte, the hot loop.
const MEASUREMENT_STOP: [bool; 256] = table(b", \t\\");
const KEY_STOP: [bool; 256] = table(b",= \t\\");
const VALUE_STOP: [bool; 256] = table(b", \t");
const TAG_VALUE_STOP: [bool; 256] = table(b", \t\\");

const fn table(bytes: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < bytes.len() {
        t[bytes[i] as usize] = true;
        i += 1;
    }
    t
}

/// One line, without its `\n`. `Ok(None)` for a blank line or a comment.
pub fn parse_line(raw: &[u8]) -> Result<Option<Line<'_>>, String> {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    if raw.len() > MAX_LINE {
        return Err(format!(
            "line too long ({} bytes, limit {MAX_LINE})",
            raw.len()
        ));
    }
    let text = std::str::from_utf8(raw)
        .map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to()))?;
    let text = text.trim_matches(|c| c == ' ' || c == '\t' || c == '\r');
    if text.is_empty() || text.starts_with('#') {
        return Ok(None);
    }
    let mut p = Cursor { s: text, pos: 0 };
    p.line().map(Some)
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn line(&mut self) -> Result<Line<'a>, String> {
        // `=` is no delimiter in a measurement (InfluxDB allows it bare).
        let measurement = self.name(&MEASUREMENT_STOP, b", \\")?;
        if measurement.is_empty() {
            return Err("empty measurement".into());
        }
        let mut tags = Vec::new();
        while self.peek() == Some(b',') {
            self.pos += 1;
            let key = self.name(&KEY_STOP, b",= \\")?;
            if key.is_empty() {
                return Err("empty tag key".into());
            }
            if self.peek() != Some(b'=') {
                return Err(format!("tag {key:?}: missing tag value"));
            }
            self.pos += 1;
            let value = self.name(&TAG_VALUE_STOP, b",= \\")?;
            if value.is_empty() {
                return Err(format!("tag {key:?}: empty tag value"));
            }
            tags.push((key, value));
        }
        if let Some(dup) = duplicate(tags.iter().map(|(k, _)| k.as_ref())) {
            return Err(format!("duplicate tag key {dup:?}"));
        }
        self.skip_spaces();
        if self.peek().is_none() {
            return Err("missing fields".into());
        }
        let mut fields = Vec::new();
        loop {
            let key = self.name(&KEY_STOP, b",= \\")?;
            if key.is_empty() {
                return Err("empty field key".into());
            }
            if self.peek() != Some(b'=') {
                return Err(format!("field {key:?}: missing value"));
            }
            self.pos += 1;
            let value = self.value().map_err(|e| format!("field {key:?}: {e}"))?;
            fields.push((key, value));
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b' ' | b'\t') => break,
                None => break,
                Some(c) => return Err(format!("unexpected {:?} after field value", c as char)),
            }
        }
        if let Some(dup) = duplicate(fields.iter().map(|(k, _)| k.as_ref())) {
            return Err(format!("duplicate field key {dup:?}"));
        }
        self.skip_spaces();
        let rest = &self.s[self.pos..];
        let timestamp = if rest.is_empty() {
            None
        } else {
            if !valid_int(rest) {
                return Err(format!("invalid timestamp {rest:?}"));
            }
            Some(
                rest.parse::<i64>()
                    .map_err(|_| format!("timestamp {rest:?} out of range"))?,
            )
        };
        Ok(Line {
            measurement,
            tags,
            fields,
            timestamp,
        })
    }

    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// A name up to the first unescaped byte of `stop`. A backslash escapes
    /// a byte of `escapable` and is literal before anything else, as in
    /// InfluxDB.
    fn name(&mut self, stop: &[bool; 256], escapable: &[u8]) -> Result<Cow<'a, str>, String> {
        let bytes = self.s.as_bytes();
        let start = self.pos;
        let mut escaped = false;
        let mut i = start;
        while i < bytes.len() {
            let b = bytes[i];
            if !stop[usize::from(b)] {
                i += 1;
                continue;
            }
            if b != b'\\' {
                break;
            }
            if i + 1 < bytes.len() && escapable.contains(&bytes[i + 1]) {
                escaped = true;
                i += 2;
            } else {
                i += 1;
            }
        }
        self.pos = i;
        let raw = &self.s[start..i];
        if !escaped {
            return Ok(Cow::Borrowed(raw));
        }
        Ok(Cow::Owned(unescape(raw, escapable)))
    }

    fn value(&mut self) -> Result<FieldValue<'a>, String> {
        if self.peek() == Some(b'"') {
            return self.string();
        }
        let bytes = self.s.as_bytes();
        let start = self.pos;
        let mut i = start;
        while i < bytes.len() && !VALUE_STOP[usize::from(bytes[i])] {
            i += 1;
        }
        self.pos = i;
        scalar(&self.s[start..i])
    }

    fn string(&mut self) -> Result<FieldValue<'a>, String> {
        let bytes = self.s.as_bytes();
        let start = self.pos + 1;
        let mut escaped = false;
        let mut i = start;
        loop {
            match bytes.get(i) {
                None => return Err("unterminated string".into()),
                Some(b'\\') if matches!(bytes.get(i + 1), Some(b'"' | b'\\')) => {
                    escaped = true;
                    i += 2;
                }
                Some(b'"') => break,
                Some(_) => i += 1,
            }
        }
        self.pos = i + 1;
        let raw = &self.s[start..i];
        Ok(FieldValue::Str(if escaped {
            Cow::Owned(unescape(raw, b"\"\\"))
        } else {
            Cow::Borrowed(raw)
        }))
    }
}

fn unescape(raw: &str, escapable: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(&n) = chars.peek() {
                if n.is_ascii() && escapable.contains(&(n as u8)) {
                    out.push(n);
                    chars.next();
                    continue;
                }
            }
        }
        out.push(c);
    }
    out
}

fn scalar<'a>(s: &str) -> Result<FieldValue<'a>, String> {
    // Numbers first, by their last byte: the common case skips the
    // boolean spellings' string compares.
    let Some(&last) = s.as_bytes().last() else {
        return Err("missing value".into());
    };
    if last == b'i' {
        let digits = &s[..s.len() - 1];
        if !valid_int(digits) {
            return Err(format!("invalid integer {s:?}"));
        }
        return digits
            .parse()
            .map(FieldValue::Int)
            .map_err(|_| format!("integer {s:?} out of range"));
    }
    if last == b'u' {
        let digits = &s[..s.len() - 1];
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("invalid unsigned {s:?}"));
        }
        return digits
            .parse()
            .map(FieldValue::UInt)
            .map_err(|_| format!("unsigned {s:?} out of range"));
    }
    match s {
        "t" | "T" | "true" | "True" | "TRUE" => return Ok(FieldValue::Bool(true)),
        "f" | "F" | "false" | "False" | "FALSE" => return Ok(FieldValue::Bool(false)),
        _ => {}
    }
    // InfluxDB takes a number that starts with a digit, '-' or '.'; so
    // "inf", "NaN" and "+1" are refused (Rust's parser would take them).
    let first_ok = matches!(s.as_bytes()[0], b'0'..=b'9' | b'-' | b'.');
    let chars_ok = s
        .bytes()
        .all(|b| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'));
    if !first_ok || !chars_ok {
        return Err(format!("invalid value {s:?}"));
    }
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(FieldValue::Float(x)),
        Ok(_) => Err(format!("float {s:?} out of range")),
        Err(_) => Err(format!("invalid float {s:?}")),
    }
}

/// An optional '-' then at least one digit.
fn valid_int(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn duplicate<'k>(mut keys: impl ExactSizeIterator<Item = &'k str> + Clone) -> Option<&'k str> {
    if keys.len() <= LINEAR_DUP_CHECK {
        let all = keys.clone();
        for (i, k) in all.enumerate() {
            if keys.clone().take(i).any(|p| p == k) {
                return Some(k);
            }
        }
        None
    } else {
        let mut seen = HashSet::with_capacity(keys.len());
        keys.find(|k| !seen.insert(*k))
    }
}
