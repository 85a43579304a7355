#![allow(clippy::unwrap_used)]
use std::collections::BTreeSet;

use jiff::{Timestamp, ToSpan};
use rampart_core::Environment;

use super::*;

fn target(name: &str, env: &str) -> Target {
    Target {
        name: TargetName::parse(name).unwrap(),
        kind: TargetKind::Ssh,
        address: "127.0.0.1:22".into(),
        environment: Environment::parse(env).unwrap(),
    }
}

fn role(name: &str, pattern: &str, env: Option<&str>, login: &str) -> Role {
    Role {
        name: RoleName::parse(name).unwrap(),
        permissions: BTreeSet::new(),
        grants: vec![TargetGrant {
            target: model_pattern(pattern),
            environment: env.map(|e| Environment::parse(e).unwrap()),
            login: login.into(),
            forward: Vec::new(),
        }],
    }
}

fn model_pattern(p: &str) -> crate::model::TargetPattern {
    serde_json::from_value(serde_json::Value::String(p.into())).unwrap()
}

fn bind(account: &str, role: &Role, expires_at: Option<Timestamp>) -> Binding {
    Binding {
        account: account.into(),
        role: role.name.clone(),
        expires_at,
    }
}

fn alice() -> Principal {
    Principal {
        name: "alice".into(),
        active: true,
        mfa_satisfied: true,
    }
}

fn now() -> Timestamp {
    "2026-11-29T12:00:00Z".parse().unwrap()
}

#[test]
fn matching_grant_is_permitted_with_its_expiry() {
    let ops = role("ops", "web-*", Some("production"), "deploy");
    let until = now() + 1.hour();
    let t = target("web-1", "production");
    let permit = authorize(
        &alice(),
        &[(bind("alice", &ops, Some(until)), &ops)],
        Request::Target {
            target: &t,
            login: "deploy",
        },
        now(),
    )
    .unwrap();
    assert_eq!(permit.role().as_str(), "ops");
    assert_eq!(permit.until(), Some(until));
}

#[test]
fn expired_grant_is_denied() {
    let ops = role("ops", "web-*", None, "deploy");
    let t = target("web-1", "production");
    let at = now() - 1.second();
    let denial = authorize(
        &alice(),
        &[(bind("alice", &ops, Some(at)), &ops)],
        Request::Target {
            target: &t,
            login: "deploy",
        },
        now(),
    )
    .unwrap_err();
    assert_eq!(denial, Denial::Expired(at));
}

#[test]
fn disabled_account_is_denied_even_with_a_grant() {
    let ops = role("ops", "*", None, "root");
    let t = target("web-1", "staging");
    let mut who = alice();
    who.active = false;
    let denial = authorize(
        &who,
        &[(bind("alice", &ops, None), &ops)],
        Request::Target {
            target: &t,
            login: "root",
        },
        now(),
    )
    .unwrap_err();
    assert_eq!(denial, Denial::AccountDisabled("alice".into()));
}

#[test]
fn default_is_deny_with_a_reason() {
    let t = target("db-1", "production");
    let denial = authorize(
        &alice(),
        &[],
        Request::Target {
            target: &t,
            login: "root",
        },
        now(),
    )
    .unwrap_err();
    assert!(matches!(denial, Denial::NoGrant { .. }));
    assert!(denial.to_string().contains("root on db-1 (production)"));
}

#[test]
fn grant_for_another_environment_or_login_does_not_admit() {
    let ops = role("ops", "web-*", Some("staging"), "deploy");
    let prod = target("web-1", "production");
    let staging = target("web-1", "staging");
    let b = [(bind("alice", &ops, None), &ops)];
    assert!(
        authorize(
            &alice(),
            &b,
            Request::Target {
                target: &prod,
                login: "deploy"
            },
            now()
        )
        .is_err()
    );
    assert!(
        authorize(
            &alice(),
            &b,
            Request::Target {
                target: &staging,
                login: "root"
            },
            now()
        )
        .is_err()
    );
    assert!(
        authorize(
            &alice(),
            &b,
            Request::Target {
                target: &staging,
                login: "deploy"
            },
            now()
        )
        .is_ok()
    );
}

#[test]
fn someone_elses_binding_does_not_count() {
    let ops = role("ops", "*", None, "deploy");
    let t = target("web-1", "staging");
    let b = [(bind("bob", &ops, None), &ops)];
    assert!(
        authorize(
            &alice(),
            &b,
            Request::Target {
                target: &t,
                login: "deploy"
            },
            now()
        )
        .is_err()
    );
}

#[test]
fn incomplete_mfa_is_denied() {
    let mut admins = role("admins", "*", None, "x");
    admins.permissions.insert(Permission::ManageUsers);
    let mut who = alice();
    who.mfa_satisfied = false;
    let denial = authorize(
        &who,
        &[(bind("alice", &admins, None), &admins)],
        Request::Admin(Permission::ManageUsers),
        now(),
    )
    .unwrap_err();
    assert_eq!(denial, Denial::MfaRequired("alice".into()));
}

#[test]
fn the_longest_lasting_binding_is_chosen() {
    let a = role("a", "*", None, "deploy");
    let b = role("b", "*", None, "deploy");
    let t = target("web-1", "staging");
    let permit = authorize(
        &alice(),
        &[
            (bind("alice", &a, Some(now() + 1.hour())), &a),
            (bind("alice", &b, None), &b),
        ],
        Request::Target {
            target: &t,
            login: "deploy",
        },
        now(),
    )
    .unwrap();
    assert_eq!(permit.until(), None);
}
