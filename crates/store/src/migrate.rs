//! Schema migrations, one list per engine, applied in order and recorded.

use sqlx::Row;

use crate::{Engine, Store, StoreError};

/// One step of the schema: the same version for both engines, with each engine's SQL.
struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

/// The tables shared by both engines, in portable SQL (`BIGINT` and `TEXT` only).
const V1_COMMON: &str = "
CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    kind TEXT NOT NULL,
    owner TEXT,
    password_hash TEXT,
    totp_sealed TEXT,
    totp_last_step BIGINT,
    active BIGINT NOT NULL,
    created_us BIGINT NOT NULL,
    last_login_us BIGINT
);
CREATE TABLE recovery_codes (
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_us BIGINT,
    PRIMARY KEY (account_id, code_hash)
);
CREATE TABLE throttle (
    key TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    last_failure_s BIGINT NOT NULL,
    locked_until_s BIGINT NOT NULL
);
CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    stage TEXT NOT NULL,
    created_s BIGINT NOT NULL,
    last_seen_s BIGINT NOT NULL,
    source TEXT NOT NULL,
    revoked BIGINT NOT NULL
);
CREATE INDEX sessions_account ON sessions(account_id);
CREATE TABLE enroll_links (
    token_hash TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    expires_s BIGINT NOT NULL,
    used_s BIGINT
);
CREATE TABLE targets (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    address TEXT NOT NULL,
    environment TEXT NOT NULL,
    created_us BIGINT NOT NULL
);
CREATE TABLE roles (
    name TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE bindings (
    account TEXT NOT NULL,
    role TEXT NOT NULL REFERENCES roles(name) ON DELETE CASCADE,
    expires_us BIGINT,
    created_us BIGINT NOT NULL,
    PRIMARY KEY (account, role)
);
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    time_us BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    outcome TEXT NOT NULL,
    source TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_time ON audit_log(time_us);
CREATE INDEX audit_actor ON audit_log(actor, seq);
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
";

/// The backup catalog (BAK-1..5) and the lease that makes a scheduled run happen once per
/// cluster. A row exists only for a complete object whose SHA-256 is recorded.
const V2_BACKUPS: &str = "
CREATE TABLE backups (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    started_us BIGINT NOT NULL,
    finished_us BIGINT NOT NULL,
    status TEXT NOT NULL,
    storage TEXT NOT NULL,
    object_key TEXT NOT NULL UNIQUE,
    size_bytes BIGINT NOT NULL,
    raw_bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    recipients TEXT NOT NULL,
    row_counts TEXT NOT NULL,
    pinned BIGINT NOT NULL,
    verification TEXT NOT NULL,
    verified_us BIGINT
);
CREATE INDEX backups_source ON backups(source, started_us);
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until_us BIGINT NOT NULL
);
";

/// Application logs: per-source ingest tokens (hashed) held by service accounts, and the
/// state of alert rules (for de-duplication and resolved notices).
const V3_LOGS: &str = "
CREATE TABLE log_tokens (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    created_us BIGINT NOT NULL,
    revoked_us BIGINT
);
CREATE INDEX log_tokens_source ON log_tokens(source);
CREATE TABLE log_alerts (
    rule TEXT NOT NULL,
    source TEXT NOT NULL,
    firing_since_us BIGINT NOT NULL,
    PRIMARY KEY (rule, source)
);
";

/// SQLite only: `seq` becomes the table's rowid (`INTEGER PRIMARY KEY`; `BIGINT PRIMARY
/// KEY` is a separate index there), so appends write one b-tree instead of two and reading
/// the chain in order walks the table itself. PostgreSQL's primary key is already the
/// index scans use; nothing changes there.
const V4_AUDIT_ROWID_SQLITE: &str = "
CREATE TABLE audit_log_v4 (
    seq INTEGER PRIMARY KEY,
    time_us BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    outcome TEXT NOT NULL,
    source TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_log_v4 SELECT seq, time_us, actor, action, subject, outcome, source, details, prev_hash, hash FROM audit_log ORDER BY seq;
DROP TABLE audit_log;
ALTER TABLE audit_log_v4 RENAME TO audit_log;
CREATE INDEX audit_time ON audit_log(time_us);
CREATE INDEX audit_actor ON audit_log(actor, seq)
";

/// Access requests (EXT-1): who asked for which role, for how long, why, and who decided.
const V5_ACCESS_REQUESTS: &str = "
CREATE TABLE access_requests (
    id TEXT PRIMARY KEY,
    requester TEXT NOT NULL,
    role TEXT NOT NULL,
    hours BIGINT NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL,
    created_us BIGINT NOT NULL,
    pending_until_us BIGINT NOT NULL,
    deciders TEXT NOT NULL,
    note TEXT NOT NULL
);
CREATE INDEX access_requests_status ON access_requests(status, pending_until_us);
CREATE INDEX access_requests_requester ON access_requests(requester, created_us)
";

/// When each account last passed a second-factor check, so that restore and prune can ask
/// for one within the last few minutes (BAK-5).
const V6_LAST_MFA: &str = "ALTER TABLE accounts ADD COLUMN last_mfa_us BIGINT";
/// Service-account tokens for apps behind the front door (only their SHA-256 is stored).
const V9_APPS: &str = "
CREATE TABLE app_tokens (
    id TEXT PRIMARY KEY,
    app TEXT NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    created_us BIGINT NOT NULL,
    revoked_us BIGINT
);
CREATE INDEX app_tokens_app ON app_tokens(app);
CREATE INDEX audit_action_time ON audit_log(action, time_us)
";

/// The SSH bastion: public keys registered to accounts (one key, one account: the
/// fingerprint is the key), target host keys pinned on first use, and one row per SSH
/// session (live while `ended_us` is null; `kill_us` asks the node serving it to end it).
const V8_SSH: &str = "
CREATE TABLE ssh_keys (
    fingerprint TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    public_key TEXT NOT NULL,
    comment TEXT NOT NULL,
    created_us BIGINT NOT NULL,
    last_used_us BIGINT
);
CREATE INDEX ssh_keys_account ON ssh_keys(account_id);
CREATE TABLE ssh_host_keys (
    target TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    public_key TEXT NOT NULL,
    pinned_us BIGINT NOT NULL
);
CREATE TABLE ssh_sessions (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    target TEXT NOT NULL,
    environment TEXT NOT NULL,
    login TEXT NOT NULL,
    source TEXT NOT NULL,
    node TEXT NOT NULL,
    started_us BIGINT NOT NULL,
    ended_us BIGINT,
    bytes_up BIGINT NOT NULL,
    bytes_down BIGINT NOT NULL,
    exit_status BIGINT,
    recorded BIGINT NOT NULL,
    kill_us BIGINT
);
CREATE INDEX ssh_sessions_started ON ssh_sessions(started_us);
CREATE INDEX ssh_sessions_live ON ssh_sessions(ended_us, node)
";

/// The PostgreSQL gateway: database tokens (SHA-256 of 256-bit random values and their
/// SCRAM-SHA-256 verifier, bound to an account, a target and a database role) and the upstream credentials of each target and
/// role (AES-256-GCM sealed under the master key, bound to their row). Statements are audit
/// records, not rows here.
const V7_DB_GATEWAY: &str = "
CREATE TABLE db_tokens (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    target TEXT NOT NULL,
    db_role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    scram_stored TEXT NOT NULL,
    scram_server TEXT NOT NULL,
    issued_by TEXT NOT NULL,
    created_us BIGINT NOT NULL,
    expires_us BIGINT NOT NULL,
    revoked_us BIGINT
);
CREATE INDEX db_tokens_account ON db_tokens(account, created_us);
CREATE INDEX db_tokens_target ON db_tokens(account, target, expires_us);
CREATE TABLE db_credentials (
    target TEXT NOT NULL,
    db_role TEXT NOT NULL,
    username TEXT NOT NULL,
    secret_sealed TEXT NOT NULL,
    updated_us BIGINT NOT NULL,
    PRIMARY KEY (target, db_role)
)
";

/// Access review campaigns (ACC-7) and their items: one per grant that reached the gateway
/// when the campaign opened, with the facts the reviewer saw and the decision.
const V10_REVIEWS: &str = "
CREATE TABLE review_campaigns (
    id TEXT PRIMARY KEY,
    started_us BIGINT NOT NULL,
    deadline_us BIGINT NOT NULL,
    state TEXT NOT NULL,
    missed TEXT NOT NULL,
    started_by TEXT NOT NULL,
    closed_us BIGINT
);
CREATE INDEX review_campaigns_started ON review_campaigns(started_us);
CREATE TABLE review_items (
    id TEXT PRIMARY KEY,
    campaign TEXT NOT NULL REFERENCES review_campaigns(id) ON DELETE CASCADE,
    account TEXT NOT NULL,
    role TEXT NOT NULL,
    expires_us BIGINT,
    granted_us BIGINT NOT NULL,
    granted_by TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    last_use_us BIGINT,
    sessions BIGINT NOT NULL,
    targets TEXT NOT NULL,
    decision TEXT NOT NULL,
    reason TEXT NOT NULL,
    decided_by TEXT NOT NULL,
    decided_us BIGINT
);
CREATE INDEX review_items_campaign ON review_items(campaign, account)
";

/// WebAuthn (ACC-2): security keys and passkeys registered to accounts (the serialised
/// webauthn-rs `Passkey`: public key and signature counter, rewritten after each use), and
/// the server-side state of each ceremony in progress, bound to the account and the session
/// that began it, single use, expiring within minutes.
const V11_WEBAUTHN: &str = "
CREATE TABLE webauthn_credentials (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    credential_id TEXT NOT NULL UNIQUE,
    passkey TEXT NOT NULL,
    name TEXT NOT NULL,
    created_us BIGINT NOT NULL,
    last_used_us BIGINT
);
CREATE INDEX webauthn_credentials_account ON webauthn_credentials(account_id);
CREATE TABLE webauthn_challenges (
    session_hash TEXT NOT NULL,
    purpose TEXT NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    expires_us BIGINT NOT NULL,
    PRIMARY KEY (session_hash, purpose)
);
CREATE INDEX webauthn_challenges_expiry ON webauthn_challenges(expires_us)
";

/// The session an app host's session was opened from (the handoff), so that revoking the
/// one revokes the other; pending handoffs (one-time codes, by SHA-256), shared by every node.
const V12_SESSION_PARENT: &str = "
ALTER TABLE sessions ADD COLUMN parent_hash TEXT;
CREATE INDEX sessions_parent ON sessions(parent_hash);
CREATE TABLE app_handoffs (
    code_hash TEXT PRIMARY KEY,
    app TEXT NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    parent_hash TEXT NOT NULL,
    source TEXT NOT NULL,
    expires_us BIGINT NOT NULL
);
CREATE INDEX app_handoffs_expiry ON app_handoffs(expires_us)
";

/// Hourly counts of the audit log per action, subject and actor, and where they stand
/// (one row): see `rollup.rs`.
const V13_AUDIT_HOURLY: &str = "
CREATE TABLE audit_hourly (
    action TEXT NOT NULL,
    hour BIGINT NOT NULL,
    subject TEXT NOT NULL,
    actor TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (action, hour, subject, actor)
);
CREATE TABLE audit_rollup (
    id BIGINT PRIMARY KEY,
    mark BIGINT NOT NULL,
    from_us BIGINT NOT NULL
)
";

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "accounts, sessions, access, audit",
        sqlite: V1_COMMON,
        postgres: V1_COMMON,
    },
    Migration {
        version: 2,
        name: "backups",
        sqlite: V2_BACKUPS,
        postgres: V2_BACKUPS,
    },
    Migration {
        version: 3,
        name: "logs",
        sqlite: V3_LOGS,
        postgres: V3_LOGS,
    },
    Migration {
        version: 4,
        name: "audit sequence as the SQLite rowid",
        sqlite: V4_AUDIT_ROWID_SQLITE,
        postgres: "",
    },
    Migration {
        version: 5,
        name: "access requests",
        sqlite: V5_ACCESS_REQUESTS,
        postgres: V5_ACCESS_REQUESTS,
    },
    Migration {
        version: 6,
        name: "time of the last second-factor check",
        sqlite: V6_LAST_MFA,
        postgres: V6_LAST_MFA,
    },
    Migration {
        version: 7,
        name: "database gateway tokens and credentials",
        sqlite: V7_DB_GATEWAY,
        postgres: V7_DB_GATEWAY,
    },
    Migration {
        version: 8,
        name: "ssh bastion",
        sqlite: V8_SSH,
        postgres: V8_SSH,
    },
    Migration {
        version: 9,
        name: "apps",
        sqlite: V9_APPS,
        postgres: V9_APPS,
    },
    Migration {
        version: 10,
        name: "reviews",
        sqlite: V10_REVIEWS,
        postgres: V10_REVIEWS,
    },
    Migration {
        version: 11,
        name: "webauthn",
        sqlite: V11_WEBAUTHN,
        postgres: V11_WEBAUTHN,
    },
    Migration {
        version: 12,
        name: "session parents and app handoffs",
        sqlite: V12_SESSION_PARENT,
        postgres: V12_SESSION_PARENT,
    },
    Migration {
        version: 13,
        name: "hourly audit counts",
        sqlite: V13_AUDIT_HOURLY,
        postgres: V13_AUDIT_HOURLY,
    },
];

/// The newest schema version this build knows.
#[cfg(test)]
pub(crate) fn latest() -> i64 {
    MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Applies every migration not yet recorded, each in its own transaction.
pub(crate) async fn run(store: &Store) -> Result<(), StoreError> {
    // Every command opens the store, usually one at the newest schema, often beside a busy
    // `serve`: one plain read says so without taking the write lock (once per migration).
    if all_applied(store).await {
        return Ok(());
    }
    let mut w = store.write().await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_us BIGINT NOT NULL)",
    )
    .execute(w.conn()?)
    .await?;
    w.commit().await?;
    for m in MIGRATIONS {
        let mut w = store.write().await?;
        let done = sqlx::query("SELECT version FROM schema_migrations WHERE version = $1")
            .bind(m.version)
            .fetch_optional(w.conn()?)
            .await?;
        if done.is_some() {
            continue;
        }
        let sql = match store.engine() {
            Engine::Sqlite => m.sqlite,
            Engine::Postgres => m.postgres,
        };
        for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            sqlx::query(statement).execute(w.conn()?).await?;
        }
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, applied_us) VALUES ($1, $2, $3)",
        )
        .bind(m.version)
        .bind(m.name)
        .bind(crate::now_us())
        .execute(w.conn()?)
        .await?;
        w.commit().await?;
        tracing::info!(
            version = m.version,
            name = m.name,
            "applied schema migration"
        );
    }
    Ok(())
}

/// Whether every migration is recorded as applied. False when the table is missing or
/// cannot be read: the locked path then decides, one migration at a time.
async fn all_applied(store: &Store) -> bool {
    let Ok(rows) = sqlx::query("SELECT version FROM schema_migrations")
        .fetch_all(store.pool())
        .await
    else {
        return false;
    };
    let applied: std::collections::BTreeSet<i64> = rows
        .iter()
        .filter_map(|r| r.try_get::<i64, _>("version").ok())
        .collect();
    MIGRATIONS.iter().all(|m| applied.contains(&m.version))
}

impl Store {
    /// The newest applied schema version.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        version(self).await
    }
}

async fn version(store: &Store) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations")
        .fetch_one(store.pool())
        .await?;
    Ok(row.try_get::<i64, _>("v")?)
}
