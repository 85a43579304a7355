//! Accounts, their credentials, recovery codes, throttling and enrollment links.

use rampart_audit::AuditEvent;
use rampart_identity::throttle::FailureState;
use rampart_identity::{AccountKind, Email, Username};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError, Write, conflict, now_us};

/// An account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Stable id (UUID v7).
    pub id: String,
    /// Unique login name.
    pub username: Username,
    /// Unique email, lower-case.
    pub email: Email,
    /// Name to show.
    pub display_name: String,
    /// Person, third party or service.
    pub kind: AccountKind,
    /// The owning person's user name (service accounts).
    pub owner: Option<String>,
    /// Argon2id PHC string; none until enrollment.
    pub password_hash: Option<String>,
    /// TOTP secret sealed under the master key; none until MFA enrollment.
    pub totp_sealed: Option<String>,
    /// Step of the last accepted TOTP code (replay protection).
    pub totp_last_step: Option<i64>,
    /// Whether the account may log in.
    pub active: bool,
    /// Creation time (µs).
    pub created_us: i64,
    /// Last complete login (µs).
    pub last_login_us: Option<i64>,
    /// Last accepted second factor: a TOTP code, a recovery code or a WebAuthn key (µs).
    pub last_mfa_us: Option<i64>,
    /// How many WebAuthn keys (security keys, passkeys) the account holds.
    pub webauthn_keys: i64,
}

impl Account {
    /// Whether a second factor is enrolled: TOTP, or at least one WebAuthn key.
    pub fn has_mfa(&self) -> bool {
        self.totp_sealed.is_some() || self.webauthn_keys > 0
    }

    /// Whether a TOTP secret is enrolled.
    pub fn has_totp(&self) -> bool {
        self.totp_sealed.is_some()
    }
}

/// What is needed to create an account.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// Login name.
    pub username: Username,
    /// Email.
    pub email: Email,
    /// Name to show.
    pub display_name: String,
    /// Kind.
    pub kind: AccountKind,
    /// Owner (required for service accounts).
    pub owner: Option<Username>,
}

const COLUMNS: &str = "id, username, email, display_name, kind, owner, password_hash, totp_sealed, totp_last_step, active, created_us, last_login_us, last_mfa_us";

/// What every account read selects: the columns and the number of WebAuthn keys.
const SELECT: &str = "SELECT id, username, email, display_name, kind, owner, password_hash, totp_sealed, totp_last_step, active, created_us, last_login_us, last_mfa_us, (SELECT COUNT(*) FROM webauthn_credentials w WHERE w.account_id = accounts.id) AS webauthn_keys FROM accounts";

/// The id of the active service account `username`, read in the write transaction that
/// gives it a token (log sources, apps); `NotFound` when there is none by that name, or it
/// is a person, or it is disabled.
pub(crate) async fn active_service_account(
    w: &mut Write,
    username: &str,
) -> Result<String, StoreError> {
    let row = sqlx::query("SELECT id, kind, active FROM accounts WHERE username = $1")
        .bind(username)
        .fetch_optional(w.conn()?)
        .await?;
    let Some(row) = row else {
        return Err(StoreError::NotFound(format!("service account {username}")));
    };
    let kind: String = row.try_get("kind")?;
    let active: i64 = row.try_get("active")?;
    if kind != AccountKind::Service.as_str() || active == 0 {
        return Err(StoreError::NotFound(format!(
            "active service account {username}"
        )));
    }
    Ok(row.try_get("id")?)
}

impl Store {
    /// Creates an account and audits it in one transaction.
    pub async fn create_account(
        &self,
        new: &NewAccount,
        event: AuditEvent,
    ) -> Result<Account, StoreError> {
        let mut w = self.write().await?;
        if let Some(owner) = &new.owner {
            let found = sqlx::query("SELECT kind FROM accounts WHERE username = $1")
                .bind(owner.as_str())
                .fetch_optional(w.conn()?)
                .await?;
            let owner_kind: Option<String> = found.map(|r| r.try_get("kind")).transpose()?;
            if owner_kind.as_deref() != Some(AccountKind::Person.as_str()) {
                return Err(StoreError::NotFound(format!("owning person {owner}")));
            }
        }
        let id = uuid::Uuid::now_v7().to_string();
        let created = now_us();
        sqlx::query(&format!(
            "INSERT INTO accounts ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, NULL, 1, $7, NULL, NULL)"
        ))
        .bind(&id)
        .bind(new.username.as_str())
        .bind(new.email.as_str())
        .bind(&new.display_name)
        .bind(new.kind.as_str())
        .bind(new.owner.as_ref().map(|o| o.as_str().to_owned()))
        .bind(created)
        .execute(w.conn()?)
        .await
        .map_err(conflict(format!("an account with user name {} or email {}", new.username, new.email.as_str())))?;
        w.audit(&[event]).await?;
        w.commit().await?;
        self.account_by_id(&id)
            .await?
            .ok_or_else(|| StoreError::NotFound(id))
    }

    /// Finds an account by user name or email (case-insensitive).
    pub async fn account_by_login(&self, login: &str) -> Result<Option<Account>, StoreError> {
        let key = login.trim().to_lowercase();
        let row = sqlx::query(&format!("{SELECT} WHERE username = $1 OR email = $1"))
            .bind(key)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(account).transpose()
    }

    /// Finds an account by id.
    pub async fn account_by_id(&self, id: &str) -> Result<Option<Account>, StoreError> {
        let row = sqlx::query(&format!("{SELECT} WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(account).transpose()
    }

    /// Every account, by user name.
    pub async fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        let rows = sqlx::query(&format!("{SELECT} ORDER BY username"))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(account).collect()
    }

    /// Enables or disables an account; disabling ends its sessions in the same transaction.
    pub async fn set_active(
        &self,
        id: &str,
        active: bool,
        event: AuditEvent,
    ) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        let done = sqlx::query("UPDATE accounts SET active = $1 WHERE id = $2")
            .bind(i64::from(active))
            .bind(id)
            .execute(w.conn()?)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("account {id}")));
        }
        if !active {
            sqlx::query("UPDATE sessions SET revoked = 1 WHERE account_id = $1")
                .bind(id)
                .execute(w.conn()?)
                .await?;
        }
        w.audit(&[event]).await?;
        w.commit().await
    }

    /// Stores a sealed TOTP secret and the hashes of fresh recovery codes, replacing old ones.
    pub async fn enroll_totp(
        &self,
        id: &str,
        sealed: &str,
        first_step: i64,
        recovery_hashes: &[String],
        event: AuditEvent,
    ) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        sqlx::query("UPDATE accounts SET totp_sealed = $1, totp_last_step = $2 WHERE id = $3")
            .bind(sealed)
            .bind(first_step)
            .bind(id)
            .execute(w.conn()?)
            .await?;
        sqlx::query("DELETE FROM recovery_codes WHERE account_id = $1")
            .bind(id)
            .execute(w.conn()?)
            .await?;
        for hash in recovery_hashes {
            sqlx::query(
                "INSERT INTO recovery_codes (account_id, code_hash, used_us) VALUES ($1, $2, NULL)",
            )
            .bind(id)
            .bind(hash)
            .execute(w.conn()?)
            .await?;
        }
        w.audit(&[event]).await?;
        w.commit().await
    }

    /// Removes every second factor of an account (admin reset: TOTP, recovery codes and
    /// WebAuthn keys) and ends its sessions.
    pub async fn reset_mfa(&self, id: &str, event: AuditEvent) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        sqlx::query("UPDATE accounts SET totp_sealed = NULL, totp_last_step = NULL WHERE id = $1")
            .bind(id)
            .execute(w.conn()?)
            .await?;
        for table in ["webauthn_credentials", "webauthn_challenges"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE account_id = $1"))
                .bind(id)
                .execute(w.conn()?)
                .await?;
        }
        sqlx::query("DELETE FROM recovery_codes WHERE account_id = $1")
            .bind(id)
            .execute(w.conn()?)
            .await?;
        sqlx::query("UPDATE sessions SET revoked = 1 WHERE account_id = $1")
            .bind(id)
            .execute(w.conn()?)
            .await?;
        w.audit(&[event]).await?;
        w.commit().await
    }

    /// Records an accepted TOTP step, only if it is newer than the stored one: two
    /// concurrent logins with the same code cannot both succeed. Returns whether it won;
    /// a win is also the account's latest second-factor check.
    pub async fn advance_totp_step(&self, id: &str, step: i64) -> Result<bool, StoreError> {
        let mut w = self.write().await?;
        let done = sqlx::query(
            "UPDATE accounts SET totp_last_step = $1, last_mfa_us = $3 WHERE id = $2 AND (totp_last_step IS NULL OR totp_last_step < $1)",
        )
        .bind(step)
        .bind(id)
        .bind(now_us())
        .execute(w.conn()?)
        .await?;
        w.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks a recovery code used; returns whether it existed and was unused. A use is also
    /// the account's latest second-factor check.
    pub async fn use_recovery_code(&self, id: &str, code_hash: &str) -> Result<bool, StoreError> {
        let mut w = self.write().await?;
        let done = sqlx::query(
            "UPDATE recovery_codes SET used_us = $1 WHERE account_id = $2 AND code_hash = $3 AND used_us IS NULL",
        )
        .bind(now_us())
        .bind(id)
        .bind(code_hash)
        .execute(w.conn()?)
        .await?;
        let used = done.rows_affected() == 1;
        if used {
            sqlx::query("UPDATE accounts SET last_mfa_us = $1 WHERE id = $2")
                .bind(now_us())
                .bind(id)
                .execute(w.conn()?)
                .await?;
        }
        w.commit().await?;
        Ok(used)
    }

    /// Unused recovery codes left.
    pub async fn recovery_codes_left(&self, id: &str) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM recovery_codes WHERE account_id = $1 AND used_us IS NULL",
        )
        .bind(id)
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get("n")?)
    }

    /// The throttle state of a key (`account:ID` or `addr:IP`).
    pub async fn throttle(&self, key: &str) -> Result<FailureState, StoreError> {
        let row = sqlx::query(
            "SELECT failures, last_failure_s, locked_until_s FROM throttle WHERE key = $1",
        )
        .bind(key)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(FailureState::default());
        };
        let failures: i64 = row.try_get("failures")?;
        Ok(FailureState {
            failures: u32::try_from(failures).unwrap_or(u32::MAX),
            last_failure: row.try_get("last_failure_s")?,
            locked_until: row.try_get("locked_until_s")?,
        })
    }

    /// Saves throttle states, with audit events (a lockout) in the same transaction.
    pub async fn save_throttle(
        &self,
        states: &[(String, FailureState)],
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        for (key, s) in states {
            sqlx::query("DELETE FROM throttle WHERE key = $1")
                .bind(key)
                .execute(w.conn()?)
                .await?;
            sqlx::query("INSERT INTO throttle (key, failures, last_failure_s, locked_until_s) VALUES ($1, $2, $3, $4)")
                .bind(key)
                .bind(i64::from(s.failures))
                .bind(s.last_failure)
                .bind(s.locked_until)
                .execute(w.conn()?)
                .await?;
        }
        if !events.is_empty() {
            w.audit(events).await?;
        }
        w.commit().await
    }

    /// Forgets the failures of a key after a successful check.
    pub async fn clear_throttle(&self, key: &str) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        sqlx::query("DELETE FROM throttle WHERE key = $1")
            .bind(key)
            .execute(w.conn()?)
            .await?;
        w.commit().await
    }

    /// Stores a one-time enrollment link (its hash) for an account.
    pub async fn create_enroll_link(
        &self,
        id: &str,
        token_hash: &str,
        expires_s: i64,
        event: AuditEvent,
    ) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        sqlx::query("INSERT INTO enroll_links (token_hash, account_id, expires_s, used_s) VALUES ($1, $2, $3, NULL)")
            .bind(token_hash)
            .bind(id)
            .bind(expires_s)
            .execute(w.conn()?)
            .await?;
        w.audit(&[event]).await?;
        w.commit().await
    }

    /// The account an unused, unexpired enrollment link belongs to.
    pub async fn enroll_link_account(
        &self,
        token_hash: &str,
        now_s: i64,
    ) -> Result<Option<Account>, StoreError> {
        let row = sqlx::query("SELECT account_id FROM enroll_links WHERE token_hash = $1 AND used_s IS NULL AND expires_s > $2")
            .bind(token_hash)
            .bind(now_s)
            .fetch_optional(self.pool())
            .await?;
        match row {
            None => Ok(None),
            Some(row) => {
                self.account_by_id(&row.try_get::<String, _>("account_id")?)
                    .await
            }
        }
    }

    /// Uses an enrollment link: sets the password and marks the link used, once.
    pub async fn complete_enrollment(
        &self,
        token_hash: &str,
        now_s: i64,
        password_hash: &str,
        event: AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut w = self.write().await?;
        let row = sqlx::query("SELECT account_id FROM enroll_links WHERE token_hash = $1 AND used_s IS NULL AND expires_s > $2")
            .bind(token_hash)
            .bind(now_s)
            .fetch_optional(w.conn()?)
            .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let id: String = row.try_get("account_id")?;
        sqlx::query("UPDATE enroll_links SET used_s = $1 WHERE token_hash = $2")
            .bind(now_s)
            .bind(token_hash)
            .execute(w.conn()?)
            .await?;
        sqlx::query("UPDATE accounts SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(&id)
            .execute(w.conn()?)
            .await?;
        w.audit(&[event]).await?;
        w.commit().await?;
        Ok(true)
    }
}

fn account(row: &AnyRow) -> Result<Account, StoreError> {
    let username: String = row.try_get("username")?;
    let email: String = row.try_get("email")?;
    let kind: String = row.try_get("kind")?;
    let active: i64 = row.try_get("active")?;
    Ok(Account {
        id: row.try_get("id")?,
        username: Username::parse(&username).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        email: Email::parse(&email).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        display_name: row.try_get("display_name")?,
        kind: AccountKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("account kind {kind:?}")))?,
        owner: row.try_get("owner")?,
        password_hash: row.try_get("password_hash")?,
        totp_sealed: row.try_get("totp_sealed")?,
        totp_last_step: row.try_get("totp_last_step")?,
        active: active != 0,
        created_us: row.try_get("created_us")?,
        last_login_us: row.try_get("last_login_us")?,
        last_mfa_us: row.try_get("last_mfa_us")?,
        webauthn_keys: row.try_get("webauthn_keys")?,
    })
}
