//! SCRAM-SHA-256 verifiers (RFC 5802, RFC 7677) for secrets that clients prove without
//! sending them, such as database tokens through the PostgreSQL gateway. Pure: the caller
//! stores the verifier and runs the exchange.

use aws_lc_rs::{digest, hmac, pbkdf2};

/// PBKDF2 iterations, as PostgreSQL uses by default.
pub const ITERATIONS: u32 = 4096;

/// What the server keeps: `StoredKey = H(ClientKey)` and `ServerKey`; never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    /// `H(HMAC(SaltedPassword, "Client Key"))`.
    pub stored_key: [u8; 32],
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: [u8; 32],
}

/// The verifier of `secret` with `salt` and [`ITERATIONS`]. `secret` is used as bytes
/// (SASLprep is the identity on the ASCII tokens rampart makes).
pub fn verifier(secret: &[u8], salt: &[u8]) -> Verifier {
    let mut salted = [0u8; 32];
    let iterations = std::num::NonZeroU32::new(ITERATIONS).unwrap_or(std::num::NonZeroU32::MIN);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        secret,
        &mut salted,
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, &salted);
    let client_key = hmac::sign(&key, b"Client Key");
    let server_key = hmac::sign(&key, b"Server Key");
    Verifier {
        stored_key: sha256(client_key.as_ref()),
        server_key: to32(server_key.as_ref()),
    }
}

/// The salt of a database token's verifier: the same for every token of one account and
/// target, so the gateway can name it before it knows which token the client holds (the
/// tokens are 256-bit random values: a shared salt gives no dictionary a foothold).
pub fn db_token_salt(account: &str, target: &str) -> [u8; 16] {
    let digest = sha256(format!("rampart-db-token:{account}#{target}").as_bytes());
    let mut salt = [0u8; 16];
    for (o, b) in salt.iter_mut().zip(digest) {
        *o = b;
    }
    salt
}

impl Verifier {
    /// Checks a client's proof over `auth_message` (constant time on the key comparison).
    pub fn accepts(&self, auth_message: &[u8], proof: &[u8]) -> bool {
        if proof.len() != 32 {
            return false;
        }
        let signature = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &self.stored_key),
            auth_message,
        );
        let client_key: Vec<u8> = proof
            .iter()
            .zip(signature.as_ref())
            .map(|(p, s)| p ^ s)
            .collect();
        let candidate = sha256(&client_key);
        bool::from(subtle::ConstantTimeEq::ct_eq(
            &candidate[..],
            &self.stored_key[..],
        ))
    }

    /// The server's signature over `auth_message`, proving it knew the verifier.
    pub fn server_signature(&self, auth_message: &[u8]) -> [u8; 32] {
        to32(
            hmac::sign(
                &hmac::Key::new(hmac::HMAC_SHA256, &self.server_key),
                auth_message,
            )
            .as_ref(),
        )
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    to32(digest::digest(&digest::SHA256, bytes).as_ref())
}

fn to32(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (o, b) in out.iter_mut().zip(bytes) {
        *o = *b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7677_example_verifies() {
        // RFC 7677 section 3: user "user", password "pencil".
        let salt = [
            0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e, 0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36,
            0xfa, 0x81,
        ];
        let v = verifier(b"pencil", &salt);
        let auth = b"n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let proof = b64
            .decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        assert!(v.accepts(auth, &proof));
        assert_eq!(
            b64.encode(v.server_signature(auth)),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        let mut wrong = proof.clone();
        wrong[0] ^= 1;
        assert!(!v.accepts(auth, &wrong));
    }
}
