//! Apps behind the front door: service-account tokens (only their SHA-256 is stored), the
//! signing key's one-time creation, and request counts read from the audit log.

use rampart_audit::AuditEvent;
use sqlx::Row;

use crate::accounts::active_service_account;
use crate::{Store, StoreError, now_us};

/// A token as listed (never its value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppToken {
    /// Token id (UUID v7).
    pub id: String,
    /// The app it opens.
    pub app: String,
    /// The service account holding it.
    pub account: String,
    /// Issued (µs).
    pub created_us: i64,
    /// Revoked (µs), if it was.
    pub revoked_us: Option<i64>,
}

/// Requests to an app by one actor since some time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRequestCount {
    /// The app.
    pub app: String,
    /// The actor as stored (`user:alice`).
    pub actor: String,
    /// How many.
    pub requests: i64,
}

impl Store {
    /// Stores a new token's hash for `app`, held by the active service account `account`,
    /// with its audit record in the same transaction.
    pub async fn create_app_token(
        &self,
        app: &str,
        account: &str,
        token_hash: &str,
        event: AuditEvent,
    ) -> Result<AppToken, StoreError> {
        let mut w = self.write().await?;
        let account_id = active_service_account(&mut w, account).await?;
        let id = uuid::Uuid::now_v7().to_string();
        let created_us = now_us();
        sqlx::query(
            "INSERT INTO app_tokens (id, app, account_id, token_hash, created_us, revoked_us) VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(&id)
        .bind(app)
        .bind(&account_id)
        .bind(token_hash)
        .bind(created_us)
        .execute(w.conn()?)
        .await?;
        w.audit(&[event]).await?;
        w.commit().await?;
        Ok(AppToken {
            id,
            app: app.to_owned(),
            account: account.to_owned(),
            created_us,
            revoked_us: None,
        })
    }

    /// Revokes every live token of `app`, audited in the same transaction.
    pub async fn revoke_app_tokens(&self, app: &str, event: AuditEvent) -> Result<u64, StoreError> {
        let mut w = self.write().await?;
        let done = sqlx::query(
            "UPDATE app_tokens SET revoked_us = $1 WHERE app = $2 AND revoked_us IS NULL",
        )
        .bind(now_us())
        .bind(app)
        .execute(w.conn()?)
        .await?;
        w.audit(&[event]).await?;
        w.commit().await?;
        Ok(done.rows_affected())
    }

    /// The holder (user name, email) of a live token for `app` held by an active service
    /// account; `None` for an unknown, revoked or other app's token.
    pub async fn app_token_holder(
        &self,
        app: &str,
        token_hash: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT a.username, a.email FROM app_tokens t JOIN accounts a ON a.id = t.account_id WHERE t.token_hash = $1 AND t.app = $2 AND t.revoked_us IS NULL AND a.active = 1",
        )
        .bind(token_hash)
        .bind(app)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| Ok((r.try_get("username")?, r.try_get("email")?)))
            .transpose()
    }

    /// Every app token, newest first.
    pub async fn app_tokens(&self) -> Result<Vec<AppToken>, StoreError> {
        let rows = sqlx::query(
            "SELECT t.id, t.app, a.username, t.created_us, t.revoked_us FROM app_tokens t JOIN accounts a ON a.id = t.account_id ORDER BY t.created_us DESC",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AppToken {
                    id: r.try_get("id")?,
                    app: r.try_get("app")?,
                    account: r.try_get("username")?,
                    created_us: r.try_get("created_us")?,
                    revoked_us: r.try_get("revoked_us")?,
                })
            })
            .collect()
    }

    /// Sets `key` in `meta` only if it is absent (audited when it was set); returns the
    /// value stored afterwards (ours, or the one another node wrote first).
    pub async fn meta_set_once(
        &self,
        key: &str,
        value: &str,
        event: AuditEvent,
    ) -> Result<String, StoreError> {
        let mut w = self.write().await?;
        if let Some(v) = w.meta(key).await? {
            w.commit().await?;
            return Ok(v);
        }
        w.put_meta(key, Some(value)).await?;
        w.audit(&[event]).await?;
        w.commit().await?;
        Ok(value.to_owned())
    }

    /// Requests (`action`, e.g. `app.request`) per app (the record's subject) and actor
    /// since `since_us`, most first (at most 1,000): [`Store::audit_counts`] in that order.
    pub async fn app_request_counts(
        &self,
        action: &str,
        since_us: i64,
    ) -> Result<Vec<AppRequestCount>, StoreError> {
        let mut counts: Vec<AppRequestCount> = self
            .audit_counts(action, since_us)
            .await?
            .into_iter()
            .map(|(app, actor, requests)| AppRequestCount {
                app,
                actor,
                requests,
            })
            .collect();
        counts.sort_by(|a, b| {
            b.requests
                .cmp(&a.requests)
                .then_with(|| a.app.cmp(&b.app))
                .then_with(|| a.actor.cmp(&b.actor))
        });
        counts.truncate(1000);
        Ok(counts)
    }
}

/// A sign-in to an app's own host, made on the main host and waiting for its one-time code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppHandoff {
    /// The app.
    pub app: String,
    /// The person.
    pub account_id: String,
    /// The main-host session it comes from: the app host's session is its child.
    pub parent_hash: String,
    /// The client's address on the main host.
    pub source: String,
}

/// What redeeming a handoff code gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeemed {
    /// The app host's session was opened.
    Opened,
    /// No such code (never made, or used already), or one for another app.
    Unknown,
    /// The code is older than its lifetime.
    Expired,
    /// The session it came from has ended since.
    ParentEnded,
}

impl Store {
    /// Records a pending handoff under the SHA-256 of its one-time code, valid until
    /// `expires_us`; removes the handoffs that expired. Any node may redeem it.
    pub async fn put_app_handoff(
        &self,
        code_hash: &str,
        handoff: &AppHandoff,
        expires_us: i64,
    ) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        sqlx::query("DELETE FROM app_handoffs WHERE expires_us <= $1")
            .bind(now_us())
            .execute(w.conn()?)
            .await?;
        sqlx::query(
            "INSERT INTO app_handoffs (code_hash, app, account_id, parent_hash, source, expires_us) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(code_hash)
        .bind(&handoff.app)
        .bind(&handoff.account_id)
        .bind(&handoff.parent_hash)
        .bind(&handoff.source)
        .bind(expires_us)
        .execute(w.conn()?)
        .await?;
        w.commit().await
    }

    /// Takes the handoff of `code_hash` (once: the row is deleted whatever follows) and, when
    /// it is for `app`, unexpired at `now_us`, and its parent session still live, opens
    /// `session` (its account and parent are the handoff's) with the audit records
    /// `events` makes from the person's user name and the handoff, in one transaction.
    pub async fn redeem_app_handoff(
        &self,
        code_hash: &str,
        app: &str,
        session: &crate::SessionRow,
        now_us: i64,
        events: impl FnOnce(&str, &AppHandoff) -> Vec<AuditEvent>,
    ) -> Result<Redeemed, StoreError> {
        let mut w = self.write().await?;
        let row = sqlx::query(
            "SELECT app, account_id, parent_hash, source, expires_us FROM app_handoffs WHERE code_hash = $1",
        )
        .bind(code_hash)
        .fetch_optional(w.conn()?)
        .await?;
        let Some(row) = row else {
            return Ok(Redeemed::Unknown);
        };
        let taken = sqlx::query("DELETE FROM app_handoffs WHERE code_hash = $1")
            .bind(code_hash)
            .execute(w.conn()?)
            .await?;
        let handoff = AppHandoff {
            app: row.try_get("app")?,
            account_id: row.try_get("account_id")?,
            parent_hash: row.try_get("parent_hash")?,
            source: row.try_get("source")?,
        };
        let expires_us: i64 = row.try_get("expires_us")?;
        let verdict = if taken.rows_affected() != 1 || handoff.app != app {
            Redeemed::Unknown
        } else if expires_us <= now_us {
            Redeemed::Expired
        } else {
            let parent = sqlx::query(
                "SELECT s.revoked, a.username FROM sessions s JOIN accounts a ON a.id = s.account_id WHERE s.id_hash = $1 AND s.account_id = $2 AND a.active = 1",
            )
            .bind(&handoff.parent_hash)
            .bind(&handoff.account_id)
            .fetch_optional(w.conn()?)
            .await?;
            match parent {
                Some(p) if p.try_get::<i64, _>("revoked")? == 0 => {
                    let username: String = p.try_get("username")?;
                    let row = crate::SessionRow {
                        account_id: handoff.account_id.clone(),
                        ..session.clone()
                    };
                    crate::sessions::insert_session_in(&mut w, &row, Some(&handoff.parent_hash))
                        .await?;
                    w.audit(&events(&username, &handoff)).await?;
                    Redeemed::Opened
                }
                _ => Redeemed::ParentEnded,
            }
        };
        w.commit().await?;
        Ok(verdict)
    }
}
