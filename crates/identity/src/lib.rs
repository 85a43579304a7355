//! Personal accounts and how they prove who they are (ACC-1, ACC-2).
//!
//! Accounts are people, third parties, or service accounts owned by a person. A login is a
//! sequence of states: a password check ([`password`]), then a second factor ([`totp`] or a
//! recovery code), then a [`session`]. Throttling ([`throttle`]) keys off failed credential
//! checks, kept apart from whether the login may proceed.
//!
//! Invariants: secrets are never stored in the clear (Argon2id for passwords, SHA-256 for
//! high-entropy random tokens); every comparison of a secret is constant time; no I/O here:
//! the store persists what these functions decide, and time is always passed in.

pub mod account;
pub mod password;
pub mod policy;
pub mod scram;
pub mod sealed;
pub mod session;
pub mod throttle;
pub mod totp;

pub use account::{AccountKind, BadAccountField, Email, Username};

/// 32 random bytes from the operating system's generator, hex-encoded (256 bits).
pub fn random_token() -> Result<String, RandomError> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| RandomError)?;
    Ok(hex::encode(bytes))
}

/// SHA-256 of a token, hex: what is stored for session ids, enrollment links and recovery
/// codes (high-entropy values need no slow hash).
pub fn token_hash(token: &str) -> String {
    rampart_core::hex(&token_digest(token))
}

/// The SHA-256 of a token: [`token_hash`] before it is written as hex (a cache key).
pub fn token_digest(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

/// The system's random generator failed.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the system random number generator failed")]
pub struct RandomError;
