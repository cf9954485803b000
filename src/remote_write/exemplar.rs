//! Exemplars: the checks of an exemplar's labels before it is stored.
//! Its timestamp is checked as any point's (`decode.rs`).

use super::labels::{cut, name_problem, QUOTED_VALUE_LEN};
use super::MAX_EXEMPLAR_RUNES;

/// An exemplar's labels as stored (sorted by name), or what is wrong with
/// them: a name empty, too long or with a control character (the rules of
/// series label names), a name twice (a stored exemplar holds each name
/// once, so one would be lost), or names and values together over
/// [`MAX_EXEMPLAR_RUNES`] characters. Empty values are kept: an exemplar's
/// labels are optional data, not a series' identity.
pub(super) fn labels<'a>(
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<Vec<(String, String)>, String> {
    let mut runes = 0usize;
    let mut out: Vec<(&str, &str)> = Vec::new();
    for (name, value) in pairs {
        if let Some(problem) = name_problem(name) {
            return Err(format!(
                "invalid label name {:?}: {problem}",
                cut(name, QUOTED_VALUE_LEN)
            ));
        }
        // Names are short by now; a value is counted no further than the
        // limit, so a huge one costs no more than a short one.
        runes += name.chars().count() + value.chars().take(MAX_EXEMPLAR_RUNES + 1).count();
        if runes > MAX_EXEMPLAR_RUNES {
            return Err(format!(
                "labels over {MAX_EXEMPLAR_RUNES} characters, names and values together"
            ));
        }
        out.push((name, value));
    }
    out.sort_unstable_by(|a, b| a.0.cmp(b.0));
    if let Some(pair) = out.windows(2).find(|p| p[0].0 == p[1].0) {
        return Err(format!(
            "duplicate label {:?}",
            cut(pair[0].0, QUOTED_VALUE_LEN)
        ));
    }
    Ok(out
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect())
}
