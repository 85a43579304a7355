//! Numbers that identify a person: cards, IBANs, national ids and phone numbers.
//!
//! Each is confirmed by its check digits where it has them (Luhn, mod-97, the NIR key) and
//! otherwise by its length and prefix rules per country. When a regex swallowed digits that
//! follow a number (`4111 1111 1111 1111 2024`), the validator keeps the longest prefix that
//! ends on a group boundary and is valid.

use std::ops::Range;

use super::{Around, glues_after, glues_before};

pub(super) fn card(c: &str, around: Around) -> Option<Range<usize>> {
    if !left_ok(around) {
        return None;
    }
    longest_valid_prefix(c, around, card_ok)
}

/// The longest prefix of `c` that ends on a group boundary, is `valid` and may end there.
fn longest_valid_prefix(
    c: &str,
    around: Around,
    valid: impl Fn(&str) -> bool,
) -> Option<Range<usize>> {
    group_ends(c)
        .into_iter()
        .rev()
        .find(|&cut| c.get(..cut).is_some_and(&valid) && right_ok(around, cut))
        .map(|cut| 0..cut)
}

pub(super) fn iban(c: &str, around: Around) -> Option<Range<usize>> {
    if around.before().is_some_and(glues_before) {
        return None;
    }
    let want = iban_length(c.get(..2)?)?;
    let mut compact = String::with_capacity(want);
    let mut end = 0;
    for (i, ch) in c.char_indices() {
        if ch != ' ' {
            compact.push(ch);
            if compact.len() == want {
                end = i + ch.len_utf8();
                break;
            }
        }
    }
    if compact.len() != want || around.after_len(end).is_some_and(glues_after) {
        return None;
    }
    let spaced = c.get(..end)?;
    if spaced.contains(' ') {
        // Printed IBANs are grouped by four; anything else is two codes side by side.
        let groups: Vec<&str> = spaced.split(' ').collect();
        let (last, rest) = groups.split_last()?;
        if rest.iter().any(|g| g.len() != 4) || last.is_empty() || last.len() > 4 {
            return None;
        }
    }
    (iban_mod97(&compact) == Some(1)).then_some(0..end)
}

pub(super) fn nir(c: &str, around: Around) -> Option<Range<usize>> {
    if !left_ok(around) || !right_ok(around, c.len()) {
        return None;
    }
    let compact: String = c
        .chars()
        .filter(|ch| *ch != ' ')
        .map(|ch| ch.to_ascii_uppercase())
        .collect();
    let month: u32 = compact.get(3..5)?.parse().ok()?;
    if !matches!(month, 1..=12 | 20..=42 | 50..=99) {
        return None;
    }
    // Corsica's departments 2A and 2B count as 19 and 18 in the key (INSEE rule).
    let number = match compact.get(5..7)? {
        "2A" => format!("{}19{}", compact.get(..5)?, compact.get(7..13)?),
        "2B" => format!("{}18{}", compact.get(..5)?, compact.get(7..13)?),
        _ => compact.get(..13)?.to_owned(),
    };
    let number: u64 = number.parse().ok()?;
    let key: u64 = compact.get(13..15)?.parse().ok()?;
    (97 - number % 97 == key).then_some(0..c.len())
}

pub(super) fn ssn(c: &str, around: Around) -> Option<Range<usize>> {
    if !left_ok(around) || !right_ok(around, c.len()) {
        return None;
    }
    let mut parts = c.split('-').map(|p| p.parse::<u32>().ok());
    let (area, group, serial) = (parts.next()??, parts.next()??, parts.next()??);
    let valid = area != 0 && area != 666 && area < 900 && group != 0 && serial != 0;
    valid.then_some(0..c.len())
}

pub(super) fn nino(c: &str, _around: Around) -> Option<Range<usize>> {
    let mut letters = c.chars();
    let (first, second) = (letters.next()?, letters.next()?);
    let prefix_ok = !"DFIQUV".contains(first)
        && !"DFIOQUV".contains(second)
        && !matches!(c.get(..2)?, "BG" | "GB" | "KN" | "NK" | "NT" | "TN" | "ZZ");
    let spaces = c.matches(' ').count();
    (prefix_ok && (spaces == 0 || spaces == 4)).then_some(0..c.len())
}

pub(super) fn phone_international(c: &str, around: Around) -> Option<Range<usize>> {
    if around.before().is_some_and(|b| glues_before(b) || b == '+') {
        return None;
    }
    longest_valid_prefix(c, around, |part| {
        international_length_ok(&digits_without_trunk(part))
    })
}

/// An international number dialled with `00` instead of `+` (`0044 20 7946 0958`), common
/// in Europe. Stricter than the `+` form, because zero-padded ids also start with `00`:
/// only the known countries, each at its own length.
pub(super) fn phone_zero_zero(c: &str, around: Around) -> Option<Range<usize>> {
    if !left_ok(around) {
        return None;
    }
    longest_valid_prefix(c, around, |part| {
        part.strip_prefix("00")
            .is_some_and(|rest| country_length_ok(&digits_without_trunk(rest)) == Some(true))
    })
}

pub(super) fn phone_us(c: &str, around: Around) -> Option<Range<usize>> {
    if !left_ok(around) || !right_ok(around, c.len()) {
        return None;
    }
    let digits = digits(c);
    let national = digits.strip_prefix('1').filter(|_| digits.len() == 11);
    let national = national.unwrap_or(&digits);
    (national.len() == 10).then_some(0..c.len())
}

pub(super) fn phone_trunk(c: &str, around: Around) -> Option<Range<usize>> {
    if !left_ok(around) {
        return None;
    }
    let groups = digit_groups(c);
    if looks_like_date(c, &groups) {
        return None;
    }
    group_ends(c)
        .into_iter()
        .rev()
        .find(|&cut| {
            let Some(part) = c.get(..cut) else {
                return false;
            };
            let n = digits(part).len();
            let separated = part.bytes().any(|b| !b.is_ascii_digit());
            let length_ok = if separated {
                (9..=12).contains(&n)
            } else {
                n == 10 || n == 11
            };
            length_ok && right_ok(around, cut)
        })
        .map(|cut| 0..cut)
}

pub(super) fn phone_no_trunk(c: &str, around: Around) -> Option<Range<usize>> {
    if !left_ok(around) || !right_ok(around, c.len()) {
        return None;
    }
    let n = digits(c).len();
    let separators = c.bytes().filter(|b| !b.is_ascii_digit()).count();
    let spanish = n == 9 && separators >= 2 && c.starts_with(['6', '7', '8', '9']);
    let italian_mobile = n == 10 && separators >= 1 && c.starts_with('3');
    (spanish || italian_mobile).then_some(0..c.len())
}

/// Luhn's check digit, as used by every card network.
pub(crate) fn luhn_ok(digits: &str) -> bool {
    let mut sum = 0;
    for (i, b) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(b.wrapping_sub(b'0'));
        if d > 9 {
            return false;
        }
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum % 10 == 0
}

/// The ISO 13616 remainder of an IBAN (`1` when valid), `None` on a character that is not
/// a digit or an upper-case letter.
pub(crate) fn iban_mod97(compact: &str) -> Option<u32> {
    let (head, tail) = (compact.get(..4)?, compact.get(4..)?);
    let mut rem = 0u32;
    for ch in tail.chars().chain(head.chars()) {
        rem = match ch {
            '0'..='9' => (rem * 10 + ch.to_digit(10)?) % 97,
            'A'..='Z' => (rem * 100 + ch.to_digit(36)?) % 97,
            _ => return None,
        };
    }
    Some(rem)
}

/// The IBAN length of a country, from the SWIFT IBAN registry.
fn iban_length(country: &str) -> Option<usize> {
    let len = match country {
        "NO" => 15,
        "BE" => 16,
        "DK" | "FI" | "FO" | "GL" | "NL" => 18,
        "MK" | "SI" => 19,
        "AT" | "BA" | "EE" | "KZ" | "LT" | "LU" | "XK" => 20,
        "CH" | "HR" | "LI" | "LV" => 21,
        "BG" | "BH" | "CR" | "DE" | "GB" | "GE" | "IE" | "ME" | "RS" => 22,
        "AE" | "GI" | "IL" | "TL" => 23,
        "AD" | "CZ" | "ES" | "MD" | "PK" | "RO" | "SA" | "SE" | "SK" | "TN" | "VG" => 24,
        "PT" | "ST" => 25,
        "IS" | "TR" => 26,
        "FR" | "GR" | "IT" | "MC" | "MR" | "SM" => 27,
        "AL" | "AZ" | "CY" | "DO" | "GT" | "HU" | "LB" | "PL" | "SV" => 28,
        "BR" | "EG" | "PS" | "QA" | "UA" => 29,
        "JO" | "KW" | "MU" => 30,
        "MT" | "SC" => 31,
        "LC" => 32,
        _ => return None,
    };
    Some(len)
}

fn card_ok(part: &str) -> bool {
    let digits = digits(part);
    let groups = digit_groups(part);
    let mut separators = part.bytes().filter(|b| !b.is_ascii_digit());
    let first_separator = separators.next();
    let grouping_ok = match first_separator {
        None => true,
        Some(sep) => {
            let (last, rest) = groups.split_last().unwrap_or((&"", &[]));
            separators.all(|b| b == sep)
                && rest.iter().all(|g| (3..=7).contains(&g.len()))
                && (2..=7).contains(&last.len())
        }
    };
    grouping_ok && issuer_ok(&digits) && luhn_ok(&digits)
}

/// Issuer prefixes and lengths (ISO/IEC 7812 ranges of the networks in use).
fn issuer_ok(d: &str) -> bool {
    let n = d.len();
    let p2: u32 = d.get(..2).and_then(|p| p.parse().ok()).unwrap_or(0);
    let p3: u32 = d.get(..3).and_then(|p| p.parse().ok()).unwrap_or(0);
    let p4: u32 = d.get(..4).and_then(|p| p.parse().ok()).unwrap_or(0);
    match p2 {
        40..=49 => matches!(n, 13 | 16 | 19),
        51..=55 => n == 16,
        22..=27 => (2221..=2720).contains(&p4) && n == 16,
        34 | 37 => n == 15,
        36 => (14..=19).contains(&n),
        30 => (300..=305).contains(&p3) && (14..=19).contains(&n),
        35 => (3528..=3589).contains(&p4) && (16..=19).contains(&n),
        38 | 39 => (16..=19).contains(&n),
        // Maestro, Discover, UnionPay, RuPay and friends.
        50 | 56..=69 => (12..=19).contains(&n),
        _ => false,
    }
}

fn international_length_ok(digits: &str) -> bool {
    country_length_ok(digits).unwrap_or_else(|| (8..=15).contains(&digits.len()))
}

/// For the countries the scrubber knows (US/CA, UK, FR, DE, ES, IT, NL, BE): whether the
/// digits after the country code have that country's length; `None` for other countries.
fn country_length_ok(digits: &str) -> Option<bool> {
    let total = digits.len();
    let national = |cc: usize| total.saturating_sub(cc);
    if digits.starts_with('1') {
        return Some(national(1) == 10);
    }
    match digits.get(..2) {
        Some("33" | "34" | "31") => Some(national(2) == 9),
        Some("44") => Some((9..=10).contains(&national(2))),
        Some("32") => Some((8..=9).contains(&national(2))),
        Some("39") => Some((6..=11).contains(&national(2))),
        Some("49") => Some((6..=13).contains(&national(2))),
        _ => None,
    }
}

/// The digits of an international number without the `(0)` trunk prefix that UK and German
/// numbers often show after the country code.
fn digits_without_trunk(part: &str) -> String {
    digits(&part.replacen("(0)", "", 1))
}

/// A number may start here: not glued to a word, a `+`, or a decimal or dashed run.
fn left_ok(around: Around) -> bool {
    match around.before2() {
        (None, _) => true,
        (Some(c), _) if glues_before(c) || c == '+' => false,
        // A tag before the separator (`[IP]-`) stands for what it replaced: see `right_ok`.
        (Some('.' | '-' | ','), Some(p)) => !(p.is_alphanumeric() || p == ']'),
        _ => true,
    }
}

/// A number may end after `len` bytes: not glued to a word or continued by `.5`, `-7`, `,3`.
///
/// A replacement tag there (`-[IP]`) counts as a continuation too: the tag may stand for
/// digits (`-4454::` is an address), so a number refused before that text was replaced must
/// still be refused after, or a second pass would redact what the first left (scrubbing
/// must be idempotent; found by the `scrub_json` fuzz target).
fn right_ok(around: Around, len: usize) -> bool {
    match around.after2_len(len) {
        (None, _) => true,
        (Some(c), _) if glues_after(c) => false,
        (Some('.' | '-' | ',' | '/'), Some(n)) => !(n.is_ascii_digit() || n == '['),
        _ => true,
    }
}

fn looks_like_date(c: &str, groups: &[&str]) -> bool {
    let dated = c.contains(['/', '.', '-']);
    match groups {
        [a, b, year, ..] => {
            dated
                && a.len() <= 2
                && b.len() <= 2
                && year.len() == 4
                && (year.starts_with("19") || year.starts_with("20"))
        }
        _ => false,
    }
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

fn digit_groups(s: &str) -> Vec<&str> {
    s.split(|c: char| !c.is_ascii_digit())
        .filter(|g| !g.is_empty())
        .collect()
}

/// Byte offsets just after each run of digits, in order.
fn group_ends(s: &str) -> Vec<usize> {
    let bytes = s.as_bytes();
    bytes
        .iter()
        .enumerate()
        .filter(|&(i, b)| b.is_ascii_digit() && !bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
        .map(|(i, _)| i + 1)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_accepts_known_test_cards_and_rejects_a_changed_digit() {
        assert!(luhn_ok("4111111111111111"));
        assert!(luhn_ok("5555555555554444"));
        assert!(luhn_ok("378282246310005"));
        assert!(!luhn_ok("4111111111111112"));
    }

    #[test]
    fn iban_mod97_accepts_published_examples() {
        assert_eq!(iban_mod97("GB82WEST12345698765432"), Some(1));
        assert_eq!(iban_mod97("DE89370400440532013000"), Some(1));
        assert_ne!(iban_mod97("DE89370400440532013001"), Some(1));
    }

    #[test]
    fn issuer_rules_reject_a_luhn_valid_number_with_no_network() {
        // 1000000000000008 passes Luhn but no network issues cards starting with 1.
        assert!(luhn_ok("1000000000000008"));
        assert!(!issuer_ok("1000000000000008"));
        assert!(issuer_ok("2221000000000009"));
    }
}
