//! Which client may use which tenant: `--tenant NAME=RULE` (and
//! `--tenants-file` lines), per client name, the name an API key or a
//! client certificate gives, so keys and certificates get tenants the same
//! way.
//!
//! RULE is one tenant (`acme`: the client is bound to it, its requests are
//! stored under it and an `X-Scope-OrgID` naming another is a 403), several
//! joined with `|` (`acme|beta`: it may name one of them), or `*` (it may
//! name any). A client with a list or `*` that sends no header has no
//! tenant.
//!
//! A client without a rule may name no tenant when clients are identified
//! (API keys configured): its `X-Scope-OrgID` is a 403. On an open server
//! (no keys) nobody is identified and any client may name any tenant; a
//! rule still binds or limits the client id it names.
//!
//! [`Rules::admit`] is the whole table: client × rule × header → the
//! request's tenant, or a refusal.

use std::collections::HashMap;

use super::id::validate;
use super::TenantError;

/// What one client may do with tenants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// Stored under this tenant, whatever it sends (the same header is fine).
    Bound(String),
    /// May name one of these (two or more) with `X-Scope-OrgID`.
    OneOf(Vec<String>),
    /// May name any tenant.
    Any,
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rule::Bound(t) => f.write_str(t),
            Rule::OneOf(ts) => f.write_str(&ts.join("|")),
            Rule::Any => f.write_str("*"),
        }
    }
}

impl std::str::FromStr for Rule {
    type Err = String;
    fn from_str(s: &str) -> Result<Rule, String> {
        let s = s.trim();
        if s == "*" {
            return Ok(Rule::Any);
        }
        let ids: Vec<&str> = s.split('|').map(str::trim).collect();
        if ids.len() > 1 && ids.contains(&"*") {
            return Err(format!(
                "tenant rule `{s}`: `*` (any tenant) stands alone, not in a list"
            ));
        }
        for id in &ids {
            validate(id).map_err(|why| format!("tenant rule `{s}`: {why}"))?;
        }
        let mut list: Vec<String> = ids.iter().map(|t| t.to_string()).collect();
        list.sort();
        list.dedup();
        Ok(match <[String; 1]>::try_from(list) {
            Ok([one]) => Rule::Bound(one),
            Err(list) => Rule::OneOf(list),
        })
    }
}

/// One `NAME=RULE`: a client and its rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRule {
    pub client: String,
    pub rule: Rule,
}

impl std::str::FromStr for ClientRule {
    type Err = String;
    /// Split at the last `=`: a rule never holds one (no tenant id does),
    /// a client name (a certificate's subject) may.
    fn from_str(s: &str) -> Result<ClientRule, String> {
        let (client, rule) = s.rsplit_once('=').ok_or_else(|| {
            format!("`{s}`: a tenant rule is NAME=RULE (RULE: a tenant, tenants joined with `|`, or `*`)")
        })?;
        let client = client.trim();
        if client.is_empty() {
            return Err(format!("`{s}`: the client name is empty"));
        }
        Ok(ClientRule {
            client: client.to_string(),
            rule: rule.parse()?,
        })
    }
}

/// Every client's rule.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    by_client: HashMap<String, Rule>,
}

impl Rules {
    /// The rules of `--tenant` flags and `--tenants-file` lines together; a
    /// client given two rules is an error (which one holds would be a guess).
    pub fn new(rules: impl IntoIterator<Item = ClientRule>) -> Result<Rules, String> {
        let mut by_client = HashMap::new();
        for r in rules {
            if let Some(before) = by_client.get(&r.client) {
                return Err(format!(
                    "client {} has two tenant rules: `{before}` and `{}`",
                    r.client, r.rule
                ));
            }
            by_client.insert(r.client, r.rule);
        }
        Ok(Rules { by_client })
    }

    /// Reads `NAME=RULE` lines; blank lines and `#` comments are skipped.
    /// An error names the file and line.
    pub fn read_file(path: &std::path::Path) -> anyhow::Result<Vec<ClientRule>> {
        crate::lines_file::read(path, "tenant rules")
    }

    pub fn is_empty(&self) -> bool {
        self.by_client.is_empty()
    }

    pub fn len(&self) -> usize {
        self.by_client.len()
    }

    pub fn get(&self, client: &str) -> Option<&Rule> {
        self.by_client.get(client)
    }

    /// The tenant of a request from `client` naming `requested` (the
    /// validated `X-Scope-OrgID`, if sent). `identified`: clients are
    /// authenticated (API keys configured), so a client without a rule may
    /// name no tenant.
    pub fn admit(
        &self,
        client: &str,
        identified: bool,
        requested: Option<String>,
    ) -> Result<Option<String>, TenantError> {
        let forbidden = |why: String| Err(TenantError::Forbidden(why));
        match (self.by_client.get(client), requested) {
            (Some(Rule::Bound(t)), None) => Ok(Some(t.clone())),
            (Some(Rule::Bound(t)), Some(r)) if *t == r => Ok(Some(r)),
            (Some(Rule::Bound(t)), Some(r)) => forbidden(format!(
                "client {client} is bound to tenant {t}: X-Scope-OrgID {r} is not its tenant"
            )),
            (Some(Rule::OneOf(ts)), Some(r)) if !ts.contains(&r) => forbidden(format!(
                "client {client} may name tenants {}, not X-Scope-OrgID {r}",
                ts.join("|")
            )),
            (Some(Rule::OneOf(_) | Rule::Any), r) => Ok(r),
            (None, Some(r)) if identified => forbidden(format!(
                "client {client} has no tenant rule: it may not name tenant {r} (X-Scope-OrgID)"
            )),
            (None, r) => Ok(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> Rule {
        s.parse().unwrap()
    }

    #[test]
    fn rules_parse() {
        assert_eq!(rule("acme"), Rule::Bound("acme".into()));
        assert_eq!(rule(" acme "), Rule::Bound("acme".into()));
        assert_eq!(rule("*"), Rule::Any);
        assert_eq!(
            rule("beta|acme|beta"),
            Rule::OneOf(vec!["acme".into(), "beta".into()])
        );
        // A list of one, written twice, is that one tenant.
        assert_eq!(rule("acme|acme"), Rule::Bound("acme".into()));
        assert_eq!(rule("beta|acme").to_string(), "acme|beta");
        for bad in ["", "acme|", "|", "a b", "..", "*|acme", "a*b|", "x/y"] {
            assert!(bad.parse::<Rule>().is_err(), "{bad:?} parsed");
        }
        let c: ClientRule = "web=acme".parse().unwrap();
        assert_eq!(
            (c.client.as_str(), c.rule),
            ("web", Rule::Bound("acme".into()))
        );
        // The name may hold `=` (a certificate subject), the rule may not.
        let c: ClientRule = "CN=web=acme|beta".parse().unwrap();
        assert_eq!(c.client, "CN=web");
        for bad in ["web", "=acme", " =acme", "web=", "web=a=b c"] {
            assert!(bad.parse::<ClientRule>().is_err(), "{bad:?} parsed");
        }
        let err = "web=acme|x:y".parse::<ClientRule>().unwrap_err();
        assert!(err.contains("`:` is not allowed"), "{err}");
    }

    #[test]
    fn a_client_gets_one_rule() {
        let r = |s: &str| s.parse::<ClientRule>().unwrap();
        let err = Rules::new([r("web=acme"), r("web=beta")]).unwrap_err();
        assert!(err.contains("client web has two tenant rules"), "{err}");
        let rules = Rules::new([r("web=acme"), r("db=*")]).unwrap();
        assert_eq!(rules.len(), 2);
    }

    #[test]
    fn rules_file_skips_comments_and_names_the_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tenants");
        std::fs::write(
            &path,
            "# who may use what\nweb=acme\n\n  db = acme|beta \nops=*\n",
        )
        .unwrap();
        let rules = Rules::read_file(&path).unwrap();
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[1].client, "db");
        std::fs::write(&path, "web=acme\nbad line\n").unwrap();
        let err = Rules::read_file(&path).unwrap_err().to_string();
        assert!(err.contains(":2: `bad line`"), "{err}");
        assert!(Rules::read_file(&dir.path().join("missing")).is_err());
    }

    /// The admission table: client × rule × header × identified → tenant,
    /// or 403 naming the client and the tenant.
    #[test]
    fn admission_table() {
        let r = |s: &str| s.parse::<ClientRule>().unwrap();
        let rules = Rules::new([r("bound=acme"), r("some=acme|beta"), r("any=*")]).unwrap();
        let some = |s: &str| Some(s.to_string());
        type Want = Result<Option<&'static str>, &'static str>;
        let table: &[(&str, bool, Option<&str>, Want)] = &[
            ("bound", true, None, Ok(Some("acme"))),
            ("bound", true, Some("acme"), Ok(Some("acme"))),
            (
                "bound",
                true,
                Some("beta"),
                Err("client bound is bound to tenant acme: X-Scope-OrgID beta"),
            ),
            (
                "bound",
                false,
                Some("beta"),
                Err("client bound is bound to tenant acme"),
            ),
            ("bound", false, None, Ok(Some("acme"))),
            ("some", true, None, Ok(None)),
            ("some", true, Some("acme"), Ok(Some("acme"))),
            ("some", true, Some("beta"), Ok(Some("beta"))),
            (
                "some",
                true,
                Some("gamma"),
                Err("client some may name tenants acme|beta, not X-Scope-OrgID gamma"),
            ),
            (
                "some",
                false,
                Some("gamma"),
                Err("client some may name tenants acme|beta"),
            ),
            ("any", true, None, Ok(None)),
            ("any", true, Some("gamma"), Ok(Some("gamma"))),
            ("nobody", true, None, Ok(None)),
            (
                "nobody",
                true,
                Some("acme"),
                Err("client nobody has no tenant rule: it may not name tenant acme"),
            ),
            ("nobody", false, Some("acme"), Ok(Some("acme"))),
            ("nobody", false, None, Ok(None)),
        ];
        for &(client, identified, header, ref want) in table {
            let got = rules.admit(client, identified, header.map(String::from));
            match (want, got) {
                (Ok(w), Ok(g)) => assert_eq!(g, w.map(String::from), "{client} {header:?}"),
                (Err(w), Err(TenantError::Forbidden(m))) => {
                    assert!(m.starts_with(w), "{client} {header:?}: {m}")
                }
                (w, g) => panic!("{client} {identified} {header:?}: want {w:?}, got {g:?}"),
            }
        }
        // No rules at all: an open server takes any tenant, a keyed one none.
        let none = Rules::default();
        assert_eq!(none.admit("x", false, some("t")), Ok(some("t")));
        assert!(matches!(
            none.admit("x", true, some("t")),
            Err(TenantError::Forbidden(_))
        ));
    }
}
