//! What each sender said its metric families are: type, unit and help.
//! Prometheus 2.x sends metadata in requests of their own (every
//! `metadata_config.send_interval`, 1 min by default), not beside the
//! samples, so a receiver that wants them must remember them per sender.
//! Bounded: past `MAX_FAMILIES` in all, new families are not remembered
//! (their samples are stored as `unknown`, without unit or help); help
//! texts come cut to [`super::MAX_HELP_LEN`] bytes and units to
//! [`super::MAX_NAME_LEN`] (by `decode`).

use std::collections::HashMap;
use std::sync::Mutex;

use super::{family_for, Family};

/// Families remembered over all senders: about 100 bytes each, plus its
/// unit and help (help at most 512 bytes, a few dozen typically).
pub const MAX_FAMILIES: usize = 1_000_000;

#[derive(Default)]
pub struct TypeCache {
    inner: Mutex<Families>,
}

#[derive(Default)]
struct Families {
    by_client: HashMap<String, HashMap<String, Family>>,
    count: usize,
}

impl TypeCache {
    /// Remembers a request's metadata for its sender; a later description
    /// of a family replaces the earlier one whole (a family can change type
    /// or help between releases).
    pub fn remember(&self, client: &str, metadata: &[(String, Family)]) {
        if metadata.is_empty() {
            return;
        }
        let mut f = crate::sync::lock(&self.inner);
        let Families { by_client, count } = &mut *f;
        let families = by_client.entry(client.to_string()).or_default();
        for (name, family) in metadata {
            if let Some(known) = families.get_mut(name) {
                *known = family.clone();
            } else if *count < MAX_FAMILIES {
                families.insert(name.clone(), family.clone());
                *count += 1;
            }
        }
    }

    /// The families of `names` (sample names) as this sender last described
    /// them ([`family_for`]); None where it did not.
    pub fn families(&self, client: &str, names: &[&str]) -> Vec<Option<Family>> {
        let f = crate::sync::lock(&self.inner);
        match f.by_client.get(client) {
            Some(families) => names
                .iter()
                .map(|n| family_for(n, families).cloned())
                .collect(),
            None => vec![None; names.len()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote_write::Kind;

    fn typed(kind: Kind) -> Family {
        Family {
            kind: Some(kind),
            ..Family::default()
        }
    }

    #[test]
    fn families_are_per_sender_and_latest_wins() {
        let cache = TypeCache::default();
        let described = Family {
            kind: Some(Kind::Counter),
            unit: Some("requests".into()),
            help: Some("Requests served.".into()),
        };
        cache.remember(
            "a",
            &[
                ("up".into(), typed(Kind::Gauge)),
                ("http_requests".into(), described.clone()),
            ],
        );
        cache.remember("a", &[("up".into(), typed(Kind::Counter))]);
        let kinds = |client, names: &[&str]| -> Vec<Option<Kind>> {
            cache
                .families(client, names)
                .into_iter()
                .map(|f| f.and_then(|f| f.kind))
                .collect()
        };
        assert_eq!(
            kinds("a", &["up", "http_requests_total", "other"]),
            vec![Some(Kind::Counter), Some(Kind::Counter), None]
        );
        assert_eq!(kinds("b", &["up"]), vec![None]);
        // Unit and help come with the family, for every series of it.
        assert_eq!(
            cache.families("a", &["http_requests_total"]),
            vec![Some(described)]
        );
        // A later description replaces the whole family, help included.
        cache.remember("a", &[("http_requests".into(), typed(Kind::Counter))]);
        assert_eq!(
            cache.families("a", &["http_requests_total"]),
            vec![Some(typed(Kind::Counter))]
        );
    }
}
