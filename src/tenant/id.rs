//! What a tenant id is, as Mimir validates it (dskit's `tenant.ValidTenantID`):
//! 1 to 150 bytes of `a-z`, `A-Z`, `0-9` and `!` `-` `_` `.` `*` `'` `(` `)`,
//! and neither `.` nor `..` (a tenant is a directory name in Mimir's
//! storage). A store that takes it from us takes it from anyone, so we take
//! exactly what Mimir takes: a tenant stored here is never refused there
//! for its name.

use axum::http::HeaderMap;

use super::TenantError;

/// The header a request names its tenant with (Mimir, Cortex, Loki,
/// Thanos receive), as `consume --tenant-header` sends it on.
pub const HEADER: &str = "x-scope-orgid";
/// Longest tenant id, in bytes (Mimir's `MaxTenantIDLength`).
pub const MAX_TENANT_ID: usize = 150;

fn allowed(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'!' | b'-' | b'_' | b'.' | b'*' | b'\'' | b'(' | b')')
}

/// `Ok` when `id` is a tenant id Mimir takes; else what is wrong with it,
/// naming the id (cut, and with control characters escaped, by `{:?}`).
pub fn validate(id: &str) -> Result<(), String> {
    let shown = || {
        let cut: String = id.chars().take(40).collect();
        if cut.len() < id.len() {
            format!("{cut:?}…")
        } else {
            format!("{cut:?}")
        }
    };
    if id.is_empty() {
        return Err("a tenant id cannot be empty".into());
    }
    if id.contains('|') {
        return Err(format!(
            "{}: several tenants joined with `|` (Mimir's multi-tenant queries) cannot be written to; name one tenant",
            shown()
        ));
    }
    if let Some(bad) = id.bytes().find(|&b| !allowed(b)) {
        let what = if bad.is_ascii_graphic() {
            format!("`{}`", bad as char)
        } else {
            format!("byte 0x{bad:02x}")
        };
        return Err(format!(
            "{}: {what} is not allowed in a tenant id (a-z, A-Z, 0-9 and !-_.*'() only)",
            shown()
        ));
    }
    if id.len() > MAX_TENANT_ID {
        return Err(format!(
            "{}: a tenant id is at most {MAX_TENANT_ID} bytes, this one {}",
            shown(),
            id.len()
        ));
    }
    if id == "." || id == ".." {
        return Err(format!(
            "{}: not a tenant id (`.` and `..` are refused)",
            shown()
        ));
    }
    Ok(())
}

/// The tenant a request names with `X-Scope-OrgID`, validated; `None`
/// without the header. Sent twice, or not a tenant id: a 400 saying so.
pub fn requested(headers: &HeaderMap) -> Result<Option<String>, TenantError> {
    let mut all = headers.get_all(HEADER).iter();
    let Some(value) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err(TenantError::Invalid(
            "X-Scope-OrgID: sent more than once; name one tenant".into(),
        ));
    }
    let text = value.to_str().map_err(|_| {
        TenantError::Invalid(
            "X-Scope-OrgID: not a tenant id (a-z, A-Z, 0-9 and !-_.*'() only)".into(),
        )
    })?;
    validate(text).map_err(|why| TenantError::Invalid(format!("X-Scope-OrgID: {why}")))?;
    Ok(Some(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn ids_are_validated_as_mimir_does() {
        for good in [
            "acme",
            "a",
            "team-1_prod.eu",
            "!-_.*'()",
            "...",
            "A9",
            &"x".repeat(150),
        ] {
            assert_eq!(validate(good), Ok(()), "{good}");
        }
        let refused = |id: &str, says: &str| {
            let why = validate(id).unwrap_err();
            assert!(why.contains(says), "{id}: {why}");
        };
        refused("", "empty");
        refused(".", "`.` and `..`");
        refused("..", "`.` and `..`");
        refused(&"x".repeat(151), "at most 150 bytes, this one 151");
        refused("a b", "byte 0x20 is not allowed");
        refused("a/b", "`/` is not allowed");
        refused("a:b", "`:` is not allowed");
        refused("tenant\n", "byte 0x0a");
        refused("é", "byte 0xc3");
        refused("a|b", "several tenants joined with `|`");
        refused("|", "several tenants");
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(HEADER, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_header_names_one_valid_tenant() {
        assert_eq!(requested(&headers(&[])), Ok(None));
        assert_eq!(requested(&headers(&["acme"])), Ok(Some("acme".into())));
        // Header names are case-insensitive.
        let mut h = HeaderMap::new();
        h.insert("X-Scope-OrgID", HeaderValue::from_static("beta"));
        assert_eq!(requested(&h), Ok(Some("beta".into())));
        for bad in [&["a", "b"][..], &["a|b"], &[""], &["a b"], &[".."]] {
            match requested(&headers(bad)) {
                Err(TenantError::Invalid(m)) => assert!(m.starts_with("X-Scope-OrgID: "), "{m}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap());
        assert!(matches!(requested(&h), Err(TenantError::Invalid(_))));
    }
}
