//! What the gateway checks about a person: the PostgreSQL target asked for, and whether a
//! live grant lets the person use it as the token's database role now. Tokens themselves are
//! issued by `rampart_web::ops::issue_db_token` (the web page after an MFA login, and the
//! CLI); only their SHA-256 is stored.

use rampart_access::{Principal, Request, Target, TargetKind, authorize};
use rampart_store::{Store, StoreError};

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
