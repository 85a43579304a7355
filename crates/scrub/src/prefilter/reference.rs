//! The prefilter as first written, one `match` per byte: the specification the fast
//! prefilter is tested against (it must name exactly the same families on every line).
#![allow(clippy::indexing_slicing)]

use super::{API_KEY, AUTH, CODE, DIGITS, EMAIL, Families, IPV4, IPV6, JWT, PEM, SECRET, URL};

/// Digits in one run before cards, phones and national ids are worth looking for: the
/// shortest of them (a Belgian landline, an SSN) has nine.
const MIN_RUN_DIGITS: u32 = 9;

/// Secret words, lower case, that a `:` or `=` may follow (possibly after a quote).
pub(super) const SECRET_WORDS: [&[u8]; 24] = [
    b"password",
    b"passwd",
    b"pwd",
    b"passphrase",
    b"secret",
    b"token",
    b"apikey",
    b"api_key",
    b"api-key",
    b"accesskey",
    b"access_key",
    b"access-key",
    b"privatekey",
    b"private_key",
    b"private-key",
    b"secretkey",
    b"secret_key",
    b"secret-key",
    b"credential",
    b"credentials",
    b"sessionid",
    b"session_id",
    b"session-id",
    b"cookie",
];

/// The families whose rules could match somewhere in `line`.
pub(crate) fn families(line: &[u8]) -> Families {
    let mut found: Families = 0;
    let mut run = Run::default();
    // Colons in the current hex-and-colon token, for uncompressed IPv6.
    let mut colons = 0u32;
    for (i, &b) in line.iter().enumerate() {
        if b.is_ascii_digit() {
            run.digit(i > 0 && line.get(i - 1).is_some_and(u8::is_ascii_alphabetic));
            continue;
        }
        match b {
            b' ' | b'-' | b'.' | b'/' | b'(' | b')' | b'+' => {
                if b == b'.' && run.group > 0 {
                    run.dots += 1;
                    if run.dots >= 3 && next_is_digit(line, i) {
                        found |= IPV4;
                    }
                } else if b != b'.' {
                    run.dots = 0;
                }
                found |= run.separator(b, line.get(i + 1).copied());
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
                    run.digits = run.digits.saturating_sub(run.group);
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
                found |= secret_before(line, i) | run.end();
            }
            b'=' => {
                found |= secret_before(line, i) | run.end();
                colons = 0;
            }
            b'@' => found |= EMAIL | run.end(),
            b'J' if i >= 2 && line.get(i - 2..i) == Some(b"ey") => found |= JWT | run.end(),
            b'_' => found |= key_before_underscore(line, i) | run.end(),
            // Corsican NIR departments 2A and 2B count as digits.
            b'A' | b'B' | b'a' | b'b'
                if line.get(i.wrapping_sub(1)) == Some(&b'2')
                    && (run.group == 1 || (run.group == 6 && run.digits == 6))
                    && line
                        .get(i + 1)
                        .is_some_and(|n| n.is_ascii_digit() || *n == b' ') =>
            {
                run.digit(false);
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
                found |= run.end_at_letter();
                if b > b'F' {
                    colons = 0;
                }
            }
            b'a'..=b'z' if b != b'x' => found |= run.end_at_letter(),
            b'x' if line.get(i..i + 3) == Some(b"xox") => {
                found |= API_KEY | run.end();
                colons = 0;
            }
            b'\t' => found |= word_before_space(line, i) | run.end(),
            _ => {
                found |= run.end();
                colons = 0;
            }
        }
    }
    found | run.end()
}

/// A run of digits that may hold single separators ` -./()+`: a candidate number.
#[derive(Debug, Default)]
struct Run {
    digits: u32,
    /// Digits since the last separator.
    group: u32,
    /// Dots between digit groups, for IPv4.
    dots: u32,
    /// The separator just seen, if the previous byte was one.
    last_separator: Option<u8>,
    /// The first of ` ` and `.` that separated groups of this run.
    spacing: Option<u8>,
    /// The first group is glued to a word (`b353` in a UUID) and counts for nothing.
    glued: bool,
}

impl Run {
    fn digit(&mut self, after_letter: bool) {
        if self.digits == 0 && (after_letter || self.glued) {
            self.glued = true;
        }
        self.digits += 1;
        self.group += 1;
        self.last_separator = None;
    }

    fn separator(&mut self, b: u8, next: Option<u8>) -> Families {
        // A separator that is not followed by more of the number ends it (`… 9338.`).
        if !next.is_some_and(|n| n.is_ascii_digit() || is_separator(n)) {
            return self.end();
        }
        let mut found = 0;
        if self.glued {
            // Hex ids go on glued through dashes (`2899ff52-4235-8078`); other separators
            // start a fresh number.
            self.glued = b == b'-';
            self.digits = 0;
            self.spacing = None;
        }
        // Two separators in a row end a number, unless one is a bracket or `+`.
        if self.last_separator.is_some_and(|p| !is_bracket(p)) && !is_bracket(b) {
            found |= self.long_enough(self.digits);
            self.digits = 0;
            self.spacing = None;
        }
        match (b, self.spacing) {
            _ if self.digits == 0 => {}
            // `limit=50 200 221.623`: a dot after space-separated groups is a decimal point;
            // the number restarts at the group before it.
            (b'.', Some(b' ')) => {
                found |= self.long_enough(self.digits.saturating_sub(self.group));
                self.digits = self.group;
                self.spacing = Some(b'.');
            }
            // A space after dot-separated groups ends that number.
            (b' ', Some(b'.')) => {
                found |= self.long_enough(self.digits);
                self.digits = 0;
                self.spacing = Some(b' ');
            }
            (b' ' | b'.', None) => self.spacing = Some(b),
            _ => {}
        }
        self.last_separator = Some(b);
        self.group = 0;
        found
    }

    /// Ends the run at a letter: a number with no separator glued to a word (`1988297089857da7`)
    /// cannot be one a rule accepts.
    fn end_at_letter(&mut self) -> Families {
        if self.digits > 0 && self.group == self.digits {
            *self = Run::default();
            return 0;
        }
        self.end()
    }

    /// Ends the run; [`DIGITS`] if it was long enough.
    fn end(&mut self) -> Families {
        if self.digits == 0 && self.last_separator.is_none() {
            self.glued = false;
            self.dots = 0;
            return 0;
        }
        let found = self.long_enough(self.digits);
        *self = Run::default();
        found
    }

    fn long_enough(&self, digits: u32) -> Families {
        if digits >= MIN_RUN_DIGITS && !self.glued {
            DIGITS
        } else {
            0
        }
    }
}

fn is_separator(b: u8) -> bool {
    matches!(b, b' ' | b'-' | b'.' | b'/' | b'(' | b')' | b'+')
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
    // Spaces are frequent: look only after a word ending like `bearer` or `basic`.
    if !matches!(line.get(i.wrapping_sub(1)), Some(b'r' | b'R' | b'c' | b'C')) {
        return 0;
    }
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
        b"github".as_slice(),
        b"github_pat",
        b"sk_live",
        b"sk_test",
        b"rk_live",
        b"rk_test",
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
