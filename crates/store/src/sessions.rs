//! Server-side sessions, stored by the hash of their id.

use rampart_audit::{Action, Actor, AuditEvent};
use rampart_identity::session::{SessionPolicy, Stage};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError};

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// SHA-256 of the session id (the id itself is only in the cookie).
    pub id_hash: String,
    /// The account.
    pub account_id: String,
    /// How far the login has come.
    pub stage: Stage,
    /// Creation time (s).
    pub created_s: i64,
    /// Last request (s).
    pub last_seen_s: i64,
    /// Client address at login.
    pub source: String,
    /// Revoked by the user, an admin, or disabling the account.
    pub revoked: bool,
}

const COLUMNS: &str = "id_hash, account_id, stage, created_s, last_seen_s, source, revoked";

/// Inserts a session inside a write transaction (not committed). A session with a parent
/// (an app host's, opened through the handoff) is revoked with it
/// ([`Store::revoke_session`]).
pub(crate) async fn insert_session_in(
    w: &mut crate::Write,
    row: &SessionRow,
    parent_hash: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "INSERT INTO sessions ({COLUMNS}, parent_hash) VALUES ($1, $2, $3, $4, $5, $6, 0, $7)"
    ))
    .bind(&row.id_hash)
    .bind(&row.account_id)
    .bind(row.stage.as_str())
    .bind(row.created_s)
    .bind(row.last_seen_s)
    .bind(&row.source)
    .bind(parent_hash)
    .execute(w.conn()?)
    .await?;
    Ok(())
}

impl Store {
    /// Stores a new session with its audit events, in one transaction.
    pub async fn create_session(
        &self,
        row: &SessionRow,
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        insert_session_in(&mut w, row, None).await?;
        if !events.is_empty() {
            w.audit(events).await?;
        }
        w.commit().await
    }

    /// A session by the hash of its id.
    pub async fn session(&self, id_hash: &str) -> Result<Option<SessionRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM sessions WHERE id_hash = $1"
        ))
        .bind(id_hash)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(session).transpose()
    }

    /// Records activity on a session.
    pub async fn touch_session(&self, id_hash: &str, now_s: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET last_seen_s = $1 WHERE id_hash = $2")
            .bind(now_s)
            .bind(id_hash)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Moves a session to a later stage of login (a new session id replaces the old one,
    /// so an id seen before MFA is worthless after it), auditing the step.
    pub async fn advance_session(
        &self,
        old_hash: &str,
        new: &SessionRow,
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(old_hash)
            .execute(w.conn()?)
            .await?;
        insert_session_in(&mut w, new, None).await?;
        if new.stage == Stage::Complete {
            sqlx::query("UPDATE accounts SET last_login_us = $1 WHERE id = $2")
                .bind(crate::now_us())
                .bind(&new.account_id)
                .execute(w.conn()?)
                .await?;
        }
        w.audit(events).await?;
        w.commit().await
    }

    /// Revokes one session of an account, and the app-host sessions opened from it (the
    /// audit record then says how many, `app_sessions`).
    pub async fn revoke_session(
        &self,
        account_id: &str,
        id_hash: &str,
        event: AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut w = self.write().await?;
        let done = sqlx::query("UPDATE sessions SET revoked = 1 WHERE id_hash = $1 AND account_id = $2 AND revoked = 0")
            .bind(id_hash)
            .bind(account_id)
            .execute(w.conn()?)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let children = sqlx::query(
            "UPDATE sessions SET revoked = 1 WHERE parent_hash = $1 AND account_id = $2 AND revoked = 0",
        )
        .bind(id_hash)
        .bind(account_id)
        .execute(w.conn()?)
        .await?
        .rows_affected();
        let event = if children > 0 {
            event.detail("app_sessions", children.to_string())
        } else {
            event
        };
        w.audit(&[event]).await?;
        w.commit().await?;
        Ok(true)
    }

    /// Ends the complete sessions that `policy` says have timed out by `now_s` (idle or past
    /// their absolute lifetime): each is revoked and gets a `session.end` record naming the
    /// reason, in one transaction. Returns how many ended. Sessions that never completed
    /// their login never began, so they are left to the purge.
    pub async fn end_timed_out_sessions(
        &self,
        policy: &SessionPolicy,
        now_s: i64,
    ) -> Result<usize, StoreError> {
        let rows = sqlx::query(
            "SELECT s.id_hash, s.created_s, s.last_seen_s, a.username FROM sessions s JOIN accounts a ON a.id = s.account_id WHERE s.revoked = 0 AND s.stage = $1 AND (s.last_seen_s <= $2 OR s.created_s <= $3) ORDER BY s.last_seen_s LIMIT 1000",
        )
        .bind(Stage::Complete.as_str())
        .bind(now_s - policy.idle_secs)
        .bind(now_s - policy.absolute_secs)
        .fetch_all(self.pool())
        .await?;
        let mut ended = Vec::new();
        for row in &rows {
            let (created, last_seen): (i64, i64) =
                (row.try_get("created_s")?, row.try_get("last_seen_s")?);
            if policy.is_live(Stage::Complete, created, last_seen, now_s) {
                continue;
            }
            let reason = if now_s - created >= policy.absolute_secs {
                "absolute"
            } else {
                "idle"
            };
            let id_hash: String = row.try_get("id_hash")?;
            let username: String = row.try_get("username")?;
            ended.push((id_hash, username, reason));
        }
        if ended.is_empty() {
            return Ok(0);
        }
        let mut w = self.write().await?;
        let mut events = Vec::new();
        for (id_hash, username, reason) in ended {
            // A request or a logout may have got there first.
            let done =
                sqlx::query("UPDATE sessions SET revoked = 1 WHERE id_hash = $1 AND revoked = 0")
                    .bind(&id_hash)
                    .execute(w.conn()?)
                    .await?;
            if done.rows_affected() == 1 {
                events.push(
                    AuditEvent::new(Actor::System, Action::SessionEnd, username)
                        .detail("reason", reason),
                );
            }
        }
        if !events.is_empty() {
            w.audit(&events).await?;
        }
        w.commit().await?;
        Ok(events.len())
    }

    /// The live-looking (not revoked) sessions of an account, newest first.
    pub async fn sessions_of(&self, account_id: &str) -> Result<Vec<SessionRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM sessions WHERE account_id = $1 AND revoked = 0 ORDER BY created_s DESC LIMIT 100"
        ))
        .bind(account_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(session).collect()
    }

    /// Deletes sessions unused since `before_s`.
    pub async fn purge_sessions(&self, before_s: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE last_seen_s < $1 OR revoked = 1")
            .bind(before_s)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}

fn session(row: &AnyRow) -> Result<SessionRow, StoreError> {
    let stage: String = row.try_get("stage")?;
    let revoked: i64 = row.try_get("revoked")?;
    Ok(SessionRow {
        id_hash: row.try_get("id_hash")?,
        account_id: row.try_get("account_id")?,
        stage: Stage::parse(&stage)
            .ok_or_else(|| StoreError::Corrupt(format!("session stage {stage:?}")))?,
        created_s: row.try_get("created_s")?,
        last_seen_s: row.try_get("last_seen_s")?,
        source: row.try_get("source")?,
        revoked: revoked != 0,
    })
}
