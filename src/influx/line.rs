//! A body's lines, and one line parsed, exactly as InfluxDB 1.6 reads
//! them: `models/points.go` of influxdata/influxdb at v1.6.x (the Debian
//! package's v1.6.7~rc0 is what tests/influx_parity.rs checks against).
//! The Go function each rule comes from is named in backticks.
//!
//! # Where a backslash escapes
//! InfluxDB finds where each part of a line ends with one rule and takes
//! the backslashes out of it with another; both are followed here:
//!
//! | part | ends at | a delimiter does not count when | the part drops a `\` right before |
//! |---|---|---|---|
//! | measurement | `,` or space | the byte before it is `\` (`scanMeasurement`) | `,` `"` space `=` (`escape.Unescape`, from `Point.Name`) |
//! | tag key | `=` (a `,` or space first: no value) | the byte before it is `\` (`scanTagsKey`) | `,` space `=` (`unescapeTag`) |
//! | tag value | `,` or space (an `=` is refused) | the byte before it is `\` (`scanTagsValue`) | `,` space `=` (`unescapeTag`) |
//! | field key | `=` (a `,` or space first: no value) | it is the second byte of a `\` pair read from the left (`scanFields`) | `,` `"` space `=` (`escape.AppendUnescaped`, from `point.Next`) |
//! | string field | `"` | it is the second byte of a `\` pair (`scanFields`) | `"` and `\`: `\\` is one backslash (`unescapeStringField`) |
//!
//! A backslash before any other byte is a literal character, and so is a
//! backslash before a backslash everywhere but in string fields:
//! `path=C:\\share\\x` is a tag value with four backslashes, and
//! `host=two\\\ words` is `two\\ words` (the space counts as escaped because
//! a backslash is right before it, and only that one is dropped). In a
//! measurement and in tags a delimiter right after a backslash never ends
//! the part, even after an even run of them (`m,t=x\\ f=1` is one tag value
//! running into the fields: refused); so a measurement, tag key or tag
//! value can never end in a backslash. A tag value may start with a bare
//! `=` (`scanTagsValue` checks its first byte for `,` and space only).
//!
//! # Lines and whitespace
//! A body splits at each `\n` outside a string field's quotes and not
//! right after a backslash (`scanLine`): a string field may span lines, and
//! a backslash-newline anywhere joins two lines (both bytes kept).
//! `scanLine` only guesses where the quotes are (it counts `=` and `,`
//! after the first unescaped space); [`lines`] guesses the same way, so a
//! body splits exactly where InfluxDB splits it. Spaces, tabs and NUL bytes
//! before a line are skipped (`skipWhitespace`), then a `#` makes it a
//! comment. The separators are spaces only: after the one that ends the
//! tags, and the one that ends the fields, more spaces, tabs and NULs are
//! skipped; a tab anywhere else is a literal byte of a name or makes a
//! value invalid; after a timestamp only spaces may follow.
//!
//! # Where metricstream differs, on purpose
//! tests/influx_parity.rs lists each with a line that shows it.
//! - A `\r` ending a line is dropped, so CRLF bodies parse (InfluxDB reads
//!   the `\r` as part of the last value and refuses the line).
//! - `12u` is an unsigned integer, as in InfluxDB 2.x (1.6 is built
//!   without them and refuses it).
//! - Refused where InfluxDB stores something else than the line says: a
//!   duplicate field key (InfluxDB keeps the last), bytes after a string's
//!   closing quote (`s="a"b` is stored as `a"`), a field key ending in a
//!   backslash (`scanFields` takes the `=` after it as the separator,
//!   `point.Next` as escaped: `a\\=1,b=2` becomes a field `a\=1,b`), an
//!   empty field key after a tab (`m \t=1`).
//! - Refused as input no metric can come from: invalid UTF-8, a line over
//!   [`MAX_LINE`] bytes.

use std::borrow::Cow;
use std::collections::HashSet;

use super::{FieldValue, Line, MAX_LINE};

/// Above this many tags or fields a line checks duplicates with a set
/// instead of comparing pairs (a hostile line may carry thousands).
const LINEAR_DUP_CHECK: usize = 16;

/// What a measurement's, a tag's and a field key's text drop a backslash
/// before; the writer (`write.rs`) puts one before each, the same sets.
pub(super) const MEASUREMENT_ESCAPES: &[u8] = b", \"=";
pub(super) const TAG_ESCAPES: &[u8] = b", =";
pub(super) const FIELD_KEY_ESCAPES: &[u8] = b", \"=";
/// What a string field's text drops a backslash before (in pairs).
pub(super) const STRING_ESCAPES: &[u8] = b"\"\\";

/// Bytes that end a measurement, unless a backslash is right before.
const MEASUREMENT_END: [bool; 256] = table(b", ");
/// Bytes that end (or break) a tag key or value, unless a backslash is
/// right before.
const TAG_END: [bool; 256] = table(b",= ");
/// Bytes that end a field key, and the backslash that pairs with the next.
const FIELD_KEY_STOP: [bool; 256] = table(b",= \\");
/// Bytes `scanLine` looks at; the others it steps over.
const LINE_SPECIAL: [bool; 256] = table(b"\\ =,\"\n");

const fn table(bytes: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < bytes.len() {
        t[bytes[i] as usize] = true;
        i += 1;
    }
    t
}

/// What `skipWhitespace` skips: before a line, its fields, its timestamp.
fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | 0)
}

/// A body's lines as InfluxDB's `scanLine` cuts them: each with the
/// 1-based number of the text line it starts on, without its `\n`. A line
/// holds `\n`s of its own where a string field or a backslash spans them.
pub fn lines(body: &[u8]) -> Lines<'_> {
    Lines {
        body,
        pos: 0,
        number: 1,
    }
}

/// See [`lines`].
pub struct Lines<'a> {
    body: &'a [u8],
    pos: usize,
    /// The text line `pos` is on.
    number: usize,
}

impl<'a> Iterator for Lines<'a> {
    type Item = (usize, &'a [u8]);

    fn next(&mut self) -> Option<(usize, &'a [u8])> {
        if self.pos >= self.body.len() {
            return None;
        }
        let start = self.pos;
        let (end, inner_newlines) = line_end(self.body, start);
        let number = self.number;
        self.number += inner_newlines + 1;
        self.pos = end + 1;
        Some((number, &self.body[start..end]))
    }
}

/// `scanLine`: where the line starting at `i` ends (the `\n` or the end
/// of `buf`), and how many `\n`s it holds. Its quote tracking starts at
/// the first space not paired with a backslash and counts the `=` and `,`
/// outside quotes; a `"` opens or closes a string only when more `=` than
/// `,` were seen, i.e. where a field value starts. A backslash pairs with
/// the next byte only if another byte follows that one (`i+2 < len`).
fn line_end(buf: &[u8], mut i: usize) -> (usize, usize) {
    let mut quoted = false;
    let mut fields = false;
    let (mut equals, mut commas) = (0usize, 0usize);
    let mut newlines = 0;
    while i < buf.len() {
        let b = buf[i];
        if !LINE_SPECIAL[usize::from(b)] {
            i += 1;
            continue;
        }
        if b == b'\\' && i + 2 < buf.len() {
            newlines += usize::from(buf[i + 1] == b'\n');
            i += 2;
            continue;
        }
        if b == b' ' {
            fields = true;
        }
        if fields {
            if !quoted && b == b'=' {
                equals += 1;
                i += 1;
                continue;
            }
            if !quoted && b == b',' {
                commas += 1;
                i += 1;
                continue;
            }
            if b == b'"' && equals > commas {
                quoted = !quoted;
                i += 1;
                continue;
            }
        }
        if b == b'\n' {
            if !quoted {
                break;
            }
            newlines += 1;
        }
        i += 1;
    }
    (i, newlines)
}

/// One line as [`lines`] yields it. `Ok(None)` for a blank line or a
/// comment.
pub fn parse_line(raw: &[u8]) -> Result<Option<Line<'_>>, String> {
    // A line that runs to the end of the body inside a string keeps the
    // body's last `\n`; InfluxDB drops it too.
    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    // Not InfluxDB's rule (see the module doc): CRLF line ends parse.
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    if raw.len() > MAX_LINE {
        return Err(format!(
            "line too long ({} bytes, limit {MAX_LINE})",
            raw.len()
        ));
    }
    let text = std::str::from_utf8(raw)
        .map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to()))?;
    // The blanks are ASCII, so this is a char boundary.
    let start = text
        .bytes()
        .position(|b| !is_blank(b))
        .unwrap_or(text.len());
    let text = &text[start..];
    if text.is_empty() || text.starts_with('#') {
        return Ok(None);
    }
    let mut p = Cursor { s: text, pos: 0 };
    p.line().map(Some)
}

/// A tag or a field: its key and value.
type Pair<'a, V> = (Cow<'a, str>, V);

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn line(&mut self) -> Result<Line<'a>, String> {
        let measurement = self.measurement()?;
        let tags = if self.peek() == Some(b',') {
            self.tags()?
        } else {
            Vec::new()
        };
        // At the space that ends the measurement or the tags.
        self.skip_blanks();
        if self.peek().is_none() {
            return Err("missing fields".into());
        }
        let fields = self.fields()?;
        let timestamp = self.timestamp()?;
        Ok(Line {
            measurement,
            tags,
            fields,
            timestamp,
        })
    }

    fn skip_blanks(&mut self) {
        while self.peek().is_some_and(is_blank) {
            self.pos += 1;
        }
    }

    /// The first byte of `stops` at or after `from` (> 0) without a
    /// backslash right before it.
    fn unescaped(&self, from: usize, stops: &[bool; 256]) -> Option<usize> {
        let b = self.s.as_bytes();
        (from..b.len()).find(|&i| stops[usize::from(b[i])] && b[i - 1] != b'\\')
    }

    /// `scanMeasurement`: its first byte ends it only if it is a `,`.
    fn measurement(&mut self) -> Result<Cow<'a, str>, String> {
        let start = self.pos;
        if self.peek() == Some(b',') {
            return Err("empty measurement".into());
        }
        let end = self
            .unescaped(start + 1, &MEASUREMENT_END)
            .ok_or("missing fields")?;
        self.pos = end;
        Ok(unescape(&self.s[start..end], MEASUREMENT_ESCAPES))
    }

    /// `scanTags`, from the `,` after the measurement to the space before
    /// the fields.
    fn tags(&mut self) -> Result<Vec<Pair<'a, Cow<'a, str>>>, String> {
        let b = self.s.as_bytes();
        let mut tags = Vec::new();
        while self.peek() == Some(b',') {
            let start = self.pos + 1;
            // A first byte that is a delimiter has no backslash before it.
            if matches!(b.get(start), None | Some(b',' | b' ' | b'=')) {
                return Err("empty tag key".into());
            }
            let end = self.unescaped(start + 1, &TAG_END);
            let key = unescape(&self.s[start..end.unwrap_or(b.len())], TAG_ESCAPES);
            let Some(end) = end.filter(|&i| b[i] == b'=') else {
                return Err(format!("tag {key:?}: missing tag value"));
            };
            let start = end + 1;
            if matches!(b.get(start), None | Some(b',' | b' ')) {
                return Err(format!("tag {key:?}: empty tag value"));
            }
            let end = self
                .unescaped(start + 1, &TAG_END)
                .ok_or("missing fields")?;
            if b[end] == b'=' {
                return Err(format!("tag {key:?}: unescaped '=' in the tag value"));
            }
            tags.push((key, unescape(&self.s[start..end], TAG_ESCAPES)));
            self.pos = end;
        }
        if let Some(dup) = duplicate(tags.iter().map(|(k, _)| k.as_ref())) {
            return Err(format!("duplicate tag key {dup:?}"));
        }
        Ok(tags)
    }

    fn fields(&mut self) -> Result<Vec<Pair<'a, FieldValue<'a>>>, String> {
        let mut fields = Vec::new();
        loop {
            let key = self.field_key()?;
            let value = self.value().map_err(|e| format!("field {key:?}: {e}"))?;
            fields.push((key, value));
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b' ') | None => break,
                Some(_) => {
                    let c = self.s[self.pos..].chars().next().unwrap_or_default();
                    let key = &fields[fields.len() - 1].0;
                    return Err(format!("field {key:?}: unexpected {c:?} after the value"));
                }
            }
        }
        if let Some(dup) = duplicate(fields.iter().map(|(k, _)| k.as_ref())) {
            return Err(format!("duplicate field key {dup:?}"));
        }
        Ok(fields)
    }

    /// Up to its `=`, a backslash and the byte after it read as a pair
    /// (`scanFields`); leaves the cursor after the `=`.
    fn field_key(&mut self) -> Result<Cow<'a, str>, String> {
        let b = self.s.as_bytes();
        let start = self.pos;
        let mut i = start;
        while i < b.len() {
            match b[i] {
                c if !FIELD_KEY_STOP[usize::from(c)] => i += 1,
                b'\\' if i + 1 < b.len() => i += 2,
                b'\\' => i += 1,
                _ => break,
            }
        }
        // `i` is at an ASCII byte or the end: a char boundary, even after
        // a backslash paired with the first byte of a character.
        let raw = &self.s[start..i];
        if raw.is_empty() {
            return Err("empty field key".into());
        }
        let key = unescape(raw, FIELD_KEY_ESCAPES);
        if b.get(i) != Some(&b'=') {
            return Err(format!("field {key:?}: missing value"));
        }
        if raw.ends_with('\\') {
            return Err(format!(
                "field key {raw:?} ends in a backslash (InfluxDB reads the '=' after it as escaped)"
            ));
        }
        self.pos = i + 1;
        Ok(key)
    }

    /// A number or boolean runs to the next `,` or space (`scanNumber`,
    /// `scanBoolean`); a string to its closing quote.
    fn value(&mut self) -> Result<FieldValue<'a>, String> {
        if self.peek() == Some(b'"') {
            return self.string();
        }
        let b = self.s.as_bytes();
        let start = self.pos;
        let end = (start..b.len())
            .find(|&i| matches!(b[i], b',' | b' '))
            .unwrap_or(b.len());
        self.pos = end;
        scalar(&self.s[start..end])
    }

    fn string(&mut self) -> Result<FieldValue<'a>, String> {
        let b = self.s.as_bytes();
        let start = self.pos + 1;
        let mut escaped = false;
        let mut i = start;
        loop {
            match b.get(i) {
                None => return Err("unterminated string".into()),
                Some(b'\\') if i + 1 < b.len() => {
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
            Cow::Owned(unescape_string(raw))
        } else {
            Cow::Borrowed(raw)
        }))
    }

    /// `scanTime`, from the space after the fields: blanks, then digits
    /// with an optional `-` up to a space (or a `\n` the line holds), then
    /// only spaces. Nothing is checked after a missing timestamp.
    fn timestamp(&mut self) -> Result<Option<i64>, String> {
        self.skip_blanks();
        let b = self.s.as_bytes();
        let start = self.pos;
        let end = (start..b.len())
            .find(|&i| matches!(b[i], b' ' | b'\n'))
            .unwrap_or(b.len());
        let digits = &self.s[start..end];
        if digits.is_empty() {
            return Ok(None);
        }
        if !valid_int(digits) || b[end..].iter().any(|&c| c != b' ') {
            let rest = self.s[start..].trim_end_matches(' ');
            return Err(format!("invalid timestamp {rest:?}"));
        }
        digits
            .parse::<i64>()
            .map(Some)
            .map_err(|_| format!("timestamp {digits:?} out of range"))
    }
}

/// `raw` without each backslash that is right before a byte of `escapes`
/// (the others are literal); borrowed when there is none.
fn unescape<'a>(raw: &'a str, escapes: &[u8]) -> Cow<'a, str> {
    // The common case, no backslash at all, at memchr's speed.
    if !raw.contains('\\') {
        return Cow::Borrowed(raw);
    }
    let b = raw.as_bytes();
    let dropped = |i: &usize| b[*i] == b'\\' && b.get(*i + 1).is_some_and(|n| escapes.contains(n));
    let Some(first) = (0..b.len()).find(dropped) else {
        return Cow::Borrowed(raw);
    };
    let mut out = String::with_capacity(raw.len());
    let mut start = 0;
    for i in (first..b.len()).filter(dropped) {
        // A backslash is ASCII: `i` and `i + 1` are char boundaries.
        out.push_str(&raw[start..i]);
        start = i + 1;
    }
    out.push_str(&raw[start..]);
    Cow::Owned(out)
}

/// A string field's text: `\\` and `\"` are one byte each, read in pairs
/// from the left (`unescapeStringField`); any other backslash is literal.
fn unescape_string(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(&n) = chars.peek() {
                if n.is_ascii() && STRING_ESCAPES.contains(&(n as u8)) {
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
