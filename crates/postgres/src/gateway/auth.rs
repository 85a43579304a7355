//! Client authentication: the database token as SCRAM-SHA-256 proof (default) or as a
//! password inside TLS.

use postgres_protocol::authentication::sasl::SCRAM_SHA_256;
use rampart_store::DbToken;

use super::{Gateway, Refusal, TlsClient, write};
use crate::codec::{self, CodecError};

impl Gateway {
    /// The token as a cleartext password inside TLS, looked up by its SHA-256.
    pub(super) async fn password(
        &self,
        stream: &mut TlsClient,
        account: &str,
        target: &str,
        now: jiff::Timestamp,
    ) -> Result<DbToken, Refusal> {
        write(stream, &codec::authentication(3, &[])).await?;
        let body = read_password_message(stream).await?;
        let password = codec::cstr(&body, 0).map(|(p, _)| p).unwrap_or_default();
        let password = std::str::from_utf8(password).unwrap_or_default();
        let bad = |why| Refusal::BadToken {
            account: account.to_owned(),
            why,
        };
        let token = self
            .store
            .db_token_by_hash(&rampart_identity::token_hash(password))
            .await
            .map_err(|_| Refusal::Audit)?
            .ok_or_else(|| bad("unknown token"))?;
        if token.account != account {
            return Err(bad("token of another account"));
        }
        if token.target != target {
            return Err(bad("token of another target"));
        }
        if token.revoked_us.is_some() {
            return Err(bad("revoked token"));
        }
        if token.expires_us <= now.as_microsecond() {
            return Err(bad("expired token"));
        }
        Ok(token)
    }

    /// SCRAM-SHA-256 without channel binding (RFC 5802 section 5, PostgreSQL docs 55.3.1):
    /// the client proves one of the live tokens of `account` on `target`; the token itself
    /// never crosses the wire, and the client checks the server signature.
    pub(super) async fn scram(
        &self,
        stream: &mut TlsClient,
        account: &str,
        target: &str,
        now: jiff::Timestamp,
    ) -> Result<DbToken, Refusal> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let malformed = |what| Refusal::BadPacket(CodecError::Malformed(what));
        let mut offer = SCRAM_SHA_256.as_bytes().to_vec();
        offer.extend_from_slice(b"\0\0");
        write(stream, &codec::authentication(10, &offer)).await?;
        let body = read_password_message(stream).await?;
        let (mechanism, next) = codec::cstr(&body, 0).ok_or(malformed("SASL mechanism"))?;
        if mechanism != SCRAM_SHA_256.as_bytes() {
            return Err(malformed("unsupported SASL mechanism"));
        }
        let len = codec::i32_at(&body, next)
            .and_then(|l| usize::try_from(l).ok())
            .ok_or(malformed("SASL initial response length"))?;
        let first = body
            .get(next + 4..next + 4 + len)
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or(malformed("SASL initial response"))?;
        let (gs2, bare) = ["n,,", "y,,"]
            .iter()
            .find_map(|h| first.strip_prefix(h).map(|rest| (*h, rest)))
            .ok_or(malformed("SCRAM channel binding is not offered"))?;
        let client_nonce = bare
            .split(',')
            .find_map(|p| p.strip_prefix("r="))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b','))
            .ok_or(malformed("SCRAM client nonce"))?;
        let mut random = [0u8; 18];
        aws_lc_rs::rand::fill(&mut random).map_err(|_| Refusal::Audit)?;
        let nonce = format!("{client_nonce}{}", b64.encode(random));
        let salt = rampart_identity::scram::db_token_salt(account, target);
        let server_first = format!(
            "r={nonce},s={},i={}",
            b64.encode(salt),
            rampart_identity::scram::ITERATIONS
        );
        write(stream, &codec::authentication(11, server_first.as_bytes())).await?;
        let body = read_password_message(stream).await?;
        let client_final =
            std::str::from_utf8(&body).map_err(|_| malformed("SCRAM final message"))?;
        let (without_proof, proof) = client_final
            .rsplit_once(",p=")
            .ok_or(malformed("SCRAM proof"))?;
        let mut parts = without_proof.split(',');
        if parts.next() != Some(&format!("c={}", b64.encode(gs2))) {
            return Err(malformed("SCRAM channel binding"));
        }
        if parts.next() != Some(&format!("r={nonce}")) {
            return Err(malformed("SCRAM nonce"));
        }
        let proof = b64
            .decode(proof.trim_end_matches('\0'))
            .map_err(|_| malformed("SCRAM proof"))?;
        let auth_message = format!("{bare},{server_first},{without_proof}");
        let live = self
            .store
            .live_db_tokens(account, target, now.as_microsecond())
            .await
            .map_err(|_| Refusal::Audit)?;
        for (token, stored, server) in live {
            let (Ok(stored), Ok(server)) = (hex::decode(&stored), hex::decode(&server)) else {
                continue;
            };
            let (Ok(stored_key), Ok(server_key)) = (stored.try_into(), server.try_into()) else {
                continue;
            };
            let verifier = rampart_identity::scram::Verifier {
                stored_key,
                server_key,
            };
            if verifier.accepts(auth_message.as_bytes(), &proof) {
                let signature = verifier.server_signature(auth_message.as_bytes());
                let last = format!("v={}", b64.encode(signature));
                write(stream, &codec::authentication(12, last.as_bytes())).await?;
                return Ok(token);
            }
        }
        Err(Refusal::BadToken {
            account: account.to_owned(),
            why: "no live token of this account and target matches (SCRAM)",
        })
    }
}

/// Reads a `PasswordMessage`/`SASLInitialResponse`/`SASLResponse` (tag `p`, at most 1 KiB).
pub(super) async fn read_password_message(stream: &mut TlsClient) -> Result<Vec<u8>, Refusal> {
    let (tag, body) = codec::read_message(stream.as_mut(), 1024)
        .await
        .map_err(Refusal::BadPacket)?;
    if tag != b'p' {
        return Err(Refusal::BadPacket(CodecError::Malformed(
            "expected a password message",
        )));
    }
    Ok(body)
}
