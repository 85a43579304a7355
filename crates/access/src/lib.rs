//! Who may do what: targets, roles, grants, and the pure [`authorize`] decision.
//!
//! A role is a named set of admin [`Permission`]s and [`TargetGrant`]s. Roles are bound to
//! accounts by [`Binding`]s, which may expire. [`authorize`] is pure: it takes the account
//! as seen by the caller, its bindings, the request and the time, and returns a [`Permit`]
//! that names the binding it rests on (and when it runs out), or a [`Denial`] with the
//! reason. Code that acts takes the `Permit` as an argument, so it cannot act without one.
//!
//! Invariants: default deny; no I/O and no clock inside; a denial always has a reason.

mod model;

pub use model::{
    BadName, Binding, Permission, Role, RoleName, Target, TargetGrant, TargetKind, TargetName,
    TargetPattern,
};

use jiff::Timestamp;

/// The account as the decision sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The unique user name.
    pub name: String,
    /// Whether the account is enabled.
    pub active: bool,
    /// Whether the current login satisfied the MFA policy.
    pub mfa_satisfied: bool,
}

/// What is asked for.
#[derive(Debug, Clone, Copy)]
pub enum Request<'a> {
    /// An admin action.
    Admin(Permission),
    /// A connection to a target with a login (SSH user, database role, or `*` for http).
    Target {
        /// The target.
        target: &'a Target,
        /// The login or database role.
        login: &'a str,
    },
}

/// Proof that a request was authorized. Only [`authorize`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permit {
    account: String,
    role: RoleName,
    until: Option<Timestamp>,
}

impl Permit {
    /// The account it was issued to.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The role whose grant admitted the request.
    pub fn role(&self) -> &RoleName {
        &self.role
    }

    /// When the binding it rests on expires; a session must end then.
    pub fn until(&self) -> Option<Timestamp> {
        self.until
    }
}

/// Why a request was refused. Shown to admins and stored in the audit log; clients are
/// only told "access denied".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// The account is disabled.
    #[error("account {0} is disabled")]
    AccountDisabled(String),
    /// The login did not satisfy the MFA policy.
    #[error("account {0} has not completed MFA")]
    MfaRequired(String),
    /// Grants existed but every one has expired.
    #[error("every grant that would allow this expired (last at {0})")]
    Expired(Timestamp),
    /// No role of the account allows it.
    #[error("no role of {account} allows {wanted}")]
    NoGrant {
        /// The account.
        account: String,
        /// The request, described.
        wanted: String,
    },
}

/// Decides a request. Default deny: only a live binding to a role that allows the request
/// gives a [`Permit`]. Among several, the one that lasts longest is chosen.
pub fn authorize(
    who: &Principal,
    bindings: &[(Binding, &Role)],
    request: Request<'_>,
    now: Timestamp,
) -> Result<Permit, Denial> {
    if !who.active {
        return Err(Denial::AccountDisabled(who.name.clone()));
    }
    if !who.mfa_satisfied {
        return Err(Denial::MfaRequired(who.name.clone()));
    }
    let mut best: Option<Permit> = None;
    let mut last_expired: Option<Timestamp> = None;
    for (binding, role) in bindings {
        if binding.account != who.name || binding.role != role.name || !role.allows(request) {
            continue;
        }
        match binding.expires_at {
            Some(at) if at <= now => {
                last_expired = last_expired.max(Some(at));
                continue;
            }
            _ => {}
        }
        let candidate = Permit {
            account: who.name.clone(),
            role: role.name.clone(),
            until: binding.expires_at,
        };
        best = Some(match best {
            Some(current) if lasts_longer(&current, &candidate) => current,
            _ => candidate,
        });
    }
    if let Some(permit) = best {
        return Ok(permit);
    }
    if let Some(at) = last_expired {
        return Err(Denial::Expired(at));
    }
    Err(Denial::NoGrant {
        account: who.name.clone(),
        wanted: describe(request),
    })
}

fn lasts_longer(a: &Permit, b: &Permit) -> bool {
    match (a.until, b.until) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(x), Some(y)) => x >= y,
    }
}

fn describe(request: Request<'_>) -> String {
    match request {
        Request::Admin(p) => format!("permission {}", p.as_str()),
        Request::Target { target, login } => {
            format!("{login} on {} ({})", target.name, target.environment)
        }
    }
}

#[cfg(test)]
mod tests;
