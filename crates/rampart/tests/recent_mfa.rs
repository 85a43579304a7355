//! ACC-2: approving an access request and changing roles or grants need a second-factor
//! check within the last 5 minutes, on the web and on the CLI. The check's age is set by
//! moving `last_mfa_us` back in the database (no sleeping).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use support::{cli_ok, enroll, oathtool, sqlite, start};

/// Makes `user`'s last second-factor check ten minutes older.
fn age(r: &support::Rampart, user: &str) {
    sqlite(
        &r.data_dir().join("rampart.db"),
        &format!(
            "UPDATE accounts SET last_mfa_us = last_mfa_us - 600000000 WHERE username = '{user}';"
        ),
    );
}

fn request(r: &support::Rampart) -> String {
    cli_ok(
        r,
        &[
            "access", "request", "--user", "bob", "ops", "--hours", "2", "--reason", "deploy",
        ],
    )
    .trim()
    .to_owned()
}

#[test]
fn approvals_and_grant_changes_need_a_recent_second_factor() {
    let r = start();
    let admin = r.curl();
    let secret = enroll(&admin, &r.admin_enroll_url);
    cli_ok(
        &r,
        &["role", "add", "ops", "--grant", "web-* production deploy"],
    );
    cli_ok(
        &r,
        &["role", "add", "approvers", "--perm", "access.approve"],
    );
    cli_ok(&r, &["user", "add", "bob", "--email", "bob@example.com"]);

    // Web: no second-factor check in the last 5 minutes (enrolling is not one, and the
    // clock is moved back): no approval; a current code approves.
    let first = request(&r);
    age(&r, "admin");
    let refused = admin.post(&format!("/access/{first}/approve"), &[]);
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("within the last 5 minutes"),
        "{}",
        refused.body
    );
    assert!(!cli_ok(&r, &["grant", "list"]).contains("bob"));
    let approved = admin.post(
        &format!("/access/{first}/approve"),
        &[("code", &oathtool(&secret, 30))],
    );
    assert_eq!(approved.status, 303, "{}", approved.body);
    assert!(cli_ok(&r, &["grant", "list"]).contains("bob"));

    // Changing grants and roles in the web UI: the same rule.
    age(&r, "admin");
    for (path, form) in [
        ("/bindings", vec![("account", "bob"), ("role", "approvers")]),
        (
            "/bindings/delete",
            vec![("account", "bob"), ("role", "ops")],
        ),
        ("/roles/ops/delete", vec![]),
        ("/roles", vec![("name", "more"), ("grants", "db-* x")]),
    ] {
        let out = admin.post(path, &form);
        assert_eq!(out.status, 403, "{path}: {}", out.body);
        assert!(out.body.contains("second-factor"), "{path}: {}", out.body);
    }
    let bad = admin.post(
        "/bindings",
        &[
            ("account", "bob"),
            ("role", "approvers"),
            ("code", "000000"),
        ],
    );
    assert_eq!(bad.status, 403, "{}", bad.body);
    assert!(bad.body.contains("not accepted"), "{}", bad.body);
    let grants = cli_ok(&r, &["grant", "list"]);
    assert!(
        grants.contains("ops") && !grants.contains("approvers"),
        "{grants}"
    );

    // CLI: the approver is named; without a recent check or a code, no approval.
    let carol = r.curl();
    let link = cli_ok(
        &r,
        &["user", "add", "carol", "--email", "carol@example.com"],
    );
    let link = link
        .split_whitespace()
        .find(|w| w.starts_with("https://"))
        .unwrap()
        .to_owned();
    let carol_secret = enroll(&carol, &link);
    cli_ok(&r, &["grant", "add", "carol", "approvers"]);
    let second = request(&r);
    age(&r, "carol");
    let out = r.cli(&["access", "approve", &second, "--as", "carol"]);
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("within the last 5 minutes"), "{stderr}");
    let out = cli_ok(
        &r,
        &[
            "access",
            "approve",
            &second,
            "--as",
            "carol",
            "--code",
            &oathtool(&carol_secret, 30),
        ],
    );
    assert!(out.contains("granted until"), "{out}");
    // Someone without access.approve cannot approve at all.
    let third = request(&r);
    let out = r.cli(&["access", "approve", &third, "--as", "bob"]);
    assert_eq!(out.status.code(), Some(64));
}
