//! The SSH bastion's rows: registered public keys, pinned target host keys, sessions.

use rampart_audit::AuditEvent;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError, conflict, now_us};

/// A public key registered to an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshKey {
    /// `SHA256:…`; unique across all accounts (ACC-1).
    pub fingerprint: String,
    /// The owning account's id.
    pub account_id: String,
    /// The owning account's user name.
    pub username: String,
    /// `ssh-ed25519 AAAA…` without comment.
    pub public_key: String,
    /// What the admin called it.
    pub comment: String,
    /// When it was added (µs).
    pub created_us: i64,
    /// When it last opened a session (µs).
    pub last_used_us: Option<i64>,
}

/// One SSH session through the bastion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshSession {
    /// Session id (UUID v7).
    pub id: String,
    /// The account's user name.
    pub account: String,
    /// The target name.
    pub target: String,
    /// The target's environment.
    pub environment: String,
    /// The login on the target.
    pub login: String,
    /// The client address.
    pub source: String,
    /// The node that serves it.
    pub node: String,
    /// Start (µs).
    pub started_us: i64,
    /// End (µs); none while live.
    pub ended_us: Option<i64>,
    /// Bytes from the client to the target.
    pub bytes_up: i64,
    /// Bytes from the target to the client.
    pub bytes_down: i64,
    /// The exit status of the last command or shell, when the target sent one.
    pub exit_status: Option<i64>,
    /// Whether a recording exists.
    pub recorded: bool,
    /// When an admin asked for it to end.
    pub kill_us: Option<i64>,
}

const SESSION_COLUMNS: &str = "id, account, target, environment, login, source, node, started_us, ended_us, bytes_up, bytes_down, exit_status, recorded, kill_us";

impl Store {
    /// Registers a public key to an account; a key already registered (to anyone) is a
    /// conflict.
    pub async fn add_ssh_key(
        &self,
        account_id: &str,
        fingerprint: &str,
        public_key: &str,
        comment: &str,
        event: AuditEvent,
    ) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        sqlx::query("INSERT INTO ssh_keys (fingerprint, account_id, public_key, comment, created_us) VALUES ($1, $2, $3, $4, $5)")
            .bind(fingerprint)
            .bind(account_id)
            .bind(public_key)
            .bind(comment)
            .bind(now_us())
            .execute(w.conn()?)
            .await
            .map_err(conflict(format!("SSH key {fingerprint}")))?;
        w.audit(&[event]).await?;
        w.commit().await
    }

    /// Removes a registered key.
    pub async fn remove_ssh_key(
        &self,
        fingerprint: &str,
        event: AuditEvent,
    ) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        let done = sqlx::query("DELETE FROM ssh_keys WHERE fingerprint = $1")
            .bind(fingerprint)
            .execute(w.conn()?)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("SSH key {fingerprint}")));
        }
        w.audit(&[event]).await?;
        w.commit().await
    }

    /// Registered keys, of one account or of all.
    pub async fn ssh_keys(&self, account_id: Option<&str>) -> Result<Vec<SshKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT k.fingerprint, k.account_id, a.username, k.public_key, k.comment, k.created_us, k.last_used_us \
             FROM ssh_keys k JOIN accounts a ON a.id = k.account_id \
             WHERE ($1 = '' OR k.account_id = $1) ORDER BY a.username, k.created_us",
        )
        .bind(account_id.unwrap_or(""))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(key_row).collect()
    }

    /// The key with that fingerprint, if registered.
    pub async fn ssh_key(&self, fingerprint: &str) -> Result<Option<SshKey>, StoreError> {
        let row = sqlx::query(
            "SELECT k.fingerprint, k.account_id, a.username, k.public_key, k.comment, k.created_us, k.last_used_us \
             FROM ssh_keys k JOIN accounts a ON a.id = k.account_id WHERE k.fingerprint = $1",
        )
        .bind(fingerprint)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(key_row).transpose()
    }

    /// The pinned host key fingerprint of a target.
    pub async fn pinned_host_key(&self, target: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT fingerprint FROM ssh_host_keys WHERE target = $1")
            .bind(target)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|r| r.try_get("fingerprint")).transpose()?)
    }

    /// Pins a target's host key (first use). Another pin made meanwhile wins: returns
    /// the fingerprint that is pinned afterwards.
    pub async fn pin_host_key(
        &self,
        target: &str,
        fingerprint: &str,
        public_key: &str,
        event: AuditEvent,
    ) -> Result<String, StoreError> {
        let mut w = self.write().await?;
        let existing = sqlx::query("SELECT fingerprint FROM ssh_host_keys WHERE target = $1")
            .bind(target)
            .fetch_optional(w.conn()?)
            .await?;
        if let Some(row) = existing {
            return Ok(row.try_get("fingerprint")?);
        }
        sqlx::query("INSERT INTO ssh_host_keys (target, fingerprint, public_key, pinned_us) VALUES ($1, $2, $3, $4)")
            .bind(target)
            .bind(fingerprint)
            .bind(public_key)
            .bind(now_us())
            .execute(w.conn()?)
            .await?;
        w.audit(&[event]).await?;
        w.commit().await?;
        Ok(fingerprint.to_owned())
    }

    /// Forgets a target's pinned host key (after a planned key change), audited.
    pub async fn unpin_host_key(&self, target: &str, event: AuditEvent) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        let done = sqlx::query("DELETE FROM ssh_host_keys WHERE target = $1")
            .bind(target)
            .execute(w.conn()?)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("pinned host key of {target}")));
        }
        w.audit(&[event]).await?;
        w.commit().await
    }

    /// Sets (or with `None` removes) a target's static login key, sealed by the caller, with
    /// its audit record.
    pub async fn set_ssh_static_key(
        &self,
        target: &str,
        sealed: Option<&str>,
        event: AuditEvent,
    ) -> Result<(), StoreError> {
        let key = format!("ssh.static_key:{target}");
        let mut w = self.write().await?;
        w.put_meta(&key, sealed).await?;
        w.audit(&[event]).await?;
        w.commit().await
    }

    /// A target's sealed static login key, if one is set.
    pub async fn ssh_static_key(&self, target: &str) -> Result<Option<String>, StoreError> {
        self.meta(&format!("ssh.static_key:{target}")).await
    }

    /// Records a session's start with its audit record, in one transaction: no record, no
    /// session.
    pub async fn start_ssh_session(
        &self,
        s: &SshSession,
        event: AuditEvent,
    ) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        sqlx::query(
            "INSERT INTO ssh_sessions (id, account, target, environment, login, source, node, started_us, bytes_up, bytes_down, recorded) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, 0, $9)",
        )
        .bind(&s.id)
        .bind(&s.account)
        .bind(&s.target)
        .bind(&s.environment)
        .bind(&s.login)
        .bind(&s.source)
        .bind(&s.node)
        .bind(s.started_us)
        .bind(i64::from(s.recorded))
        .execute(w.conn()?)
        .await?;
        w.audit(&[event]).await?;
        w.commit().await
    }

    /// Records a session's end with its audit record.
    pub async fn end_ssh_session(
        &self,
        id: &str,
        bytes_up: i64,
        bytes_down: i64,
        exit_status: Option<i64>,
        event: AuditEvent,
    ) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        sqlx::query("UPDATE ssh_sessions SET ended_us = $1, bytes_up = $2, bytes_down = $3, exit_status = $4 WHERE id = $5 AND ended_us IS NULL")
            .bind(now_us())
            .bind(bytes_up)
            .bind(bytes_down)
            .bind(exit_status)
            .bind(id)
            .execute(w.conn()?)
            .await?;
        w.audit(&[event]).await?;
        w.commit().await
    }

    /// Marks the key as used now.
    pub async fn touch_ssh_key(&self, fingerprint: &str) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        sqlx::query("UPDATE ssh_keys SET last_used_us = $1 WHERE fingerprint = $2")
            .bind(now_us())
            .bind(fingerprint)
            .execute(w.conn()?)
            .await?;
        w.commit().await
    }

    /// Sessions started since `since_us`, newest first (at most `limit`).
    pub async fn ssh_sessions(
        &self,
        since_us: i64,
        live_only: bool,
        limit: i64,
    ) -> Result<Vec<SshSession>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM ssh_sessions WHERE started_us >= $1 AND ($2 = 0 OR ended_us IS NULL) ORDER BY started_us DESC LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(since_us)
            .bind(i64::from(live_only))
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(session_row).collect()
    }

    /// One session.
    pub async fn ssh_session(&self, id: &str) -> Result<Option<SshSession>, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM ssh_sessions WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(session_row).transpose()
    }

    /// Asks the node serving a live session to end it. Not found when it is not live.
    pub async fn kill_ssh_session(&self, id: &str, event: AuditEvent) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        let done =
            sqlx::query("UPDATE ssh_sessions SET kill_us = $1 WHERE id = $2 AND ended_us IS NULL")
                .bind(now_us())
                .bind(id)
                .execute(w.conn()?)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("live SSH session {id}")));
        }
        w.audit(&[event]).await?;
        w.commit().await
    }

    /// Ends the sessions a node left live when it stopped (a crash or a kill -9), each with
    /// an end record; returns how many. Call before the node serves again.
    pub async fn end_orphan_ssh_sessions(&self, node: &str) -> Result<usize, StoreError> {
        let rows = sqlx::query(
            "SELECT id, account, target, login FROM ssh_sessions WHERE node = $1 AND ended_us IS NULL",
        )
        .bind(node)
        .fetch_all(self.pool())
        .await?;
        let mut ended = 0;
        for row in &rows {
            let id: String = row.try_get("id")?;
            let account: String = row.try_get("account")?;
            let target: String = row.try_get("target")?;
            let login: String = row.try_get("login")?;
            let ev = AuditEvent::new(
                rampart_audit::Actor::System,
                rampart_audit::Action::SshSessionEnd,
                target,
            )
            .outcome(rampart_audit::Outcome::Failure)
            .detail("session", id.clone())
            .detail("account", account)
            .detail("login", login)
            .detail("ended_by", "rampart stopped while it was live");
            self.end_ssh_session(&id, 0, 0, None, ev).await?;
            ended += 1;
        }
        Ok(ended)
    }

    /// Ids of this node's live sessions that an admin asked to end.
    pub async fn ssh_kills(&self, node: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM ssh_sessions WHERE node = $1 AND ended_us IS NULL AND kill_us IS NOT NULL",
        )
        .bind(node)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| r.try_get("id").map_err(StoreError::from))
            .collect()
    }
}

fn key_row(row: &AnyRow) -> Result<SshKey, StoreError> {
    Ok(SshKey {
        fingerprint: row.try_get("fingerprint")?,
        account_id: row.try_get("account_id")?,
        username: row.try_get("username")?,
        public_key: row.try_get("public_key")?,
        comment: row.try_get("comment")?,
        created_us: row.try_get("created_us")?,
        last_used_us: row.try_get("last_used_us")?,
    })
}

fn session_row(row: &AnyRow) -> Result<SshSession, StoreError> {
    Ok(SshSession {
        id: row.try_get("id")?,
        account: row.try_get("account")?,
        target: row.try_get("target")?,
        environment: row.try_get("environment")?,
        login: row.try_get("login")?,
        source: row.try_get("source")?,
        node: row.try_get("node")?,
        started_us: row.try_get("started_us")?,
        ended_us: row.try_get("ended_us")?,
        bytes_up: row.try_get("bytes_up")?,
        bytes_down: row.try_get("bytes_down")?,
        exit_status: row.try_get("exit_status")?,
        recorded: row.try_get::<i64, _>("recorded")? != 0,
        kill_us: row.try_get("kill_us")?,
    })
}
