//! The prefilter: one hand-written pass over the bytes of a line that says which rule
//! families could match on it. Most log lines wake nothing and leave here untouched.
//!
//! Every family's test is a necessary condition of its rules (an email has an `@`, a card
//! has twelve digits in one run, a JWT contains `eyJ`), so a line the prefilter passes over
//! cannot contain a finding; a line it flags may still hold none, which only costs time.
//! The tests are written for the bytes that are rare in logs, so the common bytes (letters,
//! spaces) cost a table lookup and a branch.

/// A family of rules woken together.
pub(crate) type Families = u32;

pub(crate) const EMAIL: Families = 1 << 0;
pub(crate) const URL: Families = 1 << 1;
pub(crate) const IPV6: Families = 1 << 2;
pub(crate) const JWT: Families = 1 << 3;
pub(crate) const API_KEY: Families = 1 << 4;
pub(crate) const PEM: Families = 1 << 5;
pub(crate) const AUTH: Families = 1 << 6;
pub(crate) const SECRET: Families = 1 << 7;
/// Two capitals then digits: IBAN, NINO.
pub(crate) const CODE: Families = 1 << 8;
pub(crate) const IPV4: Families = 1 << 9;
/// A long run of digits: cards, phones, SSN, NIR.
pub(crate) const DIGITS: Families = 1 << 10;
/// Custom patterns have no known trigger: they run on every line.
pub(crate) const ALWAYS: Families = 1 << 11;

/// Digits in one run before cards, phones and national ids are worth looking for: the
/// shortest of them (a Belgian landline, an SSN) has nine.
const MIN_RUN_DIGITS: u32 = 9;

/// Secret words, lower case, that a `:` or `=` may follow (possibly after a quote).
const SECRET_WORDS: [&[u8]; 24] = [
    b"password", b"passwd", b"pwd", b"passphrase", b"secret", b"token", b"apikey", b"api_key",
    b"api-key", b"accesskey", b"access_key", b"access-key", b"privatekey", b"private_key",
    b"private-key", b"secretkey", b"secret_key", b"secret-key", b"credential", b"credentials",
    b"sessionid", b"session_id", b"session-id", b"cookie",
];

/// The families whose rules could match somewhere in `line`.
pub(crate) fn families(line: &[u8]) -> Families {
    let mut found: Families = 0;
    // Digits in the current run, where runs may hold single separators ` -./()`.
    let mut run_digits = 0u32;
    let mut group_digits = 0u32;
    // The separator just seen, if the previous byte was one.
    let mut last_separator: Option<u8> = None;
    // Dots in the current dotted-digits run, for IPv4.
    let mut dots = 0u32;
    let mut colons = 0u32;
    for (i, &b) in line.iter().enumerate() {
        if b.is_ascii_digit() {
            run_digits += 1;
            group_digits += 1;
            last_separator = None;
            if run_digits >= MIN_RUN_DIGITS {
                found |= DIGITS;
            }
            continue;
        }
        match b {
            b' ' | b'-' | b'.' | b'/' | b'(' | b')' | b'+' => {
                if b == b'.' && group_digits > 0 {
                    dots += 1;
                    if dots >= 3 && next_is_digit(line, i) {
                        found |= IPV4;
                    }
                } else if b != b'.' {
                    dots = 0;
                }
                // Two separators in a row end a number, unless one is a bracket or `+`.
                if last_separator.is_some_and(|p| !is_bracket(p)) && !is_bracket(b) {
                    run_digits = 0;
                }
                last_separator = Some(b);
                group_digits = 0;
                colons = 0;
                if b == b'-' && line.get(i..i + 11) == Some(b"-----BEGIN ") {
                    found |= PEM;
                }
                if b == b' ' {
                    found |= word_before_space(line, i);
                }
            }
            b':' => {
                // A time (`10:23:45`) is not part of a phone number: drop its hour.
                if next_is_digit(line, i) {
                    run_digits = run_digits.saturating_sub(group_digits);
                }
                colons += 1;
                match line.get(i + 1) {
                    Some(b':') => found |= IPV6,
                    Some(b'/') if line.get(i + 2) == Some(&b'/') => found |= URL,
                    _ => {}
                }
                if colons >= 6 {
                    found |= IPV6;
                }
                found |= secret_before(line, i);
                reset(&mut run_digits, &mut group_digits, &mut dots, &mut last_separator);
            }
            b'=' => {
                found |= secret_before(line, i);
                reset(&mut run_digits, &mut group_digits, &mut dots, &mut last_separator);
                colons = 0;
            }
            b'@' => {
                found |= EMAIL;
                reset(&mut run_digits, &mut group_digits, &mut dots, &mut last_separator);
            }
            b'J' if i >= 2 && line.get(i - 2..i) == Some(b"ey") => found |= JWT,
            b'_' => {
                found |= key_before_underscore(line, i);
                reset(&mut run_digits, &mut group_digits, &mut dots, &mut last_separator);
            }
            // Corsican NIR departments 2A and 2B count as digits.
            b'A' | b'B' | b'a' | b'b' if group_digits > 0 && i > 0 && line.get(i - 1) == Some(&b'2') => {
                run_digits += 1;
                group_digits += 1;
                if b == b'A' {
                    found |= key_at_a(line, i);
                }
            }
            b'A'..=b'Z' => {
                if b == b'A' {
                    found |= key_at_a(line, i);
                }
                let starts_word = i == 0 || !line.get(i - 1).is_some_and(u8::is_ascii_uppercase);
                let digit_at = |j: usize| line.get(j).is_some_and(u8::is_ascii_digit);
                if starts_word
                    && line.get(i + 1).is_some_and(u8::is_ascii_uppercase)
                    && (digit_at(i + 2) || (line.get(i + 2) == Some(&b' ') && digit_at(i + 3)))
                {
                    found |= CODE;
                }
                reset(&mut run_digits, &mut group_digits, &mut dots, &mut last_separator);
                if !(b'A'..=b'F').contains(&b) {
                    colons = 0;
                }
            }
            b'a'..=b'f' => {
                reset(&mut run_digits, &mut group_digits, &mut dots, &mut last_separator);
            }
            b'x' if line.get(i..i + 3) == Some(b"xox") => {
                found |= API_KEY;
                reset(&mut run_digits, &mut group_digits, &mut dots, &mut last_separator);
                colons = 0;
            }
            b'\t' => found |= word_before_space(line, i),
            _ => {
                reset(&mut run_digits, &mut group_digits, &mut dots, &mut last_separator);
                colons = 0;
            }
        }
    }
    found
}

fn reset(run_digits: &mut u32, group_digits: &mut u32, dots: &mut u32, sep: &mut Option<u8>) {
    *run_digits = 0;
    *group_digits = 0;
    *dots = 0;
    *sep = None;
}

fn is_bracket(b: u8) -> bool {
    matches!(b, b'(' | b')' | b'+')
}

fn next_is_digit(line: &[u8], i: usize) -> bool {
    line.get(i + 1).is_some_and(u8::is_ascii_digit)
}

/// `password=`, `"api_key": `, `Authorization:`: the word that ends just before `i`
/// (skipping one quote and spaces).
fn secret_before(line: &[u8], i: usize) -> Families {
    let mut end = i;
    while end > 0 && matches!(line.get(end - 1), Some(b' ' | b'\t')) {
        end -= 1;
    }
    if end > 0 && matches!(line.get(end - 1), Some(b'"' | b'\'')) {
        end -= 1;
    }
    let Some(before) = line.get(..end) else {
        return 0;
    };
    if ends_with_ignore_case(before, b"authorization") {
        return AUTH;
    }
    if !before.last().is_some_and(u8::is_ascii_alphabetic) {
        return 0;
    }
    for word in SECRET_WORDS {
        if ends_with_ignore_case(before, word) {
            return SECRET;
        }
    }
    0
}

/// `Bearer ` and `Basic ` before a space.
fn word_before_space(line: &[u8], i: usize) -> Families {
    let before = line.get(..i).unwrap_or(&[]);
    if ends_with_ignore_case(before, b"bearer") || ends_with_ignore_case(before, b"basic") {
        AUTH
    } else {
        0
    }
}

/// `ghp_`, `github_pat_`, `sk_live_`, `rk_test_`, `whsec_`.
fn key_before_underscore(line: &[u8], i: usize) -> Families {
    let before = line.get(..i).unwrap_or(&[]);
    let github = before.len() >= 3
        && before.get(before.len() - 3..before.len() - 1) == Some(b"gh")
        && matches!(before.last(), Some(b'p' | b'o' | b'u' | b's' | b'r'));
    let named = [
        b"github".as_slice(), b"github_pat", b"sk_live", b"sk_test", b"rk_live", b"rk_test",
        b"whsec",
    ]
    .iter()
    .any(|w| before.ends_with(w));
    if github || named { API_KEY } else { 0 }
}

/// AWS key ids and Google API keys start with `A`.
fn key_at_a(line: &[u8], i: usize) -> Families {
    let Some(word) = line.get(i..i + 4) else {
        return 0;
    };
    let aws = [
        b"AKIA", b"ASIA", b"ABIA", b"ACCA", b"AGPA", b"AIDA", b"AROA", b"AIPA", b"ANPA", b"ANVA",
        b"APKA",
    ]
    .iter()
    .any(|p| p.as_slice() == word);
    if aws || word == b"AIza" { API_KEY } else { 0 }
}

fn ends_with_ignore_case(text: &[u8], word: &[u8]) -> bool {
    text.len() >= word.len()
        && text
            .get(text.len() - word.len()..)
            .is_some_and(|tail| tail.eq_ignore_ascii_case(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_application_lines_wake_nothing() {
        for line in [
            "2026-03-05T14:22:31.482Z INFO [exec-7] order 84213 processed in 23ms (items=3)",
            "2026-10-20 01:59:15.623 UTC [28976] LOG:  duration: 0.243 ms  statement: SELECT 1",
            "I, [2026-01-12T15:33:25.978Z #66637]  INFO -- : Completed 200 OK in 45ms",
        ] {
            assert_eq!(families(line.as_bytes()), 0, "{line}");
        }
    }

    #[test]
    fn each_family_has_its_trigger() {
        let cases: [(&str, Families); 11] = [
            ("mail bob@example.com", EMAIL),
            ("dsn postgres://a:b@h", URL | EMAIL),
            ("from 2001:db8::1", IPV6),
            ("tok eyJhbGciOi", JWT),
            ("key AKIAIOSFODNN7EXAMPLE", API_KEY),
            ("-----BEGIN RSA PRIVATE KEY-----", PEM),
            ("Authorization: Bearer x", AUTH),
            ("db_password=x", SECRET),
            ("iban FR76 3000", CODE),
            ("ip 10.1.2.3", IPV4),
            ("tel 06 12 34 56 78", DIGITS),
        ];
        for (line, family) in cases {
            assert_eq!(families(line.as_bytes()) & family, family, "{line}");
        }
    }
}
