//! Argon2id password hashing and the strength policy.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rampart_core::Secret;

/// The shortest password accepted.
pub const MIN_LENGTH: usize = 12;

/// Argon2id cost. [`Cost::OWASP`] is the default; tests may use [`Cost::dangerous_fast`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    memory_kib: u32,
    iterations: u32,
}

impl Cost {
    /// OWASP's recommendation for Argon2id: 19 MiB, 2 iterations, 1 lane.
    pub const OWASP: Cost = Cost {
        memory_kib: 19 * 1024,
        iterations: 2,
    };

    /// A cheap cost for tests only: never use it in production.
    pub fn dangerous_fast() -> Cost {
        Cost {
            memory_kib: 64,
            iterations: 1,
        }
    }
}

/// Why a password or a hash was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Fewer than [`MIN_LENGTH`] characters.
    #[error("a password needs at least {MIN_LENGTH} characters")]
    TooShort,
    /// Long enough but easy to guess.
    #[error("this password is too easy to guess{0}")]
    Weak(String),
    /// More than 1,024 bytes: refused before hashing so nobody can make us burn CPU.
    #[error("a password is at most 1024 bytes")]
    TooLong,
    /// Hashing failed.
    #[error("the password could not be hashed")]
    Hash,
}

/// Checks length and guessability (zxcvbn score ≥ 3); `context` holds words the password
/// must not be built from (user name, email).
pub fn check_strength(password: &Secret<String>, context: &[&str]) -> Result<(), PasswordError> {
    let pw = password.expose_secret();
    if pw.len() > 1024 {
        return Err(PasswordError::TooLong);
    }
    if pw.chars().count() < MIN_LENGTH {
        return Err(PasswordError::TooShort);
    }
    let estimate = zxcvbn::zxcvbn(pw, context);
    if u8::from(estimate.score()) < 3 {
        let hint = estimate
            .feedback()
            .and_then(|f| f.warning())
            .map(|w| format!(": {w}"))
            .unwrap_or_default();
        return Err(PasswordError::Weak(hint));
    }
    Ok(())
}

/// Hashes a password with Argon2id and a random salt, as a PHC string.
pub fn hash(password: &Secret<String>, cost: Cost) -> Result<String, PasswordError> {
    if password.expose_secret().len() > 1024 {
        return Err(PasswordError::TooLong);
    }
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| PasswordError::Hash)?;
    let salt = SaltString::encode_b64(&salt).map_err(|_| PasswordError::Hash)?;
    hasher(cost)?
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| PasswordError::Hash)
}

/// Whether `password` matches the PHC string `stored`. The comparison inside argon2 is
/// constant time; a malformed stored hash is a mismatch.
pub fn verify(password: &Secret<String>, stored: &str) -> bool {
    if password.expose_secret().len() > 1024 {
        return false;
    }
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.expose_secret().as_bytes(), &parsed)
        .is_ok()
}

/// A hash of a random password at the given cost. Checking a login for an unknown user
/// against it costs the same time as a real check, so timing does not tell which user
/// names exist.
pub fn decoy_hash(cost: Cost) -> Result<String, PasswordError> {
    let token = crate::random_token().map_err(|_| PasswordError::Hash)?;
    hash(&Secret::new(token), cost)
}

fn hasher(cost: Cost) -> Result<Argon2<'static>, PasswordError> {
    let params =
        Params::new(cost.memory_kib, cost.iterations, 1, None).map_err(|_| PasswordError::Hash)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn s(x: &str) -> Secret<String> {
        Secret::new(x.to_owned())
    }

    #[test]
    fn a_hashed_password_verifies_and_a_wrong_one_does_not() {
        let stored = hash(&s("correct horse battery staple"), Cost::dangerous_fast()).unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify(&s("correct horse battery staple"), &stored));
        assert!(!verify(&s("correct horse battery stapler"), &stored));
        assert!(!verify(&s("x"), "not-a-phc-string"));
    }

    #[test]
    fn the_default_cost_is_owasps() {
        let stored = hash(&s("correct horse battery staple"), Cost::OWASP).unwrap();
        assert!(stored.contains("m=19456,t=2,p=1"), "{stored}");
    }

    #[test]
    fn short_and_guessable_passwords_are_refused() {
        assert_eq!(
            check_strength(&s("Tr0ub4dor&3"), &[]),
            Err(PasswordError::TooShort)
        );
        assert!(matches!(
            check_strength(&s("password1234"), &[]),
            Err(PasswordError::Weak(_))
        ));
        assert!(matches!(
            check_strength(&s("alice@example.com"), &["alice", "alice@example.com"]),
            Err(PasswordError::Weak(_))
        ));
        assert_eq!(
            check_strength(&s("vivid-otter-canyon-42-lamp"), &[]),
            Ok(())
        );
    }
}
