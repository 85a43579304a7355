//! What the scrubber can find, and how many of each it removed.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// A kind of personal data or secret. Its [`tag`](Detector::tag) is what replaces a finding in
/// tag mode, and its [`name`](Detector::name) is the key of the counters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Detector {
    /// An email address, including plus-addressing and internationalised domains.
    Email,
    /// A payment card number that passes Luhn and a known issuer prefix.
    Card,
    /// An IBAN whose mod-97 check holds.
    Iban,
    /// A phone number: E.164 (with `+`, or with `00` for the countries below), or a national
    /// format of US, UK, FR, DE, ES, IT, NL or BE.
    Phone,
    /// An IPv4 or IPv6 address (loopback and unspecified addresses are kept).
    Ip,
    /// A US Social Security number.
    Ssn,
    /// A UK National Insurance number.
    Nino,
    /// A French NIR (social security number) whose key checks.
    Nir,
    /// A JSON Web Token.
    Jwt,
    /// The credential of an `Authorization: Bearer|Basic …` value.
    AuthHeader,
    /// The `user:password` part of a URL.
    UrlCredentials,
    /// The value of a `password=`, `secret:`, `token=`-style pair.
    SecretValue,
    /// A well-known API key shape (AWS, GitHub, Stripe, Slack, Google).
    ApiKey,
    /// A PEM private key block.
    PrivateKey,
    /// The whole value of a JSON field whose name says it holds personal data.
    PersonalField,
    /// A pattern from the configuration, by its name.
    Custom(Arc<str>),
    /// A text withheld whole because its redactions did not settle (see
    /// [`crate::MAX_PASSES`]); not a detector one can turn off.
    Withheld,
}

impl Detector {
    /// Every built-in detector, in a stable order.
    pub const BUILT_IN: [Detector; 15] = [
        Detector::Email,
        Detector::Card,
        Detector::Iban,
        Detector::Phone,
        Detector::Ip,
        Detector::Ssn,
        Detector::Nino,
        Detector::Nir,
        Detector::Jwt,
        Detector::AuthHeader,
        Detector::UrlCredentials,
        Detector::SecretValue,
        Detector::ApiKey,
        Detector::PrivateKey,
        Detector::PersonalField,
    ];

    /// The counter name: lower-case, stable, used in reports.
    pub fn name(&self) -> &str {
        match self {
            Detector::Email => "email",
            Detector::Card => "card",
            Detector::Iban => "iban",
            Detector::Phone => "phone",
            Detector::Ip => "ip",
            Detector::Ssn => "ssn",
            Detector::Nino => "nino",
            Detector::Nir => "nir",
            Detector::Jwt => "jwt",
            Detector::AuthHeader => "auth_header",
            Detector::UrlCredentials => "url_credentials",
            Detector::SecretValue => "secret_value",
            Detector::ApiKey => "api_key",
            Detector::PrivateKey => "private_key",
            Detector::PersonalField => "personal_field",
            Detector::Withheld => "withheld",
            Detector::Custom(name) => name,
        }
    }

    /// The upper-case word inside the replacement, as in `[EMAIL]`.
    pub fn tag(&self) -> String {
        match self {
            Detector::Custom(name) => name.to_ascii_uppercase(),
            Detector::AuthHeader | Detector::SecretValue => "SECRET".to_owned(),
            Detector::UrlCredentials => "CREDENTIALS".to_owned(),
            other => other.name().to_ascii_uppercase(),
        }
    }
}

impl fmt::Display for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How many findings each detector replaced. Only touched when something is found, so the
/// clean-line path never allocates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts(BTreeMap<Detector, u64>);

impl Counts {
    /// No findings yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Findings of one detector.
    pub fn of(&self, detector: &Detector) -> u64 {
        self.0.get(detector).copied().unwrap_or(0)
    }

    /// Findings of every detector together.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Each detector that found something, with its count, in a stable order.
    pub fn iter(&self) -> impl Iterator<Item = (&Detector, u64)> {
        self.0.iter().map(|(d, n)| (d, *n))
    }

    /// Adds another set of counts to this one.
    pub fn merge(&mut self, other: &Counts) {
        for (detector, n) in other.iter() {
            self.add(detector, n);
        }
    }

    pub(crate) fn add(&mut self, detector: &Detector, n: u64) {
        if let Some(count) = self.0.get_mut(detector) {
            *count = count.saturating_add(n);
        } else {
            self.0.insert(detector.clone(), n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_merge_adds_per_detector() {
        let mut a = Counts::new();
        a.add(&Detector::Email, 2);
        let mut b = Counts::new();
        b.add(&Detector::Email, 1);
        b.add(&Detector::Card, 3);
        a.merge(&b);
        assert_eq!(a.of(&Detector::Email), 3);
        assert_eq!(a.of(&Detector::Card), 3);
        assert_eq!(a.of(&Detector::Ip), 0);
        assert_eq!(a.total(), 6);
    }

    #[test]
    fn tags_are_upper_case_words_that_no_detector_matches() {
        for detector in Detector::BUILT_IN {
            let tag = detector.tag();
            assert!(!tag.is_empty());
            assert!(tag.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'));
        }
    }
}
