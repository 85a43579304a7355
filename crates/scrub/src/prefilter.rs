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

/// What the prefilter does with a byte; one lookup in [`CLASS`] instead of a `match` on
/// ranges and guards, so that the common bytes cost one load and one predictable branch.
type Class = u8;

/// Lowercase letters other than `a`, `b` and `x`: they only end a digit run.
const PLAIN: Class = 0;
/// `a` and `b`: a Corsican NIR department (`2A`, `2B`) after a `2`, else plain.
const LOWER_AB: Class = 1;
/// Everything not named below (punctuation, controls, non-ASCII): ends a number and the
/// colons of an IPv6 token.
const OTHER: Class = 2;
/// The classes up to here do nothing once a run has ended and the colons are reset.
const LAST_INERT: Class = OTHER;
const DIGIT: Class = 3;
/// ` -./()+`: may sit inside a number.
const SEPARATOR: Class = 4;
const COLON: Class = 5;
const EQUALS: Class = 6;
const AT: Class = 7;
const UNDERSCORE: Class = 8;
const TAB: Class = 9;
/// `x`: may start `xox` (Slack).
const LOWER_X: Class = 10;
const UPPER: Class = 11;
/// `A` and `B`: Corsican departments, and `A` starts AWS and Google keys.
const UPPER_AB: Class = 12;
/// `J`: may end `eyJ` (JWT).
const UPPER_J: Class = 13;

static CLASS: [Class; 256] = classes();

const fn classes() -> [Class; 256] {
    let mut table = [OTHER; 256];
    let mut b = 0;
    while b < 256 {
        #[allow(clippy::cast_possible_truncation)] // b < 256
        let byte = b as u8;
        let class = match byte {
            b'0'..=b'9' => DIGIT,
            b' ' | b'-' | b'.' | b'/' | b'(' | b')' | b'+' => SEPARATOR,
            b':' => COLON,
            b'=' => EQUALS,
            b'@' => AT,
            b'_' => UNDERSCORE,
            b'\t' => TAB,
            b'a' | b'b' => LOWER_AB,
            b'x' => LOWER_X,
            b'c'..=b'z' => PLAIN,
            b'A' | b'B' => UPPER_AB,
            b'J' => UPPER_J,
            b'C'..=b'Z' => UPPER,
            _ => OTHER,
        };
        #[allow(clippy::indexing_slicing)] // b < 256 = the table's length
        {
            table[b] = class;
        }
        b += 1;
    }
    table
}

fn class(b: u8) -> Class {
    // Never `OTHER` by default: a `u8` always indexes the 256 entries.
    CLASS.get(usize::from(b)).copied().unwrap_or(OTHER)
}

/// The families whose rules could match somewhere in `line`.
///
/// Exactly the byte-at-a-time rules of `reference.rs` (tested against it), with the two
/// commonest cases done in bulk: after a lowercase letter the run state is settled, so
/// further lowercase letters change nothing and are skipped; after a digit, further digits
/// only lengthen the run, so they are counted in one go.
pub(crate) fn families(line: &[u8]) -> Families {
    let mut found: Families = 0;
    let mut run = Run::default();
    // Colons in the current hex-and-colon token, for uncompressed IPv6.
    let mut colons = 0u32;
    let mut i = 0;
    while let Some(&b) = line.get(i) {
        match class(b) {
            PLAIN => {
                found |= run.end_at_letter();
                i = skip_word(line, i + 1, &mut run, &mut colons);
                continue;
            }
            DIGIT => {
                run.digit(i > 0 && line.get(i - 1).is_some_and(u8::is_ascii_alphabetic));
                let end = skip_digits(line, i + 1);
                run.more_digits(end - i - 1);
                i = end;
                continue;
            }
            SEPARATOR => {
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
                if b == b'-'
                    && line.get(i + 1) == Some(&b'-')
                    && line.get(i..i + 11) == Some(b"-----BEGIN ")
                {
                    found |= PEM;
                }
                if b == b' ' {
                    found |= word_before_space(line, i);
                }
            }
            COLON => {
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
            EQUALS => {
                found |= secret_before(line, i) | run.end();
                colons = 0;
            }
            AT => found |= EMAIL | run.end(),
            UNDERSCORE => found |= key_before_underscore(line, i) | run.end(),
            TAB => found |= word_before_space(line, i) | run.end(),
            LOWER_AB => {
                if corsican(line, i, &run) {
                    run.digit(false);
                } else {
                    found |= run.end_at_letter();
                    i = skip_word(line, i + 1, &mut run, &mut colons);
                    continue;
                }
            }
            LOWER_X => {
                if line.get(i..i + 3) == Some(b"xox") {
                    found |= API_KEY;
                }
                found |= run.end();
                colons = 0;
            }
            UPPER_J if i >= 2 && line.get(i - 2..i) == Some(b"ey") => found |= JWT | run.end(),
            UPPER_AB if corsican(line, i, &run) => {
                run.digit(false);
                if b == b'A' {
                    found |= key_at_a(line, i);
                }
            }
            UPPER | UPPER_AB | UPPER_J => {
                if b == b'A' {
                    found |= key_at_a(line, i);
                }
                let starts_word = i == 0 || !line.get(i - 1).is_some_and(u8::is_ascii_uppercase);
                if starts_word
                    && line.get(i + 1).is_some_and(u8::is_ascii_uppercase)
                    && (next_is_digit(line, i + 1)
                        || (line.get(i + 2) == Some(&b' ') && next_is_digit(line, i + 2)))
                {
                    found |= CODE;
                }
                found |= run.end_at_letter();
                if b > b'F' {
                    colons = 0;
                }
            }
            _ => {
                found |= run.end();
                colons = 0;
                i = skip_inert(line, i + 1, &mut colons);
                continue;
            }
        }
        i += 1;
    }
    found | run.end()
}

/// After a lowercase letter has ended the run: skips the rest of its word of lowercase
/// letters (not `x`) and digits, such as the tail of a hex id, and the words after it when
/// only spaces or punctuation separate them.
///
/// Digits after a letter are glued to it, so the run they make can wake nothing until the
/// word ends: each later letter drops it again. Only the state at the end of the word
/// matters: the trailing digits, glued (a hex id goes on glued through a `-`). A Corsican
/// `2A`/`2B` inside counts as a digit as in [`corsican`], whose group and digit counts are
/// both the trailing digits here.
fn skip_word(line: &[u8], from: usize, run: &mut Run, colons: &mut u32) -> usize {
    let mut i = from;
    let mut digits = 0u32;
    while let Some(&b) = line.get(i) {
        match class(b) {
            DIGIT => digits = digits.saturating_add(1),
            PLAIN => digits = 0,
            // A space between two words, or punctuation before no digit, only ends the run
            // (glued digits never wake anything) and the colons; a word ending like
            // `bearer` before a space is left to the full loop.
            SEPARATOR
                if b == b' '
                    && line.get(i + 1).is_some_and(|&n| class(n) == PLAIN)
                    && !matches!(line.get(i.wrapping_sub(1)), Some(b'r' | b'R' | b'c' | b'C')) =>
            {
                digits = 0;
                *colons = 0;
            }
            OTHER if !next_is_digit(line, i) => {
                digits = 0;
                *colons = 0;
            }
            LOWER_AB => {
                let corsican = line.get(i.wrapping_sub(1)) == Some(&b'2')
                    && (digits == 1 || digits == 6)
                    && line
                        .get(i + 1)
                        .is_some_and(|n| n.is_ascii_digit() || *n == b' ');
                digits = if corsican { digits + 1 } else { 0 };
            }
            _ => break,
        }
        i += 1;
    }
    if digits > 0 {
        *run = Run {
            digits,
            group: digits,
            glued: true,
            ..Run::default()
        };
        return i;
    }
    // The run was settled on entry (see above), so this is its state after any of the
    // bytes skipped.
    *run = Run::default();
    skip_inert(line, i, colons)
}

/// Where the inert bytes from `from` end: lowercase letters other than `x`, and punctuation
/// that is not a separator. Called once a letter or punctuation has ended the run (no
/// digits, no pending separator), where such bytes change nothing but the colon count
/// (punctuation resets it): a Corsican `a`/`b` needs a `2` right before it.
fn skip_inert(line: &[u8], from: usize, colons: &mut u32) -> usize {
    let mut i = from;
    let mut seen = 0;
    while let Some(&b) = line.get(i) {
        let class = class(b);
        if class > LAST_INERT {
            break;
        }
        seen |= 1 << class;
        i += 1;
    }
    if seen & (1 << OTHER) != 0 {
        *colons = 0;
    }
    i
}

/// Where the digits from `from` end.
fn skip_digits(line: &[u8], from: usize) -> usize {
    let rest = line.get(from..).unwrap_or(&[]);
    from + rest
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(rest.len())
}

/// Corsican NIR departments 2A and 2B count as digits.
fn corsican(line: &[u8], i: usize, run: &Run) -> bool {
    line.get(i.wrapping_sub(1)) == Some(&b'2')
        && (run.group == 1 || (run.group == 6 && run.digits == 6))
        && line
            .get(i + 1)
            .is_some_and(|n| n.is_ascii_digit() || *n == b' ')
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

    /// `count` more digits right after a digit: no glue to decide, the run just grows.
    fn more_digits(&mut self, count: usize) {
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        self.digits = self.digits.saturating_add(count);
        self.group = self.group.saturating_add(count);
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
    // `=` and `:` are common (`items=3`, `"trace_id":`, `10:23`): pick the few words with the
    // same last two letters, so most keys are rejected on two bytes.
    let lower = |back: usize| {
        before
            .len()
            .checked_sub(back)
            .and_then(|at| before.get(at))
            .map_or(0, u8::to_ascii_lowercase)
    };
    let words: &[&[u8]] = match [lower(2), lower(1)] {
        [b'o', b'n'] => {
            if ends_with_ignore_case(before, b"authorization") {
                return AUTH;
            }
            return 0;
        }
        [b'e', b'n'] => &[b"token"],
        [b'r', b'd'] => &[b"password"],
        [b'w', b'd'] => &[b"passwd", b"pwd"],
        [b'i', b'd'] => &[b"sessionid", b"session_id", b"session-id"],
        [b's', b'e'] => &[b"passphrase"],
        [b'i', b'e'] => &[b"cookie"],
        [b'e', b't'] => &[b"secret"],
        // Every `…key` word has one of these before its `key`.
        [b'e', b'y']
            if lower(3) == b'k' && matches!(lower(4), b'i' | b'_' | b'-' | b's' | b'e' | b't') =>
        {
            &[
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
            ]
        }
        [b'a', b'l'] => &[b"credential"],
        [b'l', b's'] => &[b"credentials"],
        _ => return 0,
    };
    if words.iter().any(|word| ends_with_ignore_case(before, word)) {
        SECRET
    } else {
        0
    }
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
    let word = line.get(i..i + 4).and_then(|w| <[u8; 4]>::try_from(w).ok());
    match word.as_ref() {
        Some(
            b"AKIA" | b"ASIA" | b"ABIA" | b"ACCA" | b"AGPA" | b"AIDA" | b"AROA" | b"AIPA" | b"ANPA"
            | b"ANVA" | b"APKA" | b"AIza",
        ) => API_KEY,
        _ => 0,
    }
}

fn ends_with_ignore_case(text: &[u8], word: &[u8]) -> bool {
    text.len() >= word.len()
        && text
            .get(text.len() - word.len()..)
            .is_some_and(|tail| tail.eq_ignore_ascii_case(word))
}

#[cfg(test)]
mod reference;
pub(crate) mod sieve;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn clean_application_lines_wake_nothing() {
        for line in [
            "2026-03-05T14:22:31.482Z INFO [exec-7] order 84213 processed in 23ms (items=3)",
            "2026-10-20 01:59:15.623 UTC [28976] LOG:  duration: 0.243 ms  statement: SELECT 1",
            "I, [2026-01-12T15:33:25.978Z #66637]  INFO -- : Completed 200 OK in 45ms",
            "I, [2026-11-17T17:44:17.884Z #25168]  INFO -- : [5233562a-81d2-42b6-5d54-3a993dfa3a28] Completed 200 OK in 155ms (Views: 95.2ms | ActiveRecord: 16.7ms | Allocations: 33611)",
            "2026-10-02T23:22:30.910Z WARN  worker-14 job=09984e97-9935-9b36-9940-8f87385fcabd attempt=1/5 commit=28a64a15ce9562fc814297bccf3bcbb2ea20d69f retry in 49s, queue depth 3534",
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

    /// Lines built from the bytes and words the prefilter cares about, so that random lines
    /// reach its rarer states (Corsican departments, long runs, key prefixes, `::`).
    fn pieces() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            4 => "[0-9]{1,12}",
            3 => "[ .\\-/()+:=@_\\t\"']",
            2 => "[a-z]{1,6}",
            2 => "[A-Z]{1,3}",
            1 => "[0-9a-fA-F:]{1,8}",
            1 => prop::sample::select(vec![
                "2A", "2B", "2a", "2b", "eyJ", "xox", "AKIA", "AIza", "ghp_", "github_pat_",
                "sk_live_", "whsec_", "-----BEGIN ", "://", "::", "Bearer ", "basic\t",
                "Authorization", "password", "Api-Key", "session_id", "credentials", "é", "\u{1F600}",
            ]).prop_map(str::to_owned),
        ];
        prop::collection::vec(piece, 0..24).prop_map(|p| p.concat().into_bytes())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn same_families_as_the_reference(line in pieces()) {
            prop_assert_eq!(families(&line), reference::families(&line));
        }

        #[test]
        fn same_families_as_the_reference_on_any_bytes(line in prop::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(families(&line), reference::families(&line));
        }
    }

    #[test]
    fn same_families_as_the_reference_on_the_corpora() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/generated.txt");
        let corpus = std::fs::read_to_string(root).unwrap();
        let mut lines = 0;
        for line in corpus.lines() {
            assert_eq!(
                families(line.as_bytes()),
                reference::families(line.as_bytes()),
                "{line}"
            );
            lines += 1;
        }
        assert!(lines > 1000);
    }

    fn sieve() -> sieve::Sieve {
        sieve::build().expect("the sieve compiles")
    }

    #[test]
    fn the_sieve_knows_the_prefilters_secret_words() {
        let words: Vec<&[u8]> = sieve::SECRET_WORDS.iter().map(|w| w.as_bytes()).collect();
        assert_eq!(words, reference::SECRET_WORDS.to_vec());
    }

    #[test]
    fn the_sieve_passes_over_clean_application_lines() {
        let sieve = sieve();
        for line in [
            "2026-03-05T14:22:31.482Z INFO [exec-7] order 84213 processed in 23ms (items=3)",
            "2026-10-20 01:59:15.623 UTC [28976] LOG:  duration: 0.243 ms  statement: SELECT 1",
            "I, [2026-11-17T17:44:17.884Z #25168]  INFO -- : [5233562a-81d2-42b6-5d54-3a993dfa3a28] Completed 200 OK in 155ms (Views: 95.2ms | ActiveRecord: 16.7ms | Allocations: 33611)",
            "2026-10-02T23:22:30.910Z WARN  worker-14 job=09984e97-9935-9b36-9940-8f87385fcabd attempt=1/5 commit=28a64a15ce9562fc814297bccf3bcbb2ea20d69f retry in 49s, queue depth 3534",
            "2026-06-21T13:07:02.102Z GET /api/v1/orders/7687?page=15&limit=50 200 253.587 ms - 1467832",
            r#"{"ts":"2026-05-14T00:04:38.961Z","level":"info","msg":"cache hit","key":"product:88373","trace_id":"f80d07382986282c38c72bad3e357558"}"#,
        ] {
            assert!(!sieve.is_match(line.as_bytes()), "{line}");
        }
    }

    #[test]
    fn the_sieve_catches_each_familys_trigger() {
        let sieve = sieve();
        for line in [
            "mail bob@example.com",
            "from 2001:db8::1",
            "tok eyJhbGciOi",
            "key AKIAIOSFODNN7EXAMPLE",
            "Authorization: Bearer x",
            "db_password=x",
            "iban FR76 3000",
            "ip 10.1.2.3",
            "tel 06 12 34 56 78",
            "nir 2 69 05 2A 123 456 78",
            "ssn 123-45-6789:",
        ] {
            assert!(families(line.as_bytes()) != 0, "{line}");
            assert!(sieve.is_match(line.as_bytes()), "{line}");
        }
    }

    #[test]
    fn the_sieve_matches_every_line_of_the_corpora_the_prefilter_flags() {
        let sieve = sieve();
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/generated.txt");
        let corpus = std::fs::read_to_string(root).unwrap();
        for line in corpus.lines() {
            if families(line.as_bytes()) != 0 {
                assert!(sieve.is_match(line.as_bytes()), "{line}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn the_sieve_never_misses_a_flagged_line(line in pieces()) {
            if families(&line) != 0 {
                prop_assert!(SIEVE.is_match(&line), "{:?}", String::from_utf8_lossy(&line));
            }
        }

        #[test]
        fn the_sieve_never_misses_a_flagged_line_of_any_bytes(line in prop::collection::vec(any::<u8>(), 0..64)) {
            if families(&line) != 0 {
                prop_assert!(SIEVE.is_match(&line), "{:?}", String::from_utf8_lossy(&line));
            }
        }
    }

    static SIEVE: std::sync::LazyLock<sieve::Sieve> = std::sync::LazyLock::new(sieve);

    /// The sieve's pattern compiled by regex-automata's own engine, to check the hand walk.
    static SIEVE_REGEX: std::sync::LazyLock<regex_automata::meta::Regex> =
        std::sync::LazyLock::new(|| {
            regex_automata::meta::Regex::builder()
                .syntax(
                    regex_automata::util::syntax::Config::new()
                        .unicode(false)
                        .utf8(false)
                        .multi_line(true),
                )
                .build(&sieve::pattern())
                .unwrap()
        });

    /// Where the first line of `block` that the sieve matches begins, one line at a time.
    fn first_match_line_one_by_one(block: &[u8]) -> Option<usize> {
        let mut start = 0;
        for line in block.split(|&b| b == b'\n') {
            if start >= block.len() {
                break;
            }
            if SIEVE.is_match(line) {
                return Some(start);
            }
            start += line.len() + 1;
        }
        None
    }

    /// Blocks of lines, some empty, with or without a last newline. Clean lines of words are
    /// mixed in, so that the first matching line is often not the first one.
    fn blocks(line: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
        let line = prop_oneof![
            2 => "[a-z ]{0,40}".prop_map(String::into_bytes),
            1 => line,
        ];
        (prop::collection::vec(line, 0..12), any::<bool>()).prop_map(|(lines, newline)| {
            let mut block = lines.join(&b'\n');
            if newline {
                block.push(b'\n');
            }
            block
        })
    }

    #[test]
    fn the_lanes_find_the_first_matching_line_of_the_corpora() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/generated.txt");
        let corpus = std::fs::read(root).unwrap();
        let mut at = 0;
        let mut found = 0;
        while at < corpus.len() {
            let block = &corpus[at..];
            let first = SIEVE.first_match_line(block);
            assert_eq!(first, first_match_line_one_by_one(block));
            let Some(first) = first else { break };
            found += 1;
            let newline = block[first..].iter().position(|&b| b == b'\n');
            at += newline.map_or(block.len(), |n| first + n + 1);
        }
        assert!(found > 100);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5_000))]

        #[test]
        fn the_walk_agrees_with_the_regex_engine(line in pieces()) {
            prop_assert_eq!(SIEVE.is_match(&line), SIEVE_REGEX.is_match(line.as_slice()));
        }

        #[test]
        fn the_walk_agrees_with_the_regex_engine_on_any_bytes(line in prop::collection::vec(any::<u8>(), 0..64)) {
            let line: Vec<u8> = line.into_iter().filter(|&b| b != b'\n').collect();
            prop_assert_eq!(SIEVE.is_match(&line), SIEVE_REGEX.is_match(line.as_slice()));
        }

        #[test]
        fn the_lanes_find_the_first_matching_line(block in blocks(pieces())) {
            prop_assert_eq!(SIEVE.first_match_line(&block), first_match_line_one_by_one(&block));
        }

        #[test]
        fn the_lanes_find_the_first_matching_line_of_any_bytes(
            block in blocks(prop::collection::vec(any::<u8>(), 0..48))
        ) {
            prop_assert_eq!(SIEVE.first_match_line(&block), first_match_line_one_by_one(&block));
        }
    }

    #[test]
    fn every_secret_word_is_grouped_under_its_last_letter() {
        for word in reference::SECRET_WORDS {
            for quote in ["", "\"", "'"] {
                let mut line = b"db.".to_vec();
                line.extend_from_slice(&word.to_ascii_uppercase());
                line.extend_from_slice(quote.as_bytes());
                line.extend_from_slice(b" =");
                let at = line.len() - 1;
                assert_eq!(
                    secret_before(&line, at),
                    SECRET,
                    "{}",
                    String::from_utf8_lossy(&line)
                );
            }
        }
    }
}
