//! The backup catalog and the scheduler's lease.
//!
//! A catalog row is inserted only after its object is complete and hashed
//! ([`Store::insert_backup`]); every change to the catalog carries its audit event into
//! the same transaction.

use rampart_audit::AuditEvent;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError, conflict};

/// One backup as catalogued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupRow {
    /// Id (UUID v7).
    pub id: String,
    /// Source name.
    pub source: String,
    /// Source kind (`postgres`, `sqlite`, `command`).
    pub kind: String,
    /// When the dump began (µs).
    pub started_us: i64,
    /// When the object was complete (µs).
    pub finished_us: i64,
    /// `complete` (the only status a run records; the planner knows others).
    pub status: String,
    /// Where the object is: `dir` or `s3:BUCKET`.
    pub storage: String,
    /// The object's key.
    pub object_key: String,
    /// Size of the stored (compressed, encrypted) object.
    pub size_bytes: i64,
    /// Size of the dump before compression.
    pub raw_bytes: i64,
    /// SHA-256 of the stored object, hex.
    pub sha256: String,
    /// The age recipients it was encrypted to, JSON list.
    pub recipients: String,
    /// Rows per table at dump time (PostgreSQL), JSON object.
    pub row_counts: String,
    /// Legal hold.
    pub pinned: bool,
    /// `unverified`, `passed` or `failed`.
    pub verification: String,
    /// When it was last verified (µs).
    pub verified_us: Option<i64>,
}

const COLUMNS: &str = "id, source, kind, started_us, finished_us, status, storage, object_key, size_bytes, raw_bytes, sha256, recipients, row_counts, pinned, verification, verified_us";

impl Store {
    /// Catalogs a complete backup and audits it in one transaction.
    pub async fn insert_backup(&self, b: &BackupRow, event: AuditEvent) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        sqlx::query(&format!(
            "INSERT INTO backups ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
        ))
        .bind(&b.id)
        .bind(&b.source)
        .bind(&b.kind)
        .bind(b.started_us)
        .bind(b.finished_us)
        .bind(&b.status)
        .bind(&b.storage)
        .bind(&b.object_key)
        .bind(b.size_bytes)
        .bind(b.raw_bytes)
        .bind(&b.sha256)
        .bind(&b.recipients)
        .bind(&b.row_counts)
        .bind(i64::from(b.pinned))
        .bind(&b.verification)
        .bind(b.verified_us)
        .execute(w.conn()?)
        .await
        .map_err(conflict(format!("backup {}", b.id)))?;
        w.audit(&[event]).await?;
        w.commit().await
    }

    /// Every catalogued backup, oldest first.
    pub async fn backups(&self) -> Result<Vec<BackupRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM backups ORDER BY started_us, id"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(backup).collect()
    }

    /// One backup by id.
    pub async fn backup(&self, id: &str) -> Result<Option<BackupRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM backups WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(backup).transpose()
    }

    /// Pins (legal hold) or unpins a backup.
    pub async fn set_backup_pinned(
        &self,
        id: &str,
        pinned: bool,
        event: AuditEvent,
    ) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        let done = sqlx::query("UPDATE backups SET pinned = $1 WHERE id = $2")
            .bind(i64::from(pinned))
            .bind(id)
            .execute(w.conn()?)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("backup {id}")));
        }
        w.audit(&[event]).await?;
        w.commit().await
    }

    /// Records the result of a verification.
    pub async fn record_backup_verification(
        &self,
        id: &str,
        verification: &str,
        at_us: i64,
        event: AuditEvent,
    ) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        let done =
            sqlx::query("UPDATE backups SET verification = $1, verified_us = $2 WHERE id = $3")
                .bind(verification)
                .bind(at_us)
                .bind(id)
                .execute(w.conn()?)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("backup {id}")));
        }
        w.audit(&[event]).await?;
        w.commit().await
    }

    /// Removes a backup's catalog row (after its object was deleted). A pinned backup is
    /// never removed.
    pub async fn delete_backup(&self, id: &str, event: AuditEvent) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        let done = sqlx::query("DELETE FROM backups WHERE id = $1 AND pinned = 0")
            .bind(id)
            .execute(w.conn()?)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("unpinned backup {id}")));
        }
        w.audit(&[event]).await?;
        w.commit().await
    }

    /// Takes or renews the lease `name` for `holder` until `until_us`, if it is free, expired
    /// at `now_us`, or already held by `holder`. Returns whether `holder` holds it now.
    pub async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now_us: i64,
        until_us: i64,
    ) -> Result<bool, StoreError> {
        let mut w = self.write().await?;
        let current = sqlx::query("SELECT holder, until_us FROM leases WHERE name = $1")
            .bind(name)
            .fetch_optional(w.conn()?)
            .await?;
        let free = match &current {
            None => true,
            Some(row) => {
                let h: String = row.try_get("holder")?;
                let until: i64 = row.try_get("until_us")?;
                h == holder || until <= now_us
            }
        };
        if !free {
            return Ok(false);
        }
        if current.is_some() {
            sqlx::query("UPDATE leases SET holder = $1, until_us = $2 WHERE name = $3")
                .bind(holder)
                .bind(until_us)
                .bind(name)
                .execute(w.conn()?)
                .await?;
        } else {
            sqlx::query("INSERT INTO leases (name, holder, until_us) VALUES ($1, $2, $3)")
                .bind(name)
                .bind(holder)
                .bind(until_us)
                .execute(w.conn()?)
                .await?;
        }
        w.commit().await?;
        Ok(true)
    }
}

fn backup(row: &AnyRow) -> Result<BackupRow, StoreError> {
    Ok(BackupRow {
        id: row.try_get("id")?,
        source: row.try_get("source")?,
        kind: row.try_get("kind")?,
        started_us: row.try_get("started_us")?,
        finished_us: row.try_get("finished_us")?,
        status: row.try_get("status")?,
        storage: row.try_get("storage")?,
        object_key: row.try_get("object_key")?,
        size_bytes: row.try_get("size_bytes")?,
        raw_bytes: row.try_get("raw_bytes")?,
        sha256: row.try_get("sha256")?,
        recipients: row.try_get("recipients")?,
        row_counts: row.try_get("row_counts")?,
        pinned: row.try_get::<i64, _>("pinned")? != 0,
        verification: row.try_get("verification")?,
        verified_us: row.try_get("verified_us")?,
    })
}
