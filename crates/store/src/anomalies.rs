//! Where the anomaly rules (ACC-7) stand in the audit log, and their alerts.

use rampart_audit::AuditEvent;

use crate::{Store, StoreError};

/// The `meta` key holding the last audit sequence number the rules have read.
const SEEN_KEY: &str = "anomaly.seq";

impl Store {
    /// The last audit sequence number the anomaly rules have read, if they ever ran.
    pub async fn anomaly_seen(&self) -> Result<Option<u64>, StoreError> {
        match self.meta(SEEN_KEY).await? {
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| StoreError::Corrupt(format!("{SEEN_KEY} = {v:?}"))),
            None => Ok(None),
        }
    }

    /// Appends the alerts raised by the records after `from` up to `seen` and moves the
    /// mark to `seen`, in one transaction: an alert is written once, or the records are read
    /// again. When the mark is no longer `from` (another node or process got there first),
    /// nothing is written and the mark is returned as `Err`.
    pub async fn record_anomalies(
        &self,
        alerts: &[AuditEvent],
        from: Option<u64>,
        seen: u64,
    ) -> Result<Result<(), Option<u64>>, StoreError> {
        let mut w = self.write().await?;
        let row = sqlx::query("SELECT value FROM meta WHERE key = $1")
            .bind(SEEN_KEY)
            .fetch_optional(w.conn()?)
            .await?;
        let current: Option<u64> = match row {
            Some(row) => {
                let v: String = sqlx::Row::try_get(&row, "value")?;
                Some(
                    v.parse()
                        .map_err(|_| StoreError::Corrupt(format!("{SEEN_KEY} = {v:?}")))?,
                )
            }
            None => None,
        };
        if current != from {
            return Ok(Err(current));
        }
        sqlx::query("DELETE FROM meta WHERE key = $1")
            .bind(SEEN_KEY)
            .execute(w.conn()?)
            .await?;
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2)")
            .bind(SEEN_KEY)
            .bind(seen.to_string())
            .execute(w.conn()?)
            .await?;
        if !alerts.is_empty() {
            w.audit(alerts).await?;
        }
        w.commit().await?;
        Ok(Ok(()))
    }
}
