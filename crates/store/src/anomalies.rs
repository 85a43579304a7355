//! Where the anomaly rules (ACC-7) stand in the audit log, and their alerts.

use rampart_audit::AuditEvent;

use crate::{Store, StoreError};

/// The `meta` key holding the last audit sequence number the rules have read.
const SEEN_KEY: &str = "anomaly.seq";

/// The `meta` keys of the rules' saved state and of the sequence number it has read to.
const STATE_KEY: &str = "anomaly.state";
const STATE_SEQ_KEY: &str = "anomaly.state.seq";

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

    /// The anomaly rules' saved state (text, see [`Store::save_anomaly_state`]) and the
    /// audit sequence number it has read up to, if one was saved. A number that does not
    /// parse makes the state unusable, not the rules: `None` (they learn the whole log, and
    /// their next save replaces it).
    pub async fn anomaly_state(&self) -> Result<Option<(u64, String)>, StoreError> {
        // One statement: the state and its number as one save left them.
        let rows = sqlx::query("SELECT key, value FROM meta WHERE key IN ($1, $2)")
            .bind(STATE_KEY)
            .bind(STATE_SEQ_KEY)
            .fetch_all(self.pool())
            .await?;
        let mut state = None;
        let mut seq = None;
        for row in rows {
            let key: String = sqlx::Row::try_get(&row, "key")?;
            let value: String = sqlx::Row::try_get(&row, "value")?;
            if key == STATE_SEQ_KEY {
                seq = value.parse::<u64>().ok();
                if seq.is_none() {
                    tracing::warn!(%value, "the anomaly rules' saved state has no usable sequence number; it is not used");
                }
            } else {
                state = Some(value);
            }
        }
        Ok(seq.zip(state))
    }

    /// Saves the anomaly rules' state after reading the audit log up to `seq`, unless a
    /// state that has read further is saved already (another node's). Returns whether it
    /// was saved.
    pub async fn save_anomaly_state(&self, seq: u64, state: &str) -> Result<bool, StoreError> {
        let mut w = self.write().await?;
        let saved = w.meta(STATE_SEQ_KEY).await?;
        if saved.is_some_and(|saved| saved.parse::<u64>().is_ok_and(|saved| saved >= seq)) {
            return Ok(false);
        }
        w.put_meta(STATE_KEY, Some(state)).await?;
        w.put_meta(STATE_SEQ_KEY, Some(&seq.to_string())).await?;
        w.commit().await?;
        Ok(true)
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
        let current: Option<u64> = match w.meta(SEEN_KEY).await? {
            Some(v) => Some(
                v.parse()
                    .map_err(|_| StoreError::Corrupt(format!("{SEEN_KEY} = {v:?}")))?,
            ),
            None => None,
        };
        if current != from {
            return Ok(Err(current));
        }
        w.put_meta(SEEN_KEY, Some(&seen.to_string())).await?;
        if !alerts.is_empty() {
            w.audit(alerts).await?;
        }
        w.commit().await?;
        Ok(Ok(()))
    }
}
