//! Who is calling: the `Authorization` header names the client, which is
//! the partition key. With API keys configured, it must carry a known key,
//! and the client is then the key's name (so keys never reach the queue).
//! `Bearer <key>`, `Token <key>` (InfluxDB 2.x clients) and `Basic`
//! (Prometheus' `basic_auth`, InfluxDB 1.x's `?u=&p=`: the password is the
//! key, the user name is free) carry the same keys; without keys, the bearer
//! token or the Basic user name is the client id.
//!
//! Over mutual TLS a verified client certificate names the client too
//! ([`Auth::client_of`]): without keys its name is the client id (the
//! header's free-form id is ignored: the certificate is verified, the
//! header is not); with keys, a request with an `Authorization` header is
//! judged by its key alone, and one without is admitted as the
//! certificate's name, the certificate being the credential a key would be.

use std::borrow::Cow;

use axum::http::{header, HeaderMap, HeaderValue};
use base64::Engine as _;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

/// The client id when no `Authorization` header is sent.
pub const DEFAULT_CLIENT: &str = "default";
/// Longest client id we take, in bytes.
pub const MAX_CLIENT_ID: usize = 255;

/// The name a verified client certificate gives its client (mutual TLS):
/// put in each request's extensions by the accept loop, read by admission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// 401: keys are configured and this request has none we know.
    Unauthorized(&'static str),
    /// 400: the header is not a usable client id.
    BadClientId(String),
}

/// A configured key: `name:secret`.
#[derive(Clone)]
pub struct ApiKey {
    pub name: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for ApiKey {
    // Keys never appear in logs, not even in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKey({}, <secret>)", self.name)
    }
}

impl std::str::FromStr for ApiKey {
    type Err = String;
    fn from_str(s: &str) -> Result<ApiKey, String> {
        let (name, secret) = s
            .split_once(':')
            .ok_or("an API key is NAME:SECRET (the name becomes the client id)")?;
        if name.is_empty() || secret.is_empty() {
            return Err("an API key needs a non-empty NAME and SECRET".into());
        }
        Ok(ApiKey {
            name: name.to_string(),
            secret: secret.as_bytes().to_vec(),
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct Auth {
    keys: Vec<ApiKey>,
}

impl Auth {
    pub fn new(keys: Vec<ApiKey>) -> Auth {
        Auth { keys }
    }

    /// Reads `NAME:SECRET` lines; blank lines and `#` comments are skipped.
    pub fn read_keys_file(path: &std::path::Path) -> anyhow::Result<Vec<ApiKey>> {
        crate::lines_file::read(path, "API keys")
    }

    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The client id for a request's headers. Two `Authorization` headers
    /// are refused: which one counts would be a guess, and a proxy in front
    /// may have checked the other.
    pub fn client_for(&self, headers: &HeaderMap) -> Result<String, AuthError> {
        let mut all = headers.get_all(header::AUTHORIZATION).iter();
        let first = all.next();
        if all.next().is_some() {
            let msg = "Authorization: sent more than once";
            return Err(if self.enabled() {
                AuthError::Unauthorized(msg)
            } else {
                AuthError::BadClientId(msg.into())
            });
        }
        self.client_id(first)
    }

    /// The client id for a request: its headers and, over mutual TLS, the
    /// name its verified client certificate gives (the rules are above).
    pub fn client_of(
        &self,
        headers: &HeaderMap,
        peer: Option<&PeerIdentity>,
    ) -> Result<String, AuthError> {
        let Some(peer) = peer else {
            return self.client_for(headers);
        };
        if self.enabled() && headers.contains_key(header::AUTHORIZATION) {
            return self.client_for(headers);
        }
        let id = peer.0.as_bytes();
        if !valid_id(id) {
            return Err(AuthError::BadClientId(format!(
                "client certificate: its name (subject CN, DNS or URI SAN) {:?} is not a usable client id \
                 (1-{MAX_CLIENT_ID} printable ASCII characters without spaces)",
                peer.0.chars().take(64).collect::<String>()
            )));
        }
        Ok(peer.0.clone())
    }

    /// The client id for a request's `Authorization` header.
    pub fn client_id(&self, header: Option<&HeaderValue>) -> Result<String, AuthError> {
        if self.enabled() {
            return self.check_key(header);
        }
        let Some(value) = header else {
            return Ok(DEFAULT_CLIENT.to_string());
        };
        let raw = value.as_bytes();
        let id: Cow<'_, [u8]> = match basic(raw) {
            Some((user, _)) => Cow::Owned(user),
            None => Cow::Borrowed(strip_bearer(raw).unwrap_or(raw)),
        };
        let id = id.trim_ascii();
        if !valid_id(id) {
            return Err(AuthError::BadClientId(format!(
                "Authorization: the client id must be 1-{MAX_CLIENT_ID} printable ASCII characters without spaces"
            )));
        }
        // All bytes are ASCII, checked above.
        Ok(String::from_utf8_lossy(id).into_owned())
    }

    fn check_key(&self, header: Option<&HeaderValue>) -> Result<String, AuthError> {
        let header = header.ok_or(AuthError::Unauthorized(
            "Authorization: an API key is required (Bearer <key>)",
        ))?;
        let raw = header.as_bytes();
        let presented: Cow<'_, [u8]> = match basic(raw) {
            Some((_, password)) => Cow::Owned(password),
            None => Cow::Borrowed(strip_bearer(raw).ok_or(AuthError::Unauthorized(
                "Authorization: expected Bearer <key> (or Basic with the key as password)",
            ))?),
        };
        // Compare against every key, each in constant time, so the answer's
        // timing says nothing about which key or how much of one was right.
        let mut found: Option<&ApiKey> = None;
        for key in &self.keys {
            if bool::from(secret_eq(&key.secret, &presented)) {
                found = Some(key);
            }
        }
        found
            .map(|k| k.name.clone())
            .ok_or(AuthError::Unauthorized("Authorization: unknown API key"))
    }
}

/// 1 to MAX_CLIENT_ID printable ASCII characters, no spaces.
fn valid_id(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= MAX_CLIENT_ID && id.iter().all(|b| b.is_ascii_graphic())
}

/// `secret == presented` in time that depends only on `presented.len()`
/// (which the caller knows anyway). subtle's `[u8]::ct_eq` returns at once
/// when the lengths differ, which would tell the secret's length. Here every
/// presented byte is compared with the secret cycled to that length, and
/// the lengths are compared the same way; the cycling index is reset by a
/// constant-time select, not a branch or a division.
fn secret_eq(secret: &[u8], presented: &[u8]) -> Choice {
    let len = secret.len() as u64;
    let mut equal = len.ct_eq(&(presented.len() as u64));
    let mut j: u64 = 0;
    for &b in presented {
        // `secret` is never empty (ApiKey::from_str), so `j < len` holds.
        let s = secret.get(j as usize).copied().unwrap_or(0);
        equal &= s.ct_eq(&b);
        let next = j + 1;
        j = u64::conditional_select(&next, &0, next.ct_eq(&len));
        #[cfg(test)]
        tests::COMPARED.with(|c| c.set(c.get() + 1));
    }
    equal
}

/// The credentials after `Bearer ` or InfluxDB's `Token `; the scheme is
/// case-insensitive (RFC 9110 §11.1).
fn strip_bearer(value: &[u8]) -> Option<&[u8]> {
    [b"bearer ".as_slice(), b"token "]
        .into_iter()
        .find_map(|scheme| {
            let (head, rest) = value.split_at_checked(scheme.len())?;
            head.eq_ignore_ascii_case(scheme).then_some(rest)
        })
}

/// `Basic base64(user:password)` → (user, password); None for anything else.
fn basic(value: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    const SCHEME: &[u8] = b"basic ";
    let (scheme, rest) = value.split_at_checked(SCHEME.len())?;
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim_ascii())
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// Byte comparisons `secret_eq` made on this thread.
        pub(super) static COMPARED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn without_keys_the_header_is_the_client() {
        let auth = Auth::default();
        assert_eq!(auth.client_id(None).unwrap(), "default");
        assert_eq!(
            auth.client_id(Some(&hv("load_client_3"))).unwrap(),
            "load_client_3"
        );
        assert_eq!(auth.client_id(Some(&hv("Bearer svc-a"))).unwrap(), "svc-a");
        assert!(matches!(
            auth.client_id(Some(&hv(""))),
            Err(AuthError::BadClientId(_))
        ));
        assert!(matches!(
            auth.client_id(Some(&hv("a b"))),
            Err(AuthError::BadClientId(_))
        ));
        let long = "x".repeat(256);
        assert!(matches!(
            auth.client_id(Some(&hv(&long))),
            Err(AuthError::BadClientId(_))
        ));
    }

    #[test]
    fn with_keys_only_known_bearer_keys_pass() {
        let auth = Auth::new(vec![
            "web:s3cret".parse().unwrap(),
            "db:other".parse().unwrap(),
        ]);
        assert_eq!(auth.client_id(Some(&hv("Bearer s3cret"))).unwrap(), "web");
        assert_eq!(auth.client_id(Some(&hv("Bearer other"))).unwrap(), "db");
        assert_eq!(auth.client_id(Some(&hv("bearer other"))).unwrap(), "db");
        assert_eq!(auth.client_id(Some(&hv("BEARER s3cret"))).unwrap(), "web");
        for bad in [
            "s3cret",
            "Bearer s3cre",
            "Bearer s3cret2",
            "Bearer ",
            "Basic s3cret",
        ] {
            assert!(
                matches!(
                    auth.client_id(Some(&hv(bad))),
                    Err(AuthError::Unauthorized(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            auth.client_id(None),
            Err(AuthError::Unauthorized(_))
        ));
    }

    #[test]
    fn secret_eq_is_exact() {
        let eq = |a: &str, b: &str| bool::from(secret_eq(a.as_bytes(), b.as_bytes()));
        assert!(eq("s3cret", "s3cret"));
        assert!(eq("a", "a"));
        for (secret, presented) in [
            ("s3cret", "s3cre"),
            ("s3cret", "s3crets3cret"),
            ("s3cret", "s3cret\0"),
            ("ab", "abab"),
            ("s3cret", ""),
            ("s3cret", "S3cret"),
            ("s3cret", "x3cret"),
        ] {
            assert!(!eq(secret, presented), "{secret} vs {presented}");
        }
    }

    /// Timing itself is not measured: on a shared, noisy machine a
    /// nanosecond difference cannot be told from noise, so such a test would
    /// either be flaky or assert nothing. What makes the timing constant is
    /// the work done, which is countable: every presented byte is compared
    /// against every key, whatever the keys' lengths and wherever a mismatch is.
    #[test]
    fn lookup_compares_every_byte_against_every_key() {
        let auth = Auth::new(vec![
            "a:k".parse().unwrap(),
            "b:a-much-longer-secret-than-the-first".parse().unwrap(),
            "c:right".parse().unwrap(),
        ]);
        for presented in [
            "right",
            "wrong",
            "x",
            "a-much-longer-secret-than-the-firsT",
            "rightplus",
        ] {
            COMPARED.with(|c| c.set(0));
            let _ = auth.client_id(Some(&hv(&format!("Bearer {presented}"))));
            assert_eq!(
                COMPARED.with(|c| c.get()),
                3 * presented.len(),
                "{presented}"
            );
        }
    }

    #[test]
    fn two_authorization_headers_are_refused() {
        let mut h = HeaderMap::new();
        h.append(header::AUTHORIZATION, hv("Bearer s3cret"));
        let keyed = Auth::new(vec!["web:s3cret".parse().unwrap()]);
        assert_eq!(keyed.client_for(&h).unwrap(), "web");
        h.append(header::AUTHORIZATION, hv("Bearer s3cret"));
        assert!(matches!(
            keyed.client_for(&h),
            Err(AuthError::Unauthorized(_))
        ));
        assert!(matches!(
            Auth::default().client_for(&h),
            Err(AuthError::BadClientId(_))
        ));
        assert_eq!(
            Auth::default().client_for(&HeaderMap::new()).unwrap(),
            "default"
        );
    }

    #[test]
    fn a_verified_certificate_names_the_client() {
        let peer = PeerIdentity("agent-7".into());
        let mut with_header = HeaderMap::new();
        with_header.insert(header::AUTHORIZATION, hv("Bearer s3cret"));
        let none = HeaderMap::new();
        // No keys: the certificate's name, whatever the header says.
        let open = Auth::default();
        assert_eq!(open.client_of(&none, Some(&peer)).unwrap(), "agent-7");
        assert_eq!(
            open.client_of(&with_header, Some(&peer)).unwrap(),
            "agent-7"
        );
        assert_eq!(open.client_of(&with_header, None).unwrap(), "s3cret");
        // Keys: a header is judged by its key alone; no header, the certificate.
        let keyed = Auth::new(vec!["web:s3cret".parse().unwrap()]);
        assert_eq!(keyed.client_of(&with_header, Some(&peer)).unwrap(), "web");
        assert_eq!(keyed.client_of(&none, Some(&peer)).unwrap(), "agent-7");
        let mut wrong = HeaderMap::new();
        wrong.insert(header::AUTHORIZATION, hv("Bearer nope"));
        assert!(matches!(
            keyed.client_of(&wrong, Some(&peer)),
            Err(AuthError::Unauthorized(_))
        ));
        assert!(matches!(
            keyed.client_of(&none, None),
            Err(AuthError::Unauthorized(_))
        ));
        // A name that cannot be a client id is refused, not mangled.
        let spaced = PeerIdentity("Jane Doe".into());
        assert!(matches!(
            open.client_of(&none, Some(&spaced)),
            Err(AuthError::BadClientId(_))
        ));
    }

    #[test]
    fn key_parsing_and_debug_hide_the_secret() {
        assert!("nocolon".parse::<ApiKey>().is_err());
        assert!(":x".parse::<ApiKey>().is_err());
        let k: ApiKey = "svc:topsecret".parse().unwrap();
        assert!(!format!("{k:?}").contains("topsecret"));
    }

    fn basic_header(user: &str, password: &str) -> HeaderValue {
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        hv(&format!("Basic {b64}"))
    }

    #[test]
    fn basic_auth_carries_the_same_keys() {
        let auth = Auth::new(vec!["prom:s3cret".parse().unwrap()]);
        assert_eq!(
            auth.client_id(Some(&basic_header("anyone", "s3cret")))
                .unwrap(),
            "prom"
        );
        assert_eq!(
            auth.client_id(Some(&hv("bAsIc cHJvbTpzM2NyZXQ="))).unwrap(),
            "prom"
        );
        for bad in [
            basic_header("prom", "wrong"),
            hv("Basic !!!"),
            hv("Basic cHJvbQ=="),
        ] {
            assert!(
                matches!(auth.client_id(Some(&bad)), Err(AuthError::Unauthorized(_))),
                "{bad:?}"
            );
        }
        // Without keys, the user name is the client id.
        let open = Auth::default();
        assert_eq!(
            open.client_id(Some(&basic_header("node-1", "x"))).unwrap(),
            "node-1"
        );
    }
}
