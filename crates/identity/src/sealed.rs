//! Secrets at rest (ENC-1): AES-256-GCM under the master key, a fresh nonce per value.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use rampart_core::Secret;

/// The 32-byte master key kept 0600 in the data directory.
pub struct MasterKey(LessSafeKey);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([REDACTED])")
    }
}

/// A sealed value could not be made or opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The key is not 32 bytes.
    #[error("the master key must be 32 bytes")]
    BadKey,
    /// The sealed text was changed, is malformed, or was sealed under another key.
    #[error("a sealed secret does not open with this master key")]
    Open,
    /// The random generator failed.
    #[error("the random generator failed")]
    Random,
}

impl MasterKey {
    /// 32 fresh random bytes to store as a new key.
    pub fn generate() -> Result<Secret<Vec<u8>>, SealError> {
        let mut key = vec![0u8; 32];
        aws_lc_rs::rand::fill(&mut key).map_err(|_| SealError::Random)?;
        Ok(Secret::new(key))
    }

    /// Loads a key from its bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| SealError::BadKey)?;
        Ok(Self(LessSafeKey::new(key)))
    }

    /// Seals `plain`, bound to `context` (e.g. `totp:alice`) so a sealed value cannot be
    /// moved to another row. Output: `v1.` + hex(nonce ‖ ciphertext ‖ tag).
    pub fn seal(&self, context: &str, plain: &[u8]) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| SealError::Random)?;
        let mut data = plain.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut data,
            )
            .map_err(|_| SealError::Open)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(format!("v1.{}", hex::encode(out)))
    }

    /// Opens what [`MasterKey::seal`] made with the same context.
    pub fn open(&self, context: &str, sealed: &str) -> Result<Secret<Vec<u8>>, SealError> {
        let raw = sealed
            .strip_prefix("v1.")
            .and_then(|h| hex::decode(h).ok())
            .ok_or(SealError::Open)?;
        if raw.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, body) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut body = body.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut body)
            .map_err(|_| SealError::Open)?;
        Ok(Secret::new(plain.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sealed_values_open_only_in_their_context_and_under_their_key() {
        let key = MasterKey::from_bytes(MasterKey::generate().unwrap().expose_secret()).unwrap();
        let sealed = key.seal("totp:alice", b"JBSWY3DPEHPK3PXP").unwrap();
        assert!(!sealed.contains("JBSWY3DP"));
        assert_eq!(
            key.open("totp:alice", &sealed).unwrap().expose_secret(),
            b"JBSWY3DPEHPK3PXP"
        );
        assert_eq!(
            key.open("totp:bob", &sealed).map(|_| ()),
            Err(SealError::Open)
        );
        let other = MasterKey::from_bytes(MasterKey::generate().unwrap().expose_secret()).unwrap();
        assert_eq!(
            other.open("totp:alice", &sealed).map(|_| ()),
            Err(SealError::Open)
        );
        assert_eq!(
            key.open("totp:alice", "v1.00").map(|_| ()),
            Err(SealError::Open)
        );
    }
}
