//! The identity assertion sent to apps: a JWT signed with Ed25519 (`alg: EdDSA`), valid 60
//! seconds, with `iss` = rampart's public origin, `aud` = the app's name, `sub` = user name,
//! `email`, `iat`, `exp` and `jti`. The key is made once, kept sealed under the master key
//! in the store's `meta` table, and published as a JWK Set at `/.well-known/jwks.json`.
//! Assertions are cached per (session, app) and reused during the first half of their life.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderValue;
use rampart_audit::{Action, Actor, AuditEvent};
use rampart_identity::sealed::MasterKey;
use rampart_store::Store;
use sha2::Digest;

/// How long an assertion is valid.
pub const LIFETIME_S: i64 = 60;
/// A cached assertion is reused while it has at least this long left.
const REUSE_MIN_LEFT_S: i64 = 30;
/// Most cached assertions kept.
const CACHE_MAX: usize = 50_000;
/// The `meta` key of the sealed key.
const META_KEY: &str = "apps.signing_key";

/// The signing key could not be made, opened or used.
#[derive(Debug, thiserror::Error)]
pub enum AssertionError {
    /// The store failed.
    #[error("the store failed: {0}")]
    Store(#[from] rampart_store::StoreError),
    /// The key could not be generated, sealed or opened.
    #[error("the app signing key is unusable: {0}")]
    Key(String),
}

/// Signs assertions; holds the key pair and the published JWKS.
pub struct Signer {
    key: Ed25519KeyPair,
    kid: String,
    jwks: String,
    issuer: String,
    /// App → session key → (assertion as a header value, expiry). Looked up by borrowed
    /// names, so a request that reuses one allocates nothing.
    cache: Mutex<HashMap<String, BySession>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Opens the stored key, or makes, seals and stores one (once across nodes).
    pub async fn load_or_create(
        store: &Store,
        master: &MasterKey,
        issuer: &str,
    ) -> Result<Self, AssertionError> {
        let sealed = match store.meta(META_KEY).await? {
            Some(s) => s,
            None => {
                let rng = aws_lc_rs::rand::SystemRandom::new();
                let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
                    .map_err(|_| AssertionError::Key("generation failed".into()))?;
                let sealed = master
                    .seal(META_KEY, pkcs8.as_ref())
                    .map_err(|e| AssertionError::Key(e.to_string()))?;
                let probe = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
                    .map_err(|_| AssertionError::Key("generated key unreadable".into()))?;
                let ev = AuditEvent::new(Actor::System, Action::AppKeyCreate, "apps")
                    .detail("kid", kid_of(probe.public_key().as_ref()));
                store.meta_set_once(META_KEY, &sealed, ev).await?
            }
        };
        let pkcs8 = master
            .open(META_KEY, &sealed)
            .map_err(|e| AssertionError::Key(e.to_string()))?;
        Self::from_pkcs8(pkcs8.expose_secret(), issuer)
    }

    /// A signer from a PKCS#8 document (tests, and after opening the sealed one).
    pub fn from_pkcs8(pkcs8: &[u8], issuer: &str) -> Result<Self, AssertionError> {
        let key = Ed25519KeyPair::from_pkcs8(pkcs8)
            .map_err(|_| AssertionError::Key("not an Ed25519 PKCS#8 key".into()))?;
        let public = key.public_key().as_ref().to_vec();
        let kid = kid_of(&public);
        let jwks = serde_json::json!({
            "keys": [{
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(&public),
                "kid": kid,
                "alg": "EdDSA",
                "use": "sig",
            }]
        })
        .to_string();
        Ok(Self {
            key,
            kid,
            jwks,
            issuer: issuer.to_owned(),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The JWK Set, as JSON.
    pub fn jwks(&self) -> &str {
        &self.jwks
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// An assertion for `sub` at `app`, from the cache when one for `session` has at least
    /// half its life left.
    pub fn assertion(
        &self,
        session: &str,
        app: &str,
        sub: &str,
        email: &str,
        now: i64,
    ) -> HeaderValue {
        if let Ok(cache) = self.cache.lock()
            && let Some((jwt, exp)) = cache.get(app).and_then(|by| by.get(session))
            && exp - now >= REUSE_MIN_LEFT_S
        {
            return jwt.clone();
        }
        let jwt = header_value(self.sign(app, sub, email, now));
        if let Ok(mut cache) = self.cache.lock() {
            if cache.values().map(HashMap::len).sum::<usize>() >= CACHE_MAX {
                for by in cache.values_mut() {
                    by.retain(|_, (_, exp)| *exp - now >= REUSE_MIN_LEFT_S);
                }
                cache.retain(|_, by| !by.is_empty());
                if cache.values().map(HashMap::len).sum::<usize>() >= CACHE_MAX {
                    cache.clear();
                }
            }
            cache
                .entry(app.to_owned())
                .or_default()
                .insert(session.to_owned(), (jwt.clone(), now + LIFETIME_S));
        }
        jwt
    }

    /// A fresh assertion.
    pub fn sign(&self, app: &str, sub: &str, email: &str, now: i64) -> String {
        let header = serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": self.kid});
        let claims = serde_json::json!({
            "iss": self.issuer,
            "aud": app,
            "sub": sub,
            "email": email,
            "iat": now,
            "exp": now + LIFETIME_S,
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        let mut out = URL_SAFE_NO_PAD.encode(header.to_string());
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = self.key.sign(out.as_bytes());
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(signature.as_ref()));
        out
    }
}

/// One app's cached assertions: session key → (assertion, expiry).
type BySession = HashMap<String, (HeaderValue, i64)>;

/// A JWT as a header value, without copying it. A JWT is base64url and dots, which a
/// header value always takes; were it ever refused, the header is sent empty and the
/// upstream's verification fails, as it should.
fn header_value(jwt: String) -> HeaderValue {
    HeaderValue::from_maybe_shared(bytes::Bytes::from(jwt))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn kid_of(public: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(public))
        .get(..16)
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;
    use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};

    #[test]
    fn assertions_verify_against_the_published_key_and_are_cached() {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let s = Signer::from_pkcs8(pkcs8.as_ref(), "https://gw.test").unwrap();
        let value = s.assertion("sess", "grafana", "alice", "alice@example.com", 1000);
        let jwt = value.to_str().unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let jwks: serde_json::Value = serde_json::from_str(s.jwks()).unwrap();
        let x = URL_SAFE_NO_PAD
            .decode(jwks["keys"][0]["x"].as_str().unwrap())
            .unwrap();
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        UnparsedPublicKey::new(&ED25519, &x)
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["aud"], "grafana");
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["exp"], 1060);
        // Reused within the first half of its life, renewed after.
        assert_eq!(
            s.assertion("sess", "grafana", "alice", "alice@example.com", 1030),
            value
        );
        assert_ne!(
            s.assertion("sess", "grafana", "alice", "alice@example.com", 1031),
            value
        );
        assert_ne!(
            s.assertion("other", "grafana", "alice", "alice@example.com", 1000),
            value
        );
    }
}
