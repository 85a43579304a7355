//! Signed checkpoints of the chain head: exported elsewhere, they reveal a cut-off tail.

use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use crate::Hash;

/// The ed25519 key that signs checkpoints (PKCS#8, kept 0600 in the data directory).
pub struct SigningKey(Ed25519KeyPair);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey([REDACTED])")
    }
}

/// A checkpoint that could not be made, read or verified.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The key file is not an ed25519 PKCS#8 document.
    #[error("the audit signing key is not a valid ed25519 PKCS#8 key")]
    BadKey,
    /// The signature does not verify under the given public key.
    #[error("the checkpoint signature does not verify with this public key")]
    BadSignature,
    /// The checkpoint text is not what `export` writes.
    #[error("the checkpoint is malformed: {0}")]
    Malformed(&'static str),
}

impl SigningKey {
    /// A fresh key, as PKCS#8 bytes to store.
    pub fn generate_pkcs8() -> Result<Vec<u8>, CheckpointError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        Ed25519KeyPair::generate_pkcs8(&rng)
            .map(|doc| doc.as_ref().to_vec())
            .map_err(|_| CheckpointError::BadKey)
    }

    /// Loads a key from PKCS#8 bytes.
    pub fn from_pkcs8(bytes: &[u8]) -> Result<Self, CheckpointError> {
        Ed25519KeyPair::from_pkcs8(bytes)
            .map(Self)
            .map_err(|_| CheckpointError::BadKey)
    }

    /// The public key, hex, for verifiers.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.0.public_key().as_ref())
    }

    /// Signs the head `(seq, hash)` at `time_us`.
    pub fn sign(&self, seq: u64, hash: Hash, time_us: i64) -> Checkpoint {
        let signature = self.0.sign(&message(seq, &hash, time_us)).as_ref().to_vec();
        Checkpoint {
            seq,
            hash,
            time_us,
            signature,
        }
    }
}

/// A signed statement "the chain had `seq` records and its head hash was `hash`".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The head's sequence number.
    pub seq: u64,
    /// The head's hash.
    pub hash: Hash,
    /// When it was signed.
    pub time_us: i64,
    /// ed25519 signature over the canonical message.
    pub signature: Vec<u8>,
}

impl Checkpoint {
    /// Checks the signature with a public key (hex).
    pub fn verify(&self, public_key_hex: &str) -> Result<(), CheckpointError> {
        let key = hex::decode(public_key_hex.trim()).map_err(|_| CheckpointError::BadKey)?;
        UnparsedPublicKey::new(&signature::ED25519, key)
            .verify(
                &message(self.seq, &self.hash, self.time_us),
                &self.signature,
            )
            .map_err(|_| CheckpointError::BadSignature)
    }

    /// One line of text: `rampart-checkpoint v1 SEQ HASH TIME SIGNATURE`.
    pub fn to_line(&self) -> String {
        format!(
            "rampart-checkpoint v1 {} {} {} {}",
            self.seq,
            hex::encode(self.hash),
            self.time_us,
            hex::encode(&self.signature)
        )
    }

    /// Parses what [`Checkpoint::to_line`] writes.
    pub fn parse(line: &str) -> Result<Self, CheckpointError> {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [magic, version, seq, hash, time, sig] = parts.as_slice() else {
            return Err(CheckpointError::Malformed("expected six fields"));
        };
        if *magic != "rampart-checkpoint" || *version != "v1" {
            return Err(CheckpointError::Malformed("not a rampart v1 checkpoint"));
        }
        let mut h = [0u8; 32];
        hex::decode_to_slice(hash, &mut h).map_err(|_| CheckpointError::Malformed("hash"))?;
        Ok(Self {
            seq: seq
                .parse()
                .map_err(|_| CheckpointError::Malformed("sequence"))?,
            hash: h,
            time_us: time
                .parse()
                .map_err(|_| CheckpointError::Malformed("time"))?,
            signature: hex::decode(sig).map_err(|_| CheckpointError::Malformed("signature"))?,
        })
    }
}

fn message(seq: u64, hash: &Hash, time_us: i64) -> Vec<u8> {
    let mut m = b"rampart-audit-checkpoint-v1\0".to_vec();
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(hash);
    m.extend_from_slice(&time_us.to_be_bytes());
    m
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_checkpoint_round_trips_and_verifies() {
        let key = SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().unwrap()).unwrap();
        let cp = key.sign(42, [7u8; 32], 1234);
        let parsed = Checkpoint::parse(&cp.to_line()).unwrap();
        assert_eq!(parsed, cp);
        parsed.verify(&key.public_key_hex()).unwrap();
    }

    #[test]
    fn a_changed_checkpoint_fails_verification() {
        let key = SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().unwrap()).unwrap();
        let mut cp = key.sign(42, [7u8; 32], 1234);
        cp.seq = 41;
        assert!(matches!(
            cp.verify(&key.public_key_hex()),
            Err(CheckpointError::BadSignature)
        ));
    }
}
