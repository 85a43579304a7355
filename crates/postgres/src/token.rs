//! Database tokens: what a person presents as the password, after an MFA login (web) or
//! from an operator at the server's console (CLI). Only the SHA-256 is stored; a token is
//! bound to one account, one target and one database role, and expires.

use rampart_access::{Principal, Request, Target, TargetKind, authorize};
use rampart_audit::{Action, Actor, AuditEvent};
use rampart_store::{DbToken, NewDbToken, Store, StoreError};

use crate::config::MAX_TOKEN_HOURS;

/// Prefix of every token, so a leaked one is recognizable (and scrubbable).
pub const PREFIX: &str = "rdb_";

/// Why a token was not issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// No such active account.
    #[error("no active account {0}")]
    NoAccount(String),
    /// No such PostgreSQL target.
    #[error("no postgres target {0}")]
    NoTarget(String),
    /// The lifetime is out of range.
    #[error("a database token lives 1 to {MAX_TOKEN_HOURS} hours, not {0}")]
    Lifetime(u32),
    /// The account holds no grant for the target and role.
    #[error("access denied: {0}")]
    Denied(rampart_access::Denial),
    /// The random generator failed.
    #[error("{0}")]
    Random(#[from] rampart_identity::RandomError),
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// A token just issued: the value is shown once, then only its row exists.
#[derive(Debug)]
pub struct Issued {
    /// The value to use as the password.
    pub token: rampart_core::Secret<String>,
    /// Its row.
    pub row: DbToken,
}

/// Issues a token for `account` on `target` as `db_role`, valid `hours`, after checking
/// that the account holds a grant for it now. `issued_by` says which MFA login or operator
/// asked (`web-mfa`, `cli:root`).
pub async fn issue(
    store: &Store,
    account: &str,
    target: &str,
    db_role: &str,
    hours: u32,
    issued_by: &str,
    actor: Actor,
) -> Result<Issued, IssueError> {
    if !(1..=MAX_TOKEN_HOURS).contains(&hours) {
        return Err(IssueError::Lifetime(hours));
    }
    let found = store
        .account_by_login(account)
        .await?
        .filter(|a| a.active)
        .ok_or_else(|| IssueError::NoAccount(account.to_owned()))?;
    let account = found.username.to_string();
    let target = postgres_target(store, target)
        .await?
        .ok_or_else(|| IssueError::NoTarget(target.to_owned()))?;
    let now = jiff::Timestamp::now();
    permit(store, &account, &target, db_role, now)
        .await?
        .map_err(IssueError::Denied)?;
    let token = format!("{PREFIX}{}", rampart_identity::random_token()?);
    let expires_us = now.as_microsecond() + i64::from(hours) * 3_600_000_000;
    let event = AuditEvent::new(actor, Action::DbTokenCreate, target.name.to_string())
        .detail("account", account.clone())
        .detail("db_role", db_role.to_owned())
        .detail("hours", hours.to_string())
        .detail("issued_by", issued_by.to_owned());
    let row = store
        .create_db_token(
            &NewDbToken {
                account: &account,
                target: target.name.as_str(),
                db_role,
                token_hash: &rampart_identity::token_hash(&token),
                issued_by,
                expires_us,
            },
            event,
        )
        .await?;
    Ok(Issued {
        token: rampart_core::Secret::new(token),
        row,
    })
}

/// The PostgreSQL target of that name.
pub async fn postgres_target(store: &Store, name: &str) -> Result<Option<Target>, StoreError> {
    Ok(store
        .targets()
        .await?
        .into_iter()
        .find(|t| t.name.as_str() == name && t.kind == TargetKind::Postgres))
}

/// Decides whether `account` may reach `target` as `db_role` at `now`, from its live
/// bindings. The token (or the console) stands for the MFA login.
pub async fn permit(
    store: &Store,
    account: &str,
    target: &Target,
    db_role: &str,
    now: jiff::Timestamp,
) -> Result<Result<rampart_access::Permit, rampart_access::Denial>, StoreError> {
    let found = store.account_by_login(account).await?;
    let active = found.as_ref().is_some_and(|a| a.active);
    let roles = store.roles().await?;
    let bindings = store.bindings(Some(account)).await?;
    let pairs: Vec<(rampart_access::Binding, &rampart_access::Role)> = bindings
        .into_iter()
        .filter_map(|b| roles.iter().find(|r| r.name == b.role).map(|r| (b, r)))
        .collect();
    let who = Principal {
        name: account.to_owned(),
        active,
        mfa_satisfied: true,
    };
    Ok(authorize(
        &who,
        &pairs,
        Request::Target {
            target,
            login: db_role,
        },
        now,
    ))
}
