//! Validators: a regex only proposes a candidate; a validator decides whether it is real
//! (check digits, ranges, context) and which part of it to replace.
//!
//! Every validator takes the whole haystack and the candidate's span, so it can look at the
//! characters around it (a card number glued to a UUID is not a card number), and returns
//! byte offsets that are always inside the candidate and on character boundaries.

mod net;
mod number;
mod secret;

use std::ops::Range;

/// How a rule's candidates are confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// An existing replacement token: kept as is.
    Token,
    /// Accepted as matched.
    Plain,
    /// Accepted if not glued to a longer word.
    Word,
    Email,
    Card,
    Iban,
    Nir,
    Ssn,
    Nino,
    Ipv4,
    Ipv6,
    Jwt,
    UrlCredentials,
    AuthHeader,
    BareAuth,
    SecretPair,
    PhoneInternational,
    PhoneZeroZero,
    PhoneUs,
    PhoneTrunk,
    PhoneNoTrunk,
    /// A user-supplied pattern: accepted unless it matched nothing.
    Custom,
}

/// What to do with a candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not personal data: look for another candidate one character further.
    Reject,
    /// Already a replacement: copy it and continue after it.
    Keep(usize),
    /// Replace this byte range (inside the candidate).
    Redact(Range<usize>),
}

impl Verdict {
    /// The end of the text this verdict consumes, to compare overlapping candidates.
    pub(crate) fn end(&self) -> Option<usize> {
        match self {
            Verdict::Reject => None,
            Verdict::Keep(end) => Some(*end),
            Verdict::Redact(range) => Some(range.end),
        }
    }
}

/// Confirms the candidate `hay[start..end]`.
pub(crate) fn confirm(check: Check, hay: &str, start: usize, end: usize) -> Verdict {
    let Some(candidate) = hay.get(start..end) else {
        return Verdict::Reject;
    };
    if candidate.is_empty() {
        return Verdict::Reject;
    }
    let around = Around { hay, start, end };
    let found: Option<Range<usize>> = match check {
        Check::Token => return Verdict::Keep(end),
        Check::Plain | Check::Custom => Some(0..candidate.len()),
        Check::Word => around.is_word().then_some(0..candidate.len()),
        Check::Email => net::email(candidate, around),
        Check::Ipv4 => net::ipv4(candidate, around),
        Check::Ipv6 => net::ipv6(candidate, around),
        Check::Card => number::card(candidate, around),
        Check::Iban => number::iban(candidate, around),
        Check::Nir => number::nir(candidate, around),
        Check::Ssn => number::ssn(candidate, around),
        Check::Nino => number::nino(candidate, around).filter(|_| around.is_word()),
        Check::PhoneInternational => number::phone_international(candidate, around),
        Check::PhoneZeroZero => number::phone_zero_zero(candidate, around),
        Check::PhoneUs => number::phone_us(candidate, around),
        Check::PhoneTrunk => number::phone_trunk(candidate, around),
        Check::PhoneNoTrunk => number::phone_no_trunk(candidate, around),
        Check::Jwt => secret::jwt(candidate, around),
        Check::UrlCredentials => secret::url_credentials(candidate),
        Check::AuthHeader => secret::auth_header(candidate),
        Check::BareAuth => secret::bare_auth(candidate, around),
        Check::SecretPair => secret::secret_pair(candidate),
    };
    match found {
        Some(range) if range.start < range.end && range.end <= candidate.len() => {
            Verdict::Redact(start + range.start..start + range.end)
        }
        _ => Verdict::Reject,
    }
}

/// The context of a candidate, for boundary rules.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Around<'h> {
    hay: &'h str,
    start: usize,
    end: usize,
}

impl<'h> Around<'h> {
    /// The character just before the candidate.
    pub(crate) fn before(&self) -> Option<char> {
        self.hay.get(..self.start)?.chars().next_back()
    }

    /// The two characters before the candidate, nearest first.
    pub(crate) fn before2(&self) -> (Option<char>, Option<char>) {
        let mut it = self
            .hay
            .get(..self.start)
            .map(|s| s.chars().rev())
            .into_iter()
            .flatten();
        (it.next(), it.next())
    }

    /// The text before the candidate.
    pub(crate) fn prefix(&self) -> &'h str {
        self.hay.get(..self.start).unwrap_or("")
    }

    /// The character just after the candidate, or after `len` bytes of it when the
    /// validator keeps only a prefix.
    pub(crate) fn after_len(&self, len: usize) -> Option<char> {
        self.hay.get(self.start + len..)?.chars().next()
    }

    /// The two characters after the first `len` bytes of the candidate.
    pub(crate) fn after2_len(&self, len: usize) -> (Option<char>, Option<char>) {
        let mut it = self
            .hay
            .get(self.start + len..)
            .map(|s| s.chars())
            .into_iter()
            .flatten();
        (it.next(), it.next())
    }

    /// The character just after the candidate.
    pub(crate) fn after(&self) -> Option<char> {
        self.after_len(self.end - self.start)
    }

    /// Neither end is glued to a letter, digit or `_`.
    pub(crate) fn is_word(&self) -> bool {
        !self.before().is_some_and(glues_before) && !self.after().is_some_and(glues_after)
    }
}

/// A character a finding may not follow: one that continues an identifier, or the `]` that
/// ends a replacement (so that `x@y.io+33…`, whose phone was glued to a word, is not found
/// once the email before it has become `[EMAIL]`: scrubbing stays idempotent).
pub(crate) fn glues_before(c: char) -> bool {
    is_word_char(c) || c == ']'
}

/// A character a finding may not precede: one that continues an identifier, or the `[`
/// that starts a replacement.
pub(crate) fn glues_after(c: char) -> bool {
    is_word_char(c) || c == '['
}

/// A character that continues an identifier.
pub(crate) fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(check: Check, text: &str) -> Verdict {
        confirm(check, text, 0, text.len())
    }

    #[test]
    fn empty_candidate_is_rejected() {
        assert_eq!(confirm(Check::Plain, "abc", 1, 1), Verdict::Reject);
    }

    #[test]
    fn out_of_bounds_candidate_is_rejected() {
        assert_eq!(confirm(Check::Plain, "abc", 1, 9), Verdict::Reject);
    }

    #[test]
    fn token_is_kept_whole() {
        assert_eq!(verdict(Check::Token, "[EMAIL]"), Verdict::Keep(7));
    }

    #[test]
    fn word_rule_rejects_a_key_inside_a_longer_word() {
        let hay = "xAKIAIOSFODNN7EXAMPLE";
        assert_eq!(confirm(Check::Word, hay, 1, hay.len()), Verdict::Reject);
        assert_eq!(
            confirm(Check::Word, " AKIAIOSFODNN7EXAMPLE", 1, 21),
            Verdict::Redact(1..21)
        );
    }
}
