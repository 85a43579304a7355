//! The `[scrub]` section of `rampart.toml`, the pseudonym key, and what can be wrong with them.

use rampart_core::Secret;
use serde::Deserialize;

/// Scrubber settings, embedded by the binary as the `[scrub]` section of `rampart.toml`.
/// Every field has a default, so an empty section is a working configuration.
///
/// ```toml
/// [scrub]
/// mode = "pseudonym"
/// personal_fields = ["customer_ref", "shipping"]
/// patterns = [{ name = "member_id", regex = "MBR-[0-9]{8}" }]
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScrubConfig {
    /// What replaces a finding: a type tag (`[EMAIL]`, the default) or a keyed pseudonym
    /// (`[EMAIL:3f9a1c0d]`), which needs a [`PseudonymKey`].
    pub mode: ReplacementMode,
    /// JSON field names, beyond the built-in list (`email`, `phone`, `name`, `address`, `ip`,
    /// `user_agent`, …), whose values are personal data and are replaced whole. Matched without
    /// regard to case, `_` or `-`, so `firstName` also matches `first_name`.
    pub personal_fields: Vec<String>,
    /// Extra patterns to redact, each with a name that becomes its tag and counter.
    pub patterns: Vec<CustomPattern>,
}

/// How a finding is replaced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplacementMode {
    /// `[EMAIL]`: nothing about the value survives.
    #[default]
    Tag,
    /// `[EMAIL:3f9a1c0d]`: the first 32 bits of HMAC-SHA-256 of the value under a secret key,
    /// so one person can be followed across lines without being identified. Never a plain
    /// hash: without the key, a hash of an email or a card number is easily reversed.
    Pseudonym,
}

/// A user-supplied pattern.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomPattern {
    /// `[a-z0-9_]`, 1 to 32 characters; upper-cased it is the tag (`member_id` → `[MEMBER_ID]`).
    pub name: String,
    /// A regular expression in the syntax of the `regex` crate. It must not match the empty
    /// string and must not span lines.
    pub regex: String,
}

/// The secret key of pseudonym mode: at least 16 bytes, given as hex.
#[derive(Debug, Clone)]
pub struct PseudonymKey(Secret<Vec<u8>>);

/// Shortest accepted key, in bytes: below this a key can be guessed.
pub const MIN_KEY_BYTES: usize = 16;

impl PseudonymKey {
    /// Parses a hex key (surrounding whitespace is ignored).
    pub fn from_hex(hex_key: &str) -> Result<Self, KeyError> {
        let bytes = hex::decode(hex_key.trim()).map_err(|_| KeyError::NotHex)?;
        Self::from_bytes(bytes)
    }

    /// Takes raw key bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, KeyError> {
        if bytes.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort { bytes: bytes.len() });
        }
        Ok(Self(Secret::new(bytes)))
    }

    pub(crate) fn expose(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

/// A pseudonym key that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The text is not an even number of hex digits.
    #[error("the pseudonym key is not hex")]
    NotHex,
    /// The key is shorter than [`MIN_KEY_BYTES`].
    #[error("the pseudonym key has {bytes} bytes, it needs at least {MIN_KEY_BYTES}")]
    TooShort {
        /// Length of the rejected key.
        bytes: usize,
    },
}

/// A configuration from which no scrubber can be built. The messages name the bad setting
/// but never echo a key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Pseudonym mode was chosen without a key.
    #[error("scrub mode \"pseudonym\" needs a key (hex, at least {MIN_KEY_BYTES} bytes)")]
    MissingKey,
    /// A custom pattern name is not `[a-z0-9_]{1,32}` or repeats another.
    #[error("scrub pattern name {0:?} must be 1 to 32 of a-z, 0-9, '_' and unique")]
    BadPatternName(String),
    /// A custom pattern name takes a built-in detector's name.
    #[error("scrub pattern name {0:?} is the name of a built-in detector")]
    ReservedPatternName(String),
    /// A custom regex does not compile or is too large.
    #[error("scrub pattern {name:?} is not a valid regex: {reason}")]
    BadPattern {
        /// The pattern's name.
        name: String,
        /// What the regex compiler said.
        reason: String,
    },
    /// More custom patterns than [`MAX_CUSTOM_PATTERNS`](crate::MAX_CUSTOM_PATTERNS).
    #[error("{0} scrub patterns configured, at most {max} are allowed", max = crate::MAX_CUSTOM_PATTERNS)]
    TooManyPatterns(usize),
    /// A custom regex matches the empty string, which would redact between every character.
    #[error("scrub pattern {0:?} can match the empty string")]
    EmptyMatch(String),
    /// A personal field name is empty once normalised.
    #[error("scrub personal field name {0:?} is empty")]
    BadFieldName(String),
    /// The built-in patterns failed to compile: a bug in rampart, not in the configuration.
    #[error("internal error: built-in scrub patterns do not compile: {0}")]
    BuiltIn(String),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn empty_section_is_tag_mode_with_no_extras() {
        let config: ScrubConfig = toml::from_str("").unwrap();
        assert_eq!(config, ScrubConfig::default());
        assert_eq!(config.mode, ReplacementMode::Tag);
    }

    #[test]
    fn full_section_parses() {
        let config: ScrubConfig = toml::from_str(
            r#"
            mode = "pseudonym"
            personal_fields = ["customer_ref"]
            patterns = [{ name = "member_id", regex = "MBR-[0-9]{8}" }]
            "#,
        )
        .unwrap();
        assert_eq!(config.mode, ReplacementMode::Pseudonym);
        assert_eq!(config.personal_fields, vec!["customer_ref".to_owned()]);
        assert_eq!(config.patterns.first().unwrap().name, "member_id");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(toml::from_str::<ScrubConfig>("mdoe = \"tag\"").is_err());
        assert!(
            toml::from_str::<ScrubConfig>("patterns = [{ name = \"a\", regex = \"b\", x = 1 }]")
                .is_err()
        );
    }

    #[test]
    fn short_or_non_hex_keys_are_rejected() {
        assert_eq!(PseudonymKey::from_hex("zz").unwrap_err(), KeyError::NotHex);
        assert_eq!(
            PseudonymKey::from_hex("00112233").unwrap_err(),
            KeyError::TooShort { bytes: 4 }
        );
        assert!(PseudonymKey::from_hex(" 000102030405060708090a0b0c0d0e0f\n").is_ok());
    }

    #[test]
    fn key_never_appears_in_debug_output() {
        let key = PseudonymKey::from_hex("a1a2a3a4a5a6a7a8a9aaabacadaeafb0").unwrap();
        assert!(!format!("{key:?}").contains("a1a2"));
    }
}
