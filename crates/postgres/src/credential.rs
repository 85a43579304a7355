//! Upstream credentials: per PostgreSQL target and database role, the password sealed under
//! the master key (AES-256-GCM, bound to the target and role), never shown again.

use rampart_audit::{Action, Actor, AuditEvent};
use rampart_identity::sealed::MasterKey;
use rampart_store::{DbCredential, Store, StoreError};

/// Why a credential was not stored.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// No such PostgreSQL target.
    #[error("no postgres target {0}")]
    NoTarget(String),
    /// The role or user name is not a plain name.
    #[error("{0} must be 1 to 63 characters of letters, digits, '_', '-' and '.'")]
    BadName(&'static str),
    /// Sealing failed.
    #[error("cannot seal the credential: {0}")]
    Seal(#[from] rampart_identity::sealed::SealError),
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Seals and stores the credential rampart uses upstream for `db_role` on `target`.
pub async fn set(
    store: &Store,
    master: &MasterKey,
    target: &str,
    db_role: &str,
    username: &str,
    password: &[u8],
    actor: Actor,
) -> Result<(), CredentialError> {
    let plain = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    if !plain(db_role) {
        return Err(CredentialError::BadName("the database role"));
    }
    if !plain(username) {
        return Err(CredentialError::BadName("the upstream user name"));
    }
    crate::token::postgres_target(store, target)
        .await?
        .ok_or_else(|| CredentialError::NoTarget(target.to_owned()))?;
    let sealed = master.seal(
        &crate::gateway::credential_context(target, db_role),
        password,
    )?;
    let event = AuditEvent::new(actor, Action::DbCredentialSet, target.to_owned())
        .detail("db_role", db_role.to_owned())
        .detail("username", username.to_owned());
    store
        .put_db_credential(
            &DbCredential {
                target: target.to_owned(),
                db_role: db_role.to_owned(),
                username: username.to_owned(),
                secret_sealed: sealed,
                updated_us: jiff::Timestamp::now().as_microsecond(),
            },
            event,
        )
        .await?;
    Ok(())
}
