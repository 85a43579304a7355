//! WebAuthn rows (ACC-2): the security keys and passkeys registered to accounts, and the
//! server-side state of each ceremony in progress.
//!
//! A key is stored as the serialised webauthn-rs `Passkey` (public key and signature
//! counter; nothing secret), rewritten after each use so the counter moves forward. A
//! ceremony's state is bound to the account and the session that began it, expires within
//! minutes and is taken once: [`Store::take_webauthn_challenge`] deletes it in the same
//! transaction that reads it, so an assertion or attestation can never be checked twice.
//! The store does not parse either text: the front door owns the WebAuthn types.

use rampart_audit::AuditEvent;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError, conflict, now_us};

/// A security key or passkey registered to an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebauthnKey {
    /// Row id (UUID v7), what the UI names when removing it.
    pub id: String,
    /// The owning account's id.
    pub account_id: String,
    /// The authenticator's credential id, base64url; unique across all accounts.
    pub credential_id: String,
    /// The serialised webauthn-rs `Passkey` (JSON).
    pub passkey: String,
    /// The name its owner gave it.
    pub name: String,
    /// When it was registered (µs).
    pub created_us: i64,
    /// When it last passed a login or check (µs).
    pub last_used_us: Option<i64>,
}

/// Which ceremony a stored challenge belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ceremony {
    /// Registering a new key from the account page.
    Register,
    /// Proving a registered key as the second factor of a login.
    Login,
}

impl Ceremony {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::Login => "login",
        }
    }
}

/// What taking a challenge found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TakenChallenge {
    /// The state, now deleted: this is its only use.
    Fresh(String),
    /// There was one, but past its expiry (deleted too).
    Expired,
    /// None for this session and ceremony: never begun, or already used.
    Missing,
}

impl Store {
    /// The keys of an account, oldest first.
    pub async fn webauthn_keys(&self, account_id: &str) -> Result<Vec<WebauthnKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, account_id, credential_id, passkey, name, created_us, last_used_us FROM webauthn_credentials WHERE account_id = $1 ORDER BY created_us, id",
        )
        .bind(account_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(key).collect()
    }

    /// Stores the state of a ceremony begun by the session `session_hash` of `account_id`,
    /// replacing one of the same kind that session began before (only the latest counts).
    /// Expired states of every session are swept in the same transaction.
    pub async fn put_webauthn_challenge(
        &self,
        session_hash: &str,
        ceremony: Ceremony,
        account_id: &str,
        state: &str,
        expires_us: i64,
    ) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        sqlx::query(
            "DELETE FROM webauthn_challenges WHERE expires_us < $1 OR (session_hash = $2 AND purpose = $3)",
        )
        .bind(now_us())
        .bind(session_hash)
        .bind(ceremony.as_str())
        .execute(w.conn()?)
        .await?;
        sqlx::query(
            "INSERT INTO webauthn_challenges (session_hash, purpose, account_id, state, expires_us) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(session_hash)
        .bind(ceremony.as_str())
        .bind(account_id)
        .bind(state)
        .bind(expires_us)
        .execute(w.conn()?)
        .await?;
        w.commit().await
    }

    /// Takes the state of the ceremony the session began: read and deleted in one
    /// transaction, so two concurrent answers cannot both get it. An expired state is
    /// deleted and reported as such.
    pub async fn take_webauthn_challenge(
        &self,
        session_hash: &str,
        ceremony: Ceremony,
        account_id: &str,
        now_us: i64,
    ) -> Result<TakenChallenge, StoreError> {
        let mut w = self.write().await?;
        let row = sqlx::query(
            "SELECT state, expires_us FROM webauthn_challenges WHERE session_hash = $1 AND purpose = $2 AND account_id = $3",
        )
        .bind(session_hash)
        .bind(ceremony.as_str())
        .bind(account_id)
        .fetch_optional(w.conn()?)
        .await?;
        let Some(row) = row else {
            return Ok(TakenChallenge::Missing);
        };
        let deleted = sqlx::query(
            "DELETE FROM webauthn_challenges WHERE session_hash = $1 AND purpose = $2 AND account_id = $3",
        )
        .bind(session_hash)
        .bind(ceremony.as_str())
        .bind(account_id)
        .execute(w.conn()?)
        .await?;
        w.commit().await?;
        if deleted.rows_affected() != 1 {
            return Ok(TakenChallenge::Missing);
        }
        let expires_us: i64 = row.try_get("expires_us")?;
        if expires_us <= now_us {
            return Ok(TakenChallenge::Expired);
        }
        Ok(TakenChallenge::Fresh(row.try_get("state")?))
    }

    /// Registers a key to an account and audits it in one transaction; a credential id
    /// already registered (to anyone) is a conflict.
    pub async fn add_webauthn_key(
        &self,
        account_id: &str,
        credential_id: &str,
        passkey: &str,
        name: &str,
        event: AuditEvent,
    ) -> Result<WebauthnKey, StoreError> {
        let key = WebauthnKey {
            id: uuid::Uuid::now_v7().to_string(),
            account_id: account_id.to_owned(),
            credential_id: credential_id.to_owned(),
            passkey: passkey.to_owned(),
            name: name.to_owned(),
            created_us: now_us(),
            last_used_us: None,
        };
        let mut w = self.write().await?;
        sqlx::query(
            "INSERT INTO webauthn_credentials (id, account_id, credential_id, passkey, name, created_us, last_used_us) VALUES ($1, $2, $3, $4, $5, $6, NULL)",
        )
        .bind(&key.id)
        .bind(&key.account_id)
        .bind(&key.credential_id)
        .bind(&key.passkey)
        .bind(&key.name)
        .bind(key.created_us)
        .execute(w.conn()?)
        .await
        .map_err(conflict("that security key"))?;
        w.audit(&[event]).await?;
        w.commit().await?;
        Ok(key)
    }

    /// Records a successful use of a key: its new serialised state (the counter moved),
    /// when given, its last use, and the account's latest second-factor check. Returns
    /// whether the key still existed (it may have been removed meanwhile).
    pub async fn use_webauthn_key(
        &self,
        account_id: &str,
        credential_id: &str,
        passkey: Option<&str>,
    ) -> Result<bool, StoreError> {
        let now = now_us();
        let mut w = self.write().await?;
        let done = match passkey {
            Some(passkey) => sqlx::query(
                "UPDATE webauthn_credentials SET passkey = $1, last_used_us = $2 WHERE account_id = $3 AND credential_id = $4",
            )
            .bind(passkey)
            .bind(now)
            .bind(account_id)
            .bind(credential_id),
            None => sqlx::query(
                "UPDATE webauthn_credentials SET last_used_us = $1 WHERE account_id = $2 AND credential_id = $3",
            )
            .bind(now)
            .bind(account_id)
            .bind(credential_id),
        }
        .execute(w.conn()?)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("UPDATE accounts SET last_mfa_us = $1 WHERE id = $2")
            .bind(now)
            .bind(account_id)
            .execute(w.conn()?)
            .await?;
        w.commit().await?;
        Ok(true)
    }

    /// Removes one key of an account (by row id) and audits it; `false` when the account
    /// holds no such key (nothing is audited then).
    pub async fn remove_webauthn_key(
        &self,
        account_id: &str,
        id: &str,
        event: AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut w = self.write().await?;
        let done =
            sqlx::query("DELETE FROM webauthn_credentials WHERE account_id = $1 AND id = $2")
                .bind(account_id)
                .bind(id)
                .execute(w.conn()?)
                .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        w.audit(&[event]).await?;
        w.commit().await?;
        Ok(true)
    }
}

fn key(row: &AnyRow) -> Result<WebauthnKey, StoreError> {
    Ok(WebauthnKey {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        credential_id: row.try_get("credential_id")?,
        passkey: row.try_get("passkey")?,
        name: row.try_get("name")?,
        created_us: row.try_get("created_us")?,
        last_used_us: row.try_get("last_used_us")?,
    })
}
