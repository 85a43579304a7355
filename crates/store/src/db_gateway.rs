//! The PostgreSQL gateway's rows: database tokens (only their SHA-256 is stored) and the
//! sealed upstream credential of each target and database role.

use rampart_audit::AuditEvent;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError, now_us};

/// A database token as listed (never its value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbToken {
    /// Token id (UUID v7).
    pub id: String,
    /// The account it lets in.
    pub account: String,
    /// The target it is bound to.
    pub target: String,
    /// The database role it logs in as.
    pub db_role: String,
    /// Who issued it (`web-mfa`, `cli:root`).
    pub issued_by: String,
    /// Issued (µs).
    pub created_us: i64,
    /// Expires (µs).
    pub expires_us: i64,
    /// Revoked (µs), if it was.
    pub revoked_us: Option<i64>,
}

/// A new token's row.
#[derive(Debug, Clone)]
pub struct NewDbToken<'a> {
    /// The account.
    pub account: &'a str,
    /// The target.
    pub target: &'a str,
    /// The database role.
    pub db_role: &'a str,
    /// SHA-256 of the token, hex.
    pub token_hash: &'a str,
    /// SCRAM-SHA-256 `StoredKey`, hex.
    pub scram_stored: &'a str,
    /// SCRAM-SHA-256 `ServerKey`, hex.
    pub scram_server: &'a str,
    /// Who issues it.
    pub issued_by: &'a str,
    /// Expiry (µs).
    pub expires_us: i64,
}

/// A sealed upstream credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbCredential {
    /// The target.
    pub target: String,
    /// The database role it is for.
    pub db_role: String,
    /// The user name to log in upstream with.
    pub username: String,
    /// The password sealed under the master key (context `db-credential:TARGET:ROLE`).
    pub secret_sealed: String,
    /// Last set (µs).
    pub updated_us: i64,
}

const TOKEN_COLUMNS: &str =
    "id, account, target, db_role, issued_by, created_us, expires_us, revoked_us";

impl Store {
    /// Stores a new database token's hash, audited in the same transaction.
    pub async fn create_db_token(
        &self,
        new: &NewDbToken<'_>,
        event: AuditEvent,
    ) -> Result<DbToken, StoreError> {
        let mut w = self.write().await?;
        let id = uuid::Uuid::now_v7().to_string();
        let created_us = now_us();
        sqlx::query(
            "INSERT INTO db_tokens (id, account, target, db_role, token_hash, scram_stored, scram_server, issued_by, created_us, expires_us, revoked_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL)",
        )
        .bind(&id)
        .bind(new.account)
        .bind(new.target)
        .bind(new.db_role)
        .bind(new.token_hash)
        .bind(new.scram_stored)
        .bind(new.scram_server)
        .bind(new.issued_by)
        .bind(created_us)
        .bind(new.expires_us)
        .execute(w.conn()?)
        .await?;
        w.audit(&[event]).await?;
        w.commit().await?;
        Ok(DbToken {
            id,
            account: new.account.to_owned(),
            target: new.target.to_owned(),
            db_role: new.db_role.to_owned(),
            issued_by: new.issued_by.to_owned(),
            created_us,
            expires_us: new.expires_us,
            revoked_us: None,
        })
    }

    /// Tokens of one account (or all), newest first, at most 1,000.
    pub async fn db_tokens(&self, account: Option<&str>) -> Result<Vec<DbToken>, StoreError> {
        let rows = match account {
            Some(a) => {
                sqlx::query(&format!(
                    "SELECT {TOKEN_COLUMNS} FROM db_tokens WHERE account = $1 ORDER BY created_us DESC LIMIT 1000"
                ))
                .bind(a)
                .fetch_all(self.pool())
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {TOKEN_COLUMNS} FROM db_tokens ORDER BY created_us DESC LIMIT 1000"
                ))
                .fetch_all(self.pool())
                .await?
            }
        };
        rows.iter().map(token).collect()
    }

    /// The token with this hash, whatever its state (the caller decides).
    pub async fn db_token_by_hash(&self, token_hash: &str) -> Result<Option<DbToken>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM db_tokens WHERE token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(token).transpose()
    }

    /// The live tokens of `account` on `target` at `now_us`, each with its SCRAM
    /// `StoredKey` and `ServerKey` (hex), newest first, at most 100.
    pub async fn live_db_tokens(
        &self,
        account: &str,
        target: &str,
        now_us: i64,
    ) -> Result<Vec<(DbToken, String, String)>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS}, scram_stored, scram_server FROM db_tokens WHERE account = $1 AND target = $2 AND expires_us > $3 AND revoked_us IS NULL ORDER BY created_us DESC LIMIT 100"
        ))
        .bind(account)
        .bind(target)
        .bind(now_us)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    token(r)?,
                    r.try_get("scram_stored")?,
                    r.try_get("scram_server")?,
                ))
            })
            .collect()
    }

    /// Revokes a live token by id (of `account`, when given), audited.
    pub async fn revoke_db_token(
        &self,
        id: &str,
        account: Option<&str>,
        event: AuditEvent,
    ) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        let done = sqlx::query(
            "UPDATE db_tokens SET revoked_us = $1 WHERE id = $2 AND revoked_us IS NULL AND ($3 = 0 OR account = $4)",
        )
        .bind(now_us())
        .bind(id)
        .bind(i64::from(account.is_some()))
        .bind(account.unwrap_or(""))
        .execute(w.conn()?)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("live database token {id}")));
        }
        w.audit(&[event]).await?;
        w.commit().await
    }

    /// Sets (or replaces) the upstream credential of a target and role, audited.
    pub async fn put_db_credential(
        &self,
        cred: &DbCredential,
        event: AuditEvent,
    ) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        sqlx::query("DELETE FROM db_credentials WHERE target = $1 AND db_role = $2")
            .bind(&cred.target)
            .bind(&cred.db_role)
            .execute(w.conn()?)
            .await?;
        sqlx::query(
            "INSERT INTO db_credentials (target, db_role, username, secret_sealed, updated_us) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&cred.target)
        .bind(&cred.db_role)
        .bind(&cred.username)
        .bind(&cred.secret_sealed)
        .bind(cred.updated_us)
        .execute(w.conn()?)
        .await?;
        w.audit(&[event]).await?;
        w.commit().await
    }

    /// The credential of a target and role.
    pub async fn db_credential(
        &self,
        target: &str,
        db_role: &str,
    ) -> Result<Option<DbCredential>, StoreError> {
        let row = sqlx::query(
            "SELECT target, db_role, username, secret_sealed, updated_us FROM db_credentials WHERE target = $1 AND db_role = $2",
        )
        .bind(target)
        .bind(db_role)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(DbCredential {
                target: r.try_get("target")?,
                db_role: r.try_get("db_role")?,
                username: r.try_get("username")?,
                secret_sealed: r.try_get("secret_sealed")?,
                updated_us: r.try_get("updated_us")?,
            })
        })
        .transpose()
    }
}

impl Store {
    /// The records of one gateway session (start, statements, cancels, end), oldest first,
    /// at most 5,000. `session` must be a UUID; the statements are found between the
    /// session's start and end records.
    pub async fn db_session_records(
        &self,
        session: &str,
    ) -> Result<Vec<rampart_audit::AuditRecord>, StoreError> {
        if uuid::Uuid::parse_str(session).is_err() {
            return Ok(Vec::new());
        }
        let needle = format!("%\"session\":\"{session}\"%");
        // The session's own stretch of the log, from its start record to its end record
        // (or the newest, while it runs), walked in sequence order. Bounded by time alone,
        // SQLite walked the log from its very first record until 5,000 matched (a second
        // and more on a log of millions of gateway statements).
        let bound = |sql: &'static str| {
            sqlx::query_scalar::<_, Option<i64>>(sql)
                .bind(&needle)
                .fetch_one(self.pool())
        };
        let Some(start) = bound(
            "SELECT MIN(seq) FROM audit_log WHERE action = 'db.session.start' AND details LIKE $1",
        )
        .await?
        else {
            return Ok(Vec::new());
        };
        let end = bound(
            "SELECT MAX(seq) FROM audit_log WHERE action = 'db.session.end' AND details LIKE $1",
        )
        .await?
        .unwrap_or(i64::MAX);
        let rows = sqlx::query(&format!(
            "SELECT {} FROM audit_log WHERE seq >= $1 AND seq <= $2 AND action LIKE 'db.%' AND details LIKE $3 ORDER BY seq LIMIT 5000",
            crate::audit::RECORD_COLUMNS
        ))
        .bind(start)
        .bind(end)
        .bind(&needle)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(crate::audit::record).collect()
    }

    /// Audit records of one action since `since_us`, counted per subject (the target) and
    /// actor (the person), in that order: the LOG-4 and ACC-5 evidence. From the hourly
    /// counts when they reach back that far, else from the log.
    pub async fn audit_counts(
        &self,
        action: &str,
        since_us: i64,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        if let Some(counts) = self.rolled_counts(action, since_us).await? {
            return Ok(counts);
        }
        let rows = sqlx::query(
            "SELECT subject, actor, COUNT(*) AS n FROM audit_log WHERE action = $1 AND time_us >= $2 GROUP BY subject, actor ORDER BY subject, actor",
        )
        .bind(action)
        .bind(since_us)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("subject")?, r.try_get("actor")?, r.try_get("n")?)))
            .collect()
    }
}

fn token(r: &AnyRow) -> Result<DbToken, StoreError> {
    Ok(DbToken {
        id: r.try_get("id")?,
        account: r.try_get("account")?,
        target: r.try_get("target")?,
        db_role: r.try_get("db_role")?,
        issued_by: r.try_get("issued_by")?,
        created_us: r.try_get("created_us")?,
        expires_us: r.try_get("expires_us")?,
        revoked_us: r.try_get("revoked_us")?,
    })
}
