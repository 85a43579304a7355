//! Ingest tokens of log sources (LOG-1): each held by an active service account, stored as
//! the SHA-256 of a 256-bit random value, revocable per source; and alert-rule state.

use rampart_audit::AuditEvent;
use sqlx::Row;

use crate::accounts::active_service_account;
use crate::{Store, StoreError, now_us};

/// A token as listed (never its value: only the hash is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogToken {
    /// Token id (UUID v7).
    pub id: String,
    /// The log source it pushes as.
    pub source: String,
    /// The service account holding it.
    pub account: String,
    /// Issued (µs).
    pub created_us: i64,
    /// Revoked (µs), if it was.
    pub revoked_us: Option<i64>,
}

impl Store {
    /// Stores a new token's hash for `source`, held by the service account `account`, and
    /// audits it in one transaction. The account must exist, be a service and be active.
    pub async fn create_log_token(
        &self,
        source: &str,
        account: &str,
        token_hash: &str,
        event: AuditEvent,
    ) -> Result<LogToken, StoreError> {
        let mut w = self.write().await?;
        let account_id = active_service_account(&mut w, account).await?;
        let id = uuid::Uuid::now_v7().to_string();
        let created_us = now_us();
        sqlx::query(
            "INSERT INTO log_tokens (id, source, account_id, token_hash, created_us, revoked_us) VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(&id)
        .bind(source)
        .bind(&account_id)
        .bind(token_hash)
        .bind(created_us)
        .execute(w.conn()?)
        .await?;
        w.audit(&[event]).await?;
        w.commit().await?;
        Ok(LogToken {
            id,
            source: source.to_owned(),
            account: account.to_owned(),
            created_us,
            revoked_us: None,
        })
    }

    /// Revokes every live token of `source`, audited in the same transaction; returns how
    /// many were revoked.
    pub async fn revoke_log_tokens(
        &self,
        source: &str,
        event: AuditEvent,
    ) -> Result<u64, StoreError> {
        let mut w = self.write().await?;
        let done = sqlx::query(
            "UPDATE log_tokens SET revoked_us = $1 WHERE source = $2 AND revoked_us IS NULL",
        )
        .bind(now_us())
        .bind(source)
        .execute(w.conn()?)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "a live token of source {source}"
            )));
        }
        w.audit(&[event]).await?;
        w.commit().await?;
        Ok(done.rows_affected())
    }

    /// Every token, newest first.
    pub async fn log_tokens(&self) -> Result<Vec<LogToken>, StoreError> {
        let rows = sqlx::query(
            "SELECT t.id, t.source, a.username, t.created_us, t.revoked_us FROM log_tokens t JOIN accounts a ON a.id = t.account_id ORDER BY t.created_us DESC",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LogToken {
                    id: r.try_get("id")?,
                    source: r.try_get("source")?,
                    account: r.try_get("username")?,
                    created_us: r.try_get("created_us")?,
                    revoked_us: r.try_get("revoked_us")?,
                })
            })
            .collect()
    }

    /// What a presented token's hash is worth: `Ok(source)` for a live token of an active
    /// service account, `Err(Some(source))` for a revoked one or a disabled holder,
    /// `Err(None)` for an unknown one.
    pub async fn log_token_source(
        &self,
        token_hash: &str,
    ) -> Result<Result<String, Option<String>>, StoreError> {
        let row = sqlx::query(
            "SELECT t.source, t.revoked_us, a.active FROM log_tokens t JOIN accounts a ON a.id = t.account_id WHERE t.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(Err(None));
        };
        let source: String = row.try_get("source")?;
        let revoked: Option<i64> = row.try_get("revoked_us")?;
        let active: i64 = row.try_get("active")?;
        if revoked.is_some() || active == 0 {
            return Ok(Err(Some(source)));
        }
        Ok(Ok(source))
    }

    /// Marks an alert (rule, source) as firing; `false` when it already was (de-duplication).
    pub async fn log_alert_fire(
        &self,
        rule: &str,
        source: &str,
        since_us: i64,
        event: AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut w = self.write().await?;
        let existing = sqlx::query("SELECT rule FROM log_alerts WHERE rule = $1 AND source = $2")
            .bind(rule)
            .bind(source)
            .fetch_optional(w.conn()?)
            .await?;
        if existing.is_some() {
            return Ok(false);
        }
        sqlx::query("INSERT INTO log_alerts (rule, source, firing_since_us) VALUES ($1, $2, $3)")
            .bind(rule)
            .bind(source)
            .bind(since_us)
            .execute(w.conn()?)
            .await?;
        w.audit(&[event]).await?;
        w.commit().await?;
        Ok(true)
    }

    /// Clears a firing alert; `false` when it was not firing.
    pub async fn log_alert_resolve(
        &self,
        rule: &str,
        source: &str,
        event: AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut w = self.write().await?;
        let done = sqlx::query("DELETE FROM log_alerts WHERE rule = $1 AND source = $2")
            .bind(rule)
            .bind(source)
            .execute(w.conn()?)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        w.audit(&[event]).await?;
        w.commit().await?;
        Ok(true)
    }

    /// Alerts firing now: (rule, source, since µs).
    pub async fn log_alerts_firing(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT rule, source, firing_since_us FROM log_alerts ORDER BY firing_since_us DESC",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("rule")?,
                    r.try_get("source")?,
                    r.try_get("firing_since_us")?,
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use rampart_audit::{Action, Actor, AuditEvent};
    use rampart_identity::{AccountKind, Email, Username};

    use crate::{NewAccount, Store, StoreError};

    fn ev(action: Action) -> AuditEvent {
        AuditEvent::new(Actor::System, action, "t")
    }

    fn account(name: &str, kind: AccountKind, owner: Option<&str>) -> NewAccount {
        NewAccount {
            username: Username::parse(name).unwrap(),
            email: Email::parse(&format!("{name}@example.com")).unwrap(),
            display_name: name.into(),
            kind,
            owner: owner.map(|o| Username::parse(o).unwrap()),
        }
    }

    async fn tokens_and_alerts(store: &Store) {
        store
            .create_account(
                &account("owner", AccountKind::Person, None),
                ev(Action::UserCreate),
            )
            .await
            .unwrap();
        store
            .create_account(
                &account("svc-api", AccountKind::Service, Some("owner")),
                ev(Action::UserCreate),
            )
            .await
            .unwrap();
        // Only a service account may hold a token.
        assert!(matches!(
            store
                .create_log_token("api", "owner", "h0", ev(Action::LogTokenCreate))
                .await,
            Err(StoreError::NotFound(_))
        ));
        store
            .create_log_token("api", "svc-api", "h1", ev(Action::LogTokenCreate))
            .await
            .unwrap();
        assert_eq!(
            store.log_token_source("h1").await.unwrap(),
            Ok("api".into())
        );
        assert_eq!(store.log_token_source("nope").await.unwrap(), Err(None));
        assert_eq!(
            store
                .revoke_log_tokens("api", ev(Action::LogTokenRevoke))
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            store.log_token_source("h1").await.unwrap(),
            Err(Some("api".into()))
        );
        assert_eq!(store.log_tokens().await.unwrap().len(), 1);
        // An alert fires once until it resolves.
        assert!(
            store
                .log_alert_fire("r", "api", 1, ev(Action::LogAlert))
                .await
                .unwrap()
        );
        assert!(
            !store
                .log_alert_fire("r", "api", 2, ev(Action::LogAlert))
                .await
                .unwrap()
        );
        assert_eq!(store.log_alerts_firing().await.unwrap().len(), 1);
        assert!(
            store
                .log_alert_resolve("r", "api", ev(Action::LogAlert))
                .await
                .unwrap()
        );
        assert!(
            !store
                .log_alert_resolve("r", "api", ev(Action::LogAlert))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn log_tokens_and_alerts_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
        let store = Store::open(&url).await.unwrap();
        tokens_and_alerts(&store).await;
        store.close().await;
    }

    #[tokio::test]
    async fn log_tokens_and_alerts_on_postgres() {
        let pg = rampart_testkit::Postgres::start();
        let store = Store::open(pg.url()).await.unwrap();
        tokens_and_alerts(&store).await;
        store.close().await;
    }
}
