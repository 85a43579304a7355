//! Network identifiers of a person: email and IP addresses.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use super::{Around, glues_after, glues_before};

/// File extensions that follow an `@` in asset names (`logo@2x.png`) and are not domains.
const NOT_TLDS: [&str; 14] = [
    "png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "css", "js", "map", "json", "txt",
    "log",
];

pub(super) fn email(c: &str, around: Around) -> Option<Range<usize>> {
    let (local, domain) = c.rsplit_once('@')?;
    // No 64-byte limit on the local part: rejecting a long one would retry the scan at
    // every byte of it, and a long run before `@example.com` is worth hiding anyway.
    let local_ok = !local.starts_with('.') && !local.ends_with('.') && !local.contains("..");
    if !local_ok || local.contains('@') {
        return None;
    }
    // The pattern lets every non-ASCII character into a label (for IDNs). One that cannot
    // be in a domain, such as U+FFFD, ends the address there: the match only ran on
    // because more label-like text followed it, and a second pass, after that text was
    // redacted, would find the address ending there (not idempotent, and a leak).
    if let Some((cut, ch)) = domain
        .char_indices()
        .find(|&(_, ch)| !(ch.is_alphanumeric() || ch == '-' || ch == '.'))
    {
        if glues_after(ch) {
            return None;
        }
        // A dot right before that character ends the sentence, not a label: the address
        // ends before it, as a second pass (with the text after it redacted) would see it.
        let prefix = domain.get(..cut)?.trim_end_matches('.');
        return domain_ok(prefix).then_some(0..local.len() + 1 + prefix.len());
    }
    let glued = around
        .after()
        .is_some_and(|n| glues_after(n) || n == '@' || n == '-');
    if !glued {
        return domain_ok(domain).then_some(0..c.len());
    }
    // The match ended inside something longer, such as a JWT after `alice@example.com.`
    // whose letters looked like more labels: the address is the longest prefix that ends
    // at a label boundary on a valid top-level domain. Rejecting it whole would leave the
    // address in the clear while a second pass redacts it (not idempotent, and a leak).
    let at = local.len() + 1;
    let mut end = domain.len();
    while let Some(dot) = domain.get(..end)?.rfind('.') {
        end = dot;
        let prefix = domain.get(..end)?;
        // Here the top-level label must be one the pattern itself accepts: letters.
        let tld_letters = prefix
            .rsplit('.')
            .next()
            .is_some_and(|t| t.chars().count() >= 2 && t.chars().all(char::is_alphabetic));
        if tld_letters && domain_ok(prefix) {
            return Some(0..at + end);
        }
    }
    None
}

/// A domain of at least two labels, letters, digits and inner hyphens, with a top-level
/// label that is not all digits and not a file extension.
fn domain_ok(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    let Some(tld) = labels.last() else {
        return false;
    };
    domain.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|ch| ch.is_alphanumeric() || ch == '-')
        })
        && !tld.chars().all(|ch| ch.is_ascii_digit())
        && !NOT_TLDS.contains(&tld.to_ascii_lowercase().as_str())
}

pub(super) fn ipv4(c: &str, around: Around) -> Option<Range<usize>> {
    let (before, before2) = around.before2();
    match (before, before2) {
        (Some('.'), _) => return None,
        // `Chrome/120.0.0.1` is a version, `/10.0.0.1` in a path may be an address.
        (Some('/'), Some(p)) if p.is_alphanumeric() => return None,
        _ => {}
    }
    match around.after2_len(c.len()) {
        (Some('.'), Some(n)) if n.is_ascii_digit() => return None,
        (Some(a), _) if glues_after(a) => return None,
        _ => {}
    }
    if around.before().is_some_and(glues_before) {
        return None;
    }
    if preceded_by_version_word(around.prefix()) {
        return None;
    }
    // Leading zeros are not an address in any current parser; `010.001.002.003` is a code.
    if c.split('.')
        .any(|octet| octet.len() > 1 && octet.starts_with('0'))
    {
        return None;
    }
    let ip: Ipv4Addr = c.parse().ok()?;
    let infrastructure = ip.is_unspecified() || ip.is_loopback() || ip.is_broadcast();
    (!infrastructure).then_some(0..c.len())
}

pub(super) fn ipv6(c: &str, around: Around) -> Option<Range<usize>> {
    let glued = |ch: char| ch.is_alphanumeric() || ch == ':' || ch == '.' || ch == '_';
    if around.before().is_some_and(|b| glued(b) || glues_before(b))
        || around.after().is_some_and(|a| glued(a) || glues_after(a))
    {
        return None;
    }
    let ip: Ipv6Addr = c.parse().ok()?;
    (!ip.is_unspecified() && !ip.is_loopback()).then_some(0..c.len())
}

/// `version 1.2.3.4`, `ver=1.2.3.4`, `release: 1.2.3.4`.
fn preceded_by_version_word(prefix: &str) -> bool {
    let trimmed = prefix.trim_end_matches([' ', '=', ':', '"', '\'']);
    if trimmed.len() == prefix.len() {
        return false;
    }
    let word_start = trimmed
        .rfind(|ch: char| !ch.is_ascii_alphabetic())
        .map_or(0, |i| i + 1);
    let word = trimmed.get(word_start..).unwrap_or("").to_ascii_lowercase();
    matches!(
        word.as_str(),
        "version" | "ver" | "v" | "release" | "build" | "rev" | "revision"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_words_are_recognised_before_a_dotted_quad() {
        assert!(preceded_by_version_word("app version "));
        assert!(preceded_by_version_word("ver="));
        assert!(!preceded_by_version_word("client "));
        assert!(!preceded_by_version_word("version"));
    }
}
