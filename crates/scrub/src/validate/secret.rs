//! Secrets: tokens, credentials and `key=value` pairs whose key says the value is secret.
//!
//! For pairs and headers only the value is replaced, so the line still says *which* secret
//! was there (`password=[SECRET]`).

use std::ops::Range;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use super::{Around, glues_after, glues_before};

pub(super) fn jwt(c: &str, around: Around) -> Option<Range<usize>> {
    if around.before().is_some_and(|b| glues_before(b) || b == '-') {
        return None;
    }
    let header = c.split('.').next()?;
    let decoded = URL_SAFE_NO_PAD.decode(header.trim_end_matches('=')).ok()?;
    let looks_like_header = decoded.first() == Some(&b'{')
        && (contains(&decoded, b"\"alg\"") || contains(&decoded, b"\"typ\""));
    looks_like_header.then_some(0..c.len())
}

pub(super) fn url_credentials(c: &str) -> Option<Range<usize>> {
    let start = c.find("://")? + 3;
    let end = c.len().checked_sub(1)?;
    (start < end).then_some(start..end)
}

pub(super) fn auth_header(c: &str) -> Option<Range<usize>> {
    let start = c.rfind([' ', '\t'])? + 1;
    let credential = c.get(start..)?;
    (!credential.is_empty() && !is_placeholder(credential)).then_some(start..c.len())
}

pub(super) fn bare_auth(c: &str, around: Around) -> Option<Range<usize>> {
    if around.after().is_some_and(glues_after) {
        return None;
    }
    let start = c.rfind([' ', '\t'])? + 1;
    let scheme = c.get(..start)?.trim_end();
    let credential = c.get(start..)?;
    let plausible = if scheme.eq_ignore_ascii_case("basic") {
        // Basic credentials are base64 of `user:password`.
        STANDARD
            .decode(credential)
            .ok()
            .is_some_and(|raw| raw.contains(&b':'))
    } else {
        // Prose says "bearer tokens are..."; a token has digits or symbols.
        credential.len() >= 8
            && credential
                .bytes()
                .any(|b| b.is_ascii_digit() || b"._~+/-".contains(&b))
    };
    plausible.then_some(start..c.len())
}

pub(super) fn secret_pair(c: &str) -> Option<Range<usize>> {
    let sep = c.find([':', '='])?;
    let after_sep = c.get(sep + 1..)?;
    let value_start = sep + 1 + (after_sep.len() - after_sep.trim_start().len());
    let value = c.get(value_start..)?;
    let (start, end) = match value.chars().next()? {
        quote @ ('"' | '\'') if value.len() >= 2 && value.ends_with(quote) => {
            (value_start + 1, c.len() - 1)
        }
        _ => (value_start, c.len()),
    };
    let secret = c.get(start..end)?;
    (!secret.is_empty() && !is_placeholder(secret)).then_some(start..end)
}

/// Values that are already masked or are not values at all: `[FILTERED]`, `***`, `null`,
/// SQL placeholders. Replacing them would hide nothing and break idempotence.
fn is_placeholder(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    value.starts_with('[')
        || value.starts_with('<')
        || value.bytes().all(|b| b == b'*' || b == b'x' || b == b'X')
        || value.starts_with('$') && value.len() <= 3
        || matches!(
            lower.as_str(),
            "null"
                | "none"
                | "nil"
                | "undefined"
                | "true"
                | "false"
                | "?"
                | "%s"
                | "redacted"
                | "filtered"
                | "required"
                | "invalid"
                | "missing"
                | "expired"
        )
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_pair_replaces_only_the_value_inside_quotes() {
        let c = r#""password": "hunter2""#;
        let range = secret_pair(c);
        assert_eq!(range.and_then(|r| c.get(r)), Some("hunter2"));
    }

    #[test]
    fn masked_values_are_not_secrets() {
        assert_eq!(secret_pair("password=[FILTERED]"), None);
        assert_eq!(secret_pair("password=****"), None);
        assert_eq!(secret_pair("password = $1"), None);
    }

    #[test]
    fn url_credentials_span_user_and_password() {
        let c = "postgres://app:s3cr3t@";
        assert_eq!(
            url_credentials(c).and_then(|r| c.get(r)),
            Some("app:s3cr3t")
        );
    }
}
