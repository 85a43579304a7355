//! Targets, roles and bindings.

use jiff::Timestamp;
use rampart_access::{Binding, Role, RoleName, Target, TargetKind, TargetName};
use rampart_audit::AuditEvent;
use rampart_core::Environment;
use sqlx::Row;

use crate::{Store, StoreError, conflict, now_us};

impl Store {
    /// Registers or replaces a target.
    pub async fn put_target(&self, t: &Target, event: AuditEvent) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        sqlx::query("DELETE FROM targets WHERE name = $1")
            .bind(t.name.as_str())
            .execute(w.conn()?)
            .await?;
        sqlx::query("INSERT INTO targets (name, kind, address, environment, created_us) VALUES ($1, $2, $3, $4, $5)")
            .bind(t.name.as_str())
            .bind(t.kind.as_str())
            .bind(&t.address)
            .bind(t.environment.as_str())
            .bind(now_us())
            .execute(w.conn()?)
            .await?;
        w.audit(&[event]).await?;
        w.commit().await
    }

    /// Removes a target.
    pub async fn remove_target(&self, name: &str, event: AuditEvent) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        let done = sqlx::query("DELETE FROM targets WHERE name = $1")
            .bind(name)
            .execute(w.conn()?)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("target {name}")));
        }
        w.audit(&[event]).await?;
        w.commit().await
    }

    /// Every target, by name.
    pub async fn targets(&self) -> Result<Vec<Target>, StoreError> {
        let rows =
            sqlx::query("SELECT name, kind, address, environment FROM targets ORDER BY name")
                .fetch_all(self.pool())
                .await?;
        rows.iter()
            .map(|row| {
                let name: String = row.try_get("name")?;
                let kind: String = row.try_get("kind")?;
                let env: String = row.try_get("environment")?;
                Ok(Target {
                    name: TargetName::parse(&name)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    kind: TargetKind::parse(&kind)
                        .ok_or_else(|| StoreError::Corrupt(format!("target kind {kind:?}")))?,
                    address: row.try_get("address")?,
                    environment: Environment::parse(&env)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                })
            })
            .collect()
    }

    /// Creates or replaces a role. An existing role is updated in place: the grants to it
    /// stay (deleting and inserting it would cascade them away).
    pub async fn put_role(&self, role: &Role, event: AuditEvent) -> Result<(), StoreError> {
        let body = serde_json::to_string(role).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut w = self.write().await?;
        let updated = sqlx::query("UPDATE roles SET body = $2 WHERE name = $1")
            .bind(role.name.as_str())
            .bind(&body)
            .execute(w.conn()?)
            .await?;
        if updated.rows_affected() == 0 {
            sqlx::query("INSERT INTO roles (name, body) VALUES ($1, $2)")
                .bind(role.name.as_str())
                .bind(body)
                .execute(w.conn()?)
                .await?;
        }
        w.audit(&[event]).await?;
        w.commit().await
    }

    /// Deletes a role and its bindings.
    pub async fn remove_role(&self, name: &str, event: AuditEvent) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        sqlx::query("DELETE FROM bindings WHERE role = $1")
            .bind(name)
            .execute(w.conn()?)
            .await?;
        let done = sqlx::query("DELETE FROM roles WHERE name = $1")
            .bind(name)
            .execute(w.conn()?)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("role {name}")));
        }
        w.audit(&[event]).await?;
        w.commit().await
    }

    /// Every role, by name.
    pub async fn roles(&self) -> Result<Vec<Role>, StoreError> {
        let rows = sqlx::query("SELECT body FROM roles ORDER BY name")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|row| {
                let body: String = row.try_get("body")?;
                serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(format!("role: {e}")))
            })
            .collect()
    }

    /// Grants a role to an account (replacing an earlier binding of the same pair).
    pub async fn bind_role(&self, b: &Binding, event: AuditEvent) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        let exists = sqlx::query("SELECT name FROM roles WHERE name = $1")
            .bind(b.role.as_str())
            .fetch_optional(w.conn()?)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound(format!("role {}", b.role)));
        }
        sqlx::query("DELETE FROM bindings WHERE account = $1 AND role = $2")
            .bind(&b.account)
            .bind(b.role.as_str())
            .execute(w.conn()?)
            .await?;
        sqlx::query(
            "INSERT INTO bindings (account, role, expires_us, created_us) VALUES ($1, $2, $3, $4)",
        )
        .bind(&b.account)
        .bind(b.role.as_str())
        .bind(b.expires_at.map(|t| t.as_microsecond()))
        .bind(now_us())
        .execute(w.conn()?)
        .await
        .map_err(conflict(format!("binding of {} to {}", b.account, b.role)))?;
        w.audit(&[event]).await?;
        w.commit().await
    }

    /// Removes a role from an account.
    pub async fn unbind_role(
        &self,
        account: &str,
        role: &str,
        event: AuditEvent,
    ) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        let done = sqlx::query("DELETE FROM bindings WHERE account = $1 AND role = $2")
            .bind(account)
            .bind(role)
            .execute(w.conn()?)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "binding of {account} to {role}"
            )));
        }
        w.audit(&[event]).await?;
        w.commit().await
    }

    /// Bindings, of one account or of all.
    pub async fn bindings(&self, account: Option<&str>) -> Result<Vec<Binding>, StoreError> {
        let rows = match account {
            Some(a) => sqlx::query(
                "SELECT account, role, expires_us FROM bindings WHERE account = $1 ORDER BY role",
            )
            .bind(a)
            .fetch_all(self.pool())
            .await?,
            None => {
                sqlx::query("SELECT account, role, expires_us FROM bindings ORDER BY account, role")
                    .fetch_all(self.pool())
                    .await?
            }
        };
        rows.iter()
            .map(|row| {
                let role: String = row.try_get("role")?;
                let expires: Option<i64> = row.try_get("expires_us")?;
                Ok(Binding {
                    account: row.try_get("account")?,
                    role: RoleName::parse(&role).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    expires_at: expires
                        .map(Timestamp::from_microsecond)
                        .transpose()
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                })
            })
            .collect()
    }

    /// A stored value from the `meta` table.
    pub async fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|r| r.try_get("value")).transpose()?)
    }

    /// Sets (`Some`) or removes (`None`) a value in the `meta` table with its audit event,
    /// in one transaction.
    pub async fn set_meta_audited(
        &self,
        key: &str,
        value: Option<&str>,
        event: AuditEvent,
    ) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        w.put_meta(key, value).await?;
        w.audit(&[event]).await?;
        w.commit().await
    }

    /// Sets a value in the `meta` table.
    pub async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        w.put_meta(key, Some(value)).await?;
        w.commit().await
    }
}
