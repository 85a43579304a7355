//! Admin operations shared by the web UI and the CLI, so both audit the same way.

use std::collections::BTreeSet;

use rampart_access::{
    Binding, Permission, Principal, Request, Role, RoleName, TargetGrant, TargetPattern, authorize,
};
use rampart_audit::{Action, Actor, AuditEvent, Outcome};
use rampart_core::Environment;
use rampart_identity::sealed::MasterKey;
use rampart_identity::throttle::ThrottlePolicy;
use rampart_identity::totp::{TotpError, TotpSecret};
use rampart_identity::{AccountKind, Email, Username, random_token, token_hash};
use rampart_store::{Account, NewAccount, Store, StoreError};

/// How long an enrollment link stays valid.
pub const ENROLL_LINK_HOURS: i64 = 24;

/// A failed admin operation, phrased for the person who asked.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// Input that does not parse.
    #[error("{0}")]
    Invalid(String),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// EXT-1: a third-party account holds no standing grant. A grant to one must expire, and
/// within `policy.third_party_grant_hours` of `now`; other accounts may hold any grant.
pub fn check_grant_expiry(
    kind: rampart_identity::AccountKind,
    expires_at: Option<jiff::Timestamp>,
    now: jiff::Timestamp,
    policy: &rampart_identity::policy::PolicyConfig,
) -> Result<(), OpError> {
    if kind != rampart_identity::AccountKind::ThirdParty {
        return Ok(());
    }
    let hours = policy.third_party_grant_hours.get();
    match expires_at {
        None => Err(OpError::Invalid(format!(
            "a third-party account cannot hold a standing grant (EXT-1): give an expiry of at most {hours} hours"
        ))),
        Some(at) if at.as_second() - now.as_second() > hours * 3600 => {
            Err(OpError::Invalid(format!(
                "a grant to a third-party account may last at most {hours} hours (policy.third_party_grant_hours, EXT-1)"
            )))
        }
        Some(_) => Ok(()),
    }
}

/// Creates an account and a one-time enrollment link for it; returns the link's token.
pub async fn create_user(
    store: &Store,
    actor: Actor,
    username: &str,
    email: &str,
    display_name: &str,
    kind: &str,
    owner: Option<&str>,
) -> Result<(Account, String), OpError> {
    let username = Username::parse(username).map_err(|e| OpError::Invalid(e.to_string()))?;
    let email = Email::parse(email).map_err(|e| OpError::Invalid(e.to_string()))?;
    let kind = AccountKind::parse(kind).ok_or_else(|| {
        OpError::Invalid(format!(
            "kind must be person, third_party or service; got {kind:?}"
        ))
    })?;
    let owner = match (kind, owner.map(str::trim).filter(|o| !o.is_empty())) {
        (AccountKind::Service, None) => {
            return Err(OpError::Invalid(
                "a service account needs an owner: the person responsible for it".into(),
            ));
        }
        (AccountKind::Service, Some(o)) => {
            Some(Username::parse(o).map_err(|e| OpError::Invalid(e.to_string()))?)
        }
        (_, Some(_)) => {
            return Err(OpError::Invalid(
                "only service accounts have an owner".into(),
            ));
        }
        (_, None) => None,
    };
    let display_name = display_name.trim().chars().take(128).collect::<String>();
    let new = NewAccount {
        display_name: if display_name.is_empty() {
            username.to_string()
        } else {
            display_name
        },
        username: username.clone(),
        email,
        kind,
        owner,
    };
    let event = AuditEvent::new(actor.clone(), Action::UserCreate, username.to_string())
        .detail("kind", kind.as_str());
    let account = store.create_account(&new, event).await?;
    let token = issue_enroll_link(store, actor, &account).await?;
    Ok((account, token))
}

/// Issues a fresh one-time enrollment link (24 h) for an account; returns its token.
pub async fn issue_enroll_link(
    store: &Store,
    actor: Actor,
    account: &Account,
) -> Result<String, OpError> {
    let token = random_token().map_err(|e| OpError::Invalid(e.to_string()))?;
    let expires = jiff::Timestamp::now().as_second() + ENROLL_LINK_HOURS * 3600;
    let event = AuditEvent::new(actor, Action::EnrollLinkIssue, account.username.to_string())
        .detail("expires_s", expires.to_string());
    store
        .create_enroll_link(&account.id, &token_hash(&token), expires, event)
        .await?;
    Ok(token)
}

/// Parses target grants written one per line as `PATTERN [ENVIRONMENT] LOGIN`, followed
/// for SSH by any number of `forward=HOST:PORT` (destinations `ssh -L` may reach).
pub fn parse_grants(text: &str) -> Result<Vec<TargetGrant>, OpError> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| {
            let all: Vec<&str> = line.split_whitespace().collect();
            let mut words = Vec::new();
            let mut forward = Vec::new();
            for w in all {
                match w.strip_prefix("forward=") {
                    Some(dest) => forward.push(parse_forward(dest)?),
                    None => words.push(w),
                }
            }
            let (pattern, env, login) = match words.as_slice() {
                [p, l] => (*p, None, *l),
                [p, e, l] => (*p, Some(*e), *l),
                _ => {
                    return Err(OpError::Invalid(format!(
                        "a grant is PATTERN [ENVIRONMENT] LOGIN; got {line:?}"
                    )));
                }
            };
            let target =
                TargetPattern::parse(pattern).map_err(|e| OpError::Invalid(e.to_string()))?;
            let environment = env
                .map(Environment::parse)
                .transpose()
                .map_err(|e| OpError::Invalid(e.to_string()))?;
            if login.is_empty()
                || login.len() > 64
                || !login
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '*'))
            {
                return Err(OpError::Invalid(format!(
                    "{login:?} is not a valid login or database role"
                )));
            }
            Ok(TargetGrant {
                target,
                environment,
                login: login.to_owned(),
                forward,
            })
        })
        .collect()
}

/// `HOST:PORT` with a host name or address and a port 1–65535.
fn parse_forward(dest: &str) -> Result<String, OpError> {
    let bad = || OpError::Invalid(format!("forward={dest} is not HOST:PORT"));
    let (host, port) = dest.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'));
    if port == 0 || !host_ok {
        return Err(bad());
    }
    Ok(format!("{}:{port}", host.to_ascii_lowercase()))
}

/// Builds a role from its parts.
pub fn make_role(name: &str, permissions: &[String], grants: &str) -> Result<Role, OpError> {
    let name = RoleName::parse(name.trim()).map_err(|e| OpError::Invalid(e.to_string()))?;
    let permissions = permissions
        .iter()
        .map(|p| {
            Permission::parse(p)
                .ok_or_else(|| OpError::Invalid(format!("unknown permission {p:?}")))
        })
        .collect::<Result<BTreeSet<_>, _>>()?;
    Ok(Role {
        name,
        permissions,
        grants: parse_grants(grants)?,
    })
}

/// The bindings of an account paired with their roles, for `authorize`.
pub async fn bindings_with_roles(
    store: &Store,
    username: &str,
) -> Result<Vec<(Binding, Role)>, StoreError> {
    let roles = store.roles().await?;
    Ok(store
        .bindings(Some(username))
        .await?
        .into_iter()
        .filter_map(|b| {
            roles
                .iter()
                .find(|r| r.name == b.role)
                .cloned()
                .map(|r| (b, r))
        })
        .collect())
}

/// Decides an admin permission for an account with a complete login.
pub async fn check_permission(
    store: &Store,
    account: &Account,
    permission: Permission,
) -> Result<Result<(), rampart_access::Denial>, StoreError> {
    let pairs = bindings_with_roles(store, account.username.as_str()).await?;
    let refs: Vec<(Binding, &Role)> = pairs.iter().map(|(b, r)| (b.clone(), r)).collect();
    let who = Principal {
        name: account.username.to_string(),
        active: account.active,
        mfa_satisfied: true,
    };
    Ok(authorize(
        &who,
        &refs,
        Request::Admin(permission),
        jiff::Timestamp::now(),
    )
    .map(|_| ()))
}

/// How recent a second-factor check must be for a backup restore or prune (BAK-5).
pub const RECENT_MFA_SECS: i64 = 5 * 60;

/// Why a recent second-factor check is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MfaRefusal {
    /// The account has no second factor enrolled.
    #[error("the account has no second factor enrolled: enroll one at the web UI first")]
    NotEnrolled,
    /// No check in the last few minutes and no code given.
    #[error("this needs a second-factor check within the last 5 minutes: give a current code")]
    CodeNeeded,
    /// The code was wrong, or already used.
    #[error("that code was not accepted")]
    Refused,
    /// Too many wrong codes: the account's second factor is locked for a while.
    #[error("too many wrong codes: try again later")]
    Locked,
}

/// Checks a TOTP code and claims its step atomically; a replay loses the claim. Returns
/// whether it was accepted, the method, and the reason of a refusal (for the audit log).
pub async fn check_totp(
    store: &Store,
    master: &MasterKey,
    account: &Account,
    code: &str,
    now: i64,
) -> (bool, &'static str, &'static str) {
    let Some(secret) = account
        .totp_sealed
        .as_deref()
        .and_then(|sealed| master.open(&format!("totp:{}", account.id), sealed).ok())
        .and_then(|bytes| {
            std::str::from_utf8(bytes.expose_secret())
                .ok()
                .and_then(TotpSecret::from_base32)
        })
    else {
        return (false, "totp", "no usable TOTP secret");
    };
    match secret.verify(code, now, account.totp_last_step) {
        Ok(step) => match store.advance_totp_step(&account.id, step).await {
            Ok(true) => (true, "totp", ""),
            Ok(false) => (false, "totp", "code already used"),
            Err(_) => (false, "totp", "store error"),
        },
        Err(TotpError::Replayed) => (false, "totp", "code already used"),
        Err(_) => (false, "totp", "wrong code"),
    }
}

/// Requires a second-factor check of `account` within [`RECENT_MFA_SECS`]: one already
/// made (a login or an earlier check), else `code` checked now. A checked code, right or
/// wrong, is audited as `login.mfa` with the purpose; wrong codes count toward the same
/// lockout as the login's.
pub async fn recent_mfa(
    store: &Store,
    master: &MasterKey,
    throttle: &ThrottlePolicy,
    account: &Account,
    code: Option<&str>,
    purpose: &str,
    source: Option<std::net::IpAddr>,
) -> Result<Result<(), MfaRefusal>, StoreError> {
    if !account.has_mfa() {
        return Ok(Err(MfaRefusal::NotEnrolled));
    }
    let now = jiff::Timestamp::now().as_second();
    let fresh = account
        .last_mfa_us
        .is_some_and(|us| now - us / 1_000_000 <= RECENT_MFA_SECS);
    let Some(code) = code.map(str::trim).filter(|c| !c.is_empty()) else {
        return Ok(if fresh {
            Ok(())
        } else {
            Err(MfaRefusal::CodeNeeded)
        });
    };
    let subject = account.username.to_string();
    let actor = Actor::User(subject.clone());
    let key = format!("mfa:{}", account.id);
    let current = store.throttle(&key).await?;
    if throttle.check(&current, now).is_err() {
        let ev = AuditEvent::new(actor, Action::LoginMfa, subject)
            .outcome(Outcome::Denied)
            .source(source)
            .detail("purpose", purpose)
            .detail("reason", "locked");
        store.append_audit(&[ev]).await?;
        return Ok(Err(MfaRefusal::Locked));
    }
    let (accepted, method, reason) = if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())
    {
        check_totp(store, master, account, code, now).await
    } else {
        (false, "totp", "not a 6-digit code")
    };
    let ev = AuditEvent::new(actor, Action::LoginMfa, subject.clone())
        .source(source)
        .detail("method", method)
        .detail("purpose", purpose);
    if accepted {
        store.clear_throttle(&key).await?;
        store.append_audit(&[ev]).await?;
        return Ok(Ok(()));
    }
    let (after, locked) = throttle.on_failure(&current, now);
    let mut events = vec![ev.outcome(Outcome::Failure).detail("reason", reason)];
    if locked {
        events.push(
            AuditEvent::new(Actor::System, Action::LoginLocked, subject)
                .outcome(Outcome::Denied)
                .source(source)
                .detail("key", "account")
                .detail("until", after.locked_until.to_string()),
        );
    }
    store.save_throttle(&[(key, after)], &events).await?;
    Ok(Err(MfaRefusal::Refused))
}

/// Prefix of every database token, so a leaked one is recognizable.
pub const DB_TOKEN_PREFIX: &str = "rdb_";

/// Longest a database token may live, in hours.
pub const DB_TOKEN_MAX_HOURS: u32 = 12;

/// Issues a database token for `account` on the postgres `target` as `db_role`, valid
/// `hours` (1 to 12), after checking that a live grant of the account allows it now. Only
/// the SHA-256 is stored; the value is returned once. `issued_by` names the MFA login or
/// operator that asked (`web-mfa`, `cli:root`).
pub async fn issue_db_token(
    store: &Store,
    account: &str,
    target: &str,
    db_role: &str,
    hours: u32,
    issued_by: &str,
    actor: rampart_audit::Actor,
) -> Result<(rampart_core::Secret<String>, rampart_store::DbToken), OpError> {
    if !(1..=DB_TOKEN_MAX_HOURS).contains(&hours) {
        return Err(OpError::Invalid(format!(
            "a database token lives 1 to {DB_TOKEN_MAX_HOURS} hours, not {hours}"
        )));
    }
    let found = store
        .account_by_login(account)
        .await?
        .filter(|a| a.active)
        .ok_or_else(|| OpError::Invalid(format!("no active account {account}")))?;
    let account = found.username.to_string();
    let target = store
        .targets()
        .await?
        .into_iter()
        .find(|t| t.name.as_str() == target && t.kind == rampart_access::TargetKind::Postgres)
        .ok_or_else(|| OpError::Invalid(format!("no postgres target {target}")))?;
    let pairs = bindings_with_roles(store, &account).await?;
    let refs: Vec<(Binding, &Role)> = pairs.iter().map(|(b, r)| (b.clone(), r)).collect();
    let now = jiff::Timestamp::now();
    authorize(
        &Principal {
            name: account.clone(),
            active: true,
            mfa_satisfied: true,
        },
        &refs,
        Request::Target {
            target: &target,
            login: db_role,
        },
        now,
    )
    .map_err(|d| OpError::Invalid(format!("access denied: {d}")))?;
    let token = format!(
        "{DB_TOKEN_PREFIX}{}",
        rampart_identity::random_token().map_err(|e| OpError::Invalid(e.to_string()))?
    );
    let event = rampart_audit::AuditEvent::new(
        actor,
        rampart_audit::Action::DbTokenCreate,
        target.name.to_string(),
    )
    .detail("account", account.clone())
    .detail("db_role", db_role.to_owned())
    .detail("hours", hours.to_string())
    .detail("issued_by", issued_by.to_owned());
    let verifier = rampart_identity::scram::verifier(
        token.as_bytes(),
        &rampart_identity::scram::db_token_salt(&account, target.name.as_str()),
    );
    let row = store
        .create_db_token(
            &rampart_store::NewDbToken {
                account: &account,
                target: target.name.as_str(),
                db_role,
                token_hash: &rampart_identity::token_hash(&token),
                scram_stored: &hex::encode(verifier.stored_key),
                scram_server: &hex::encode(verifier.server_key),
                issued_by,
                expires_us: now.as_microsecond() + i64::from(hours) * 3_600_000_000,
            },
            event,
        )
        .await?;
    Ok((rampart_core::Secret::new(token), row))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn third_parties_get_only_short_time_boxed_grants() {
        use rampart_identity::AccountKind;
        use rampart_identity::policy::PolicyConfig;
        let policy = PolicyConfig::default();
        let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let in_hours =
            |h: i64| Some(jiff::Timestamp::from_second(now.as_second() + h * 3600).unwrap());
        let check = |kind, at| check_grant_expiry(kind, at, now, &policy);
        assert!(check(AccountKind::ThirdParty, None).is_err());
        assert!(check(AccountKind::ThirdParty, in_hours(9)).is_err());
        assert!(check(AccountKind::ThirdParty, in_hours(8)).is_ok());
        assert!(check(AccountKind::Person, None).is_ok());
        assert!(check(AccountKind::Service, in_hours(1000)).is_ok());
    }

    #[test]
    fn grants_parse_with_and_without_environment() {
        let grants = parse_grants("web-* production deploy\n\n  db-1 postgres  \n").unwrap();
        assert_eq!(grants.len(), 2);
        assert_eq!(
            grants[0].environment.as_ref().map(Environment::as_str),
            Some("production")
        );
        assert_eq!(grants[1].login, "postgres");
        assert!(parse_grants("just-one-word").is_err());
        assert!(parse_grants("web-1 prod; rm -rf").is_err());
    }
}
