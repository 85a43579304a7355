//! Account kinds and the parsed names that make accounts personal.

use serde::{Deserialize, Serialize};

/// Who an account belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    /// An employee.
    Person,
    /// Someone from another company (EXT-1).
    ThirdParty,
    /// A program; always owned by a person.
    Service,
}

impl AccountKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Person => "person",
            Self::ThirdParty => "third_party",
            Self::Service => "service",
        }
    }

    /// Parses a stored or typed name.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "person" => Some(Self::Person),
            "third_party" | "third-party" => Some(Self::ThirdParty),
            "service" => Some(Self::Service),
            _ => None,
        }
    }

    /// Whether MFA applies to this kind under a `required` policy. Service accounts use
    /// tokens held by their owner instead.
    pub fn needs_mfa(self) -> bool {
        !matches!(self, Self::Service)
    }
}

/// A field of an account that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadAccountField {
    /// The user name.
    #[error(
        "a user name is 2 to 32 characters of a-z, 0-9, '.', '_' and '-', starting with a letter; got {0:?}"
    )]
    Username(String),
    /// The email address.
    #[error("{0:?} is not an email address")]
    Email(String),
}

/// A unique login name: lower-case, safe in SSH user names (`alice:web-1`) and URLs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Username(String);

impl Username {
    /// Parses and lower-cases a user name.
    pub fn parse(raw: &str) -> Result<Self, BadAccountField> {
        let name = raw.trim().to_ascii_lowercase();
        let mut chars = name.chars();
        let ok = (2..=32).contains(&name.len())
            && chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
            });
        if ok {
            Ok(Self(name))
        } else {
            Err(BadAccountField::Username(raw.to_owned()))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Username {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address, compared case-insensitively: the stored key is lower-case, so
/// `Alice@Example.com` and `alice@example.com` cannot be two accounts (ACC-1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Email(String);

impl Email {
    /// Parses an address: one `@`, a non-empty local part, a dotted domain, no spaces or
    /// control characters, at most 254 bytes.
    pub fn parse(raw: &str) -> Result<Self, BadAccountField> {
        let addr = raw.trim();
        let bad = || BadAccountField::Email(raw.to_owned());
        if addr.len() > 254 || addr.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = addr.split_once('@').ok_or_else(bad)?;
        let domain_ok = domain.contains('.')
            && !domain.contains('@')
            && domain
                .split('.')
                .all(|label| !label.is_empty() && label.len() <= 63);
        if local.is_empty() || local.len() > 64 || !domain_ok {
            return Err(bad());
        }
        Ok(Self(addr.to_lowercase()))
    }

    /// The normalized address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_differing_only_in_case_are_the_same_account() {
        assert_eq!(
            Email::parse("Alice@Example.COM"),
            Email::parse("alice@example.com")
        );
    }

    #[test]
    fn malformed_emails_are_rejected() {
        for bad in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "a b@example.com",
            "a@b",
            "a@@b.c",
            "a@b..c",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn usernames_are_lower_case_and_shell_safe() {
        assert_eq!(Username::parse("Alice").map(|u| u.0), Ok("alice".into()));
        for bad in [
            "a",
            "1alice",
            "al ice",
            "alice:web",
            "alice#db",
            "alice@x",
            &"a".repeat(33),
        ] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
    }
}
