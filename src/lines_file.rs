//! Operator files of one entry per line (`--api-keys-file`,
//! `--tenants-file`): blank lines and `#` comments skipped, each line parsed
//! by the entry's `FromStr`, an error naming the file and line.

use std::path::Path;
use std::str::FromStr;

/// Every entry of the file at `path`; `what` names its contents in the
/// error for an unreadable file ("API keys", "tenant rules").
pub fn read<T>(path: &Path, what: &str) -> anyhow::Result<Vec<T>>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading {what} from {}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(i, l)| (i, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .map(|(i, l)| {
            l.parse()
                .map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect()
}
