//! The shared vocabulary of rampart.
//!
//! Everything here is small and dependency-light so that every other crate can use it:
//! the control ids of the security page ([`ControlId`]), the redacted [`Secret`] wrapper,
//! the [`Clock`] that decisions take time from, and [`Fault`], which records whose fault an
//! error was.
//!
//! Invariants: no I/O, no async runtime, no database; a `Secret` never prints its contents
//! and cannot be serialized.

mod bounded;
mod control;
mod secret;

pub use bounded::{Bounded, OutOfRange};
pub use control::{ControlId, ControlSection};
pub use secret::Secret;

use jiff::Timestamp;

/// Where time comes from. Decisions never call `now()` themselves: they take a timestamp,
/// and the code that calls them reads it from a `Clock`.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// Whose fault an error was: decides what a client may be told and how loudly we log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// The client sent something wrong; it may be told so in general terms.
    Client,
    /// A peer rampart depends on (database, upstream server) failed.
    Upstream,
    /// rampart itself failed; the client gets no detail.
    Internal,
}

/// Environments of the security page (NET-1). Free-form names are allowed beyond the
/// three the page names, but they are always lower-case and non-empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Environment(String);

/// An environment name that is empty, too long or not `[a-z0-9-]`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("an environment name is 1 to 32 characters of a-z, 0-9 and '-', got {0:?}")]
pub struct BadEnvironment(pub String);

impl Environment {
    /// Parses an environment name, lower-casing it.
    pub fn parse(raw: &str) -> Result<Self, BadEnvironment> {
        let name = raw.trim().to_ascii_lowercase();
        let ok = !name.is_empty()
            && name.len() <= 32
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(name))
        } else {
            Err(BadEnvironment(raw.to_owned()))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Environment {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Environment::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Lowercase hexadecimal, two digits per byte, as `hex::encode` writes it, without that
/// crate's character-by-character iterator: this runs for every request's token and twice
/// for every audit record (its hash and the previous one), thousands of times a second.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 0x0f), 16).unwrap_or('0'));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_names_are_normalized_and_checked() {
        assert_eq!(
            Environment::parse("Production").map(|e| e.0),
            Ok("production".into())
        );
        assert!(Environment::parse("").is_err());
        assert!(Environment::parse("prod env").is_err());
        assert!(Environment::parse(&"x".repeat(33)).is_err());
    }

    #[test]
    fn hex_writes_two_lowercase_digits_per_byte() {
        let all: Vec<u8> = (0..=255).collect();
        let expected: String = all.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex(&all), expected);
        assert_eq!(hex(&[]), "");
        assert_eq!(hex(&[0x0a, 0xf0]), "0af0");
    }
}
