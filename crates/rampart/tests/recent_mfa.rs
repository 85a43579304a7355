//! ACC-2: approving an access request and changing roles or grants need a second-factor
//! check within the last 5 minutes, on the web and on the CLI. Time is moved by setting the
//! last check and the last TOTP step claimed back in the database (no sleeping).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use support::{cli_admin, cli_ok, enroll, oathtool, sqlite, start};

/// Makes `user`'s last second-factor check ten minutes older, with the TOTP step it claimed
/// (20 steps of 30 seconds): as if ten minutes had passed.
fn age(r: &support::Rampart, user: &str) {
    sqlite(
        &r.data_dir().join("rampart.db"),
        &format!(
            "UPDATE accounts SET last_mfa_us = last_mfa_us - 600000000, \
             totp_last_step = totp_last_step - 20 WHERE username = '{user}';"
        ),
    );
}

/// The CLI's answer to `args`, asserting it was refused with exit 64 and `why` on stderr.
fn cli_refused(out: &std::process::Output, args: &[&str], why: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(64),
        "{args:?} was accepted: {stderr}"
    );
    assert!(stderr.contains(why), "{args:?}: {stderr}");
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
    // CLI: a role change names the person (`--as`); enrolling is not a second-factor check,
    // so without a code it is refused; with one it is done, and the next change within 5
    // minutes needs none.
    let ops = ["role", "add", "ops", "--grant", "web-* production deploy"];
    let out = r.cli(&[&ops[..], &["--as", "admin"]].concat());
    cli_refused(&out, &ops, "within the last 5 minutes");
    assert!(!cli_ok(&r, &["role", "list"]).contains("ops"));
    let code = oathtool(&secret, 30);
    cli_ok(
        &r,
        &[&ops[..], &["--as", "admin", "--code", &code]].concat(),
    );
    cli_ok(
        &r,
        &[
            "role",
            "add",
            "approvers",
            "--perm",
            "access.approve",
            "--as",
            "admin",
        ],
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
    cli_admin(&r, &secret, &["grant", "add", "carol", "approvers"]);
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

    // CLI grant and role changes: after 5 minutes without a check, each is refused without a
    // code, and a wrong code is not accepted; carol, who has a recent check but not
    // roles.manage, may not make them at all. Nothing changes meanwhile.
    age(&r, "admin");
    let changes: [&[&str]; 4] = [
        &["grant", "add", "bob", "approvers"],
        &["grant", "remove", "carol", "approvers"],
        &["role", "add", "more", "--grant", "db-* x"],
        &["role", "remove", "ops"],
    ];
    for args in changes {
        cli_refused(
            &as_admin_no_code(&r, args),
            args,
            "within the last 5 minutes",
        );
        let out = r.cli(&[args, &["--as", "carol"]].concat());
        cli_refused(&out, args, "may not");
    }
    let out = r.cli(&[changes[0], &["--as", "admin", "--code", "000000"]].concat());
    cli_refused(&out, changes[0], "not accepted");
    let grants = cli_ok(&r, &["grant", "list"]);
    assert!(
        grants.contains("carol") && !grants.contains("more"),
        "{grants}"
    );
    assert!(!cli_ok(&r, &["role", "list"]).contains("more"));
    // With a current code they are done, and the audit names the person, never the shell's
    // user (`cli:…`).
    for args in changes {
        cli_admin(&r, &secret, args);
    }
    let grants = cli_ok(&r, &["grant", "list"]);
    assert!(!grants.contains("carol"), "{grants}");
    let roles = cli_ok(&r, &["role", "list"]);
    assert!(roles.contains("more") && !roles.contains("ops "), "{roles}");
    for action in ["grant.add", "grant.remove", "role.create", "role.delete"] {
        let audit = cli_ok(&r, &["audit", "search", "--action", action, "--json"]);
        assert!(
            audit.contains("\"actor\":\"user:admin\"") && !audit.contains("\"actor\":\"cli:"),
            "{action}: {audit}"
        );
    }

    // A command refused for itself (no such account) is refused before the person is
    // checked: the code it carried is not used up, and the next change takes it.
    age(&r, "admin");
    let code = oathtool(&secret, 30);
    let bad = ["grant", "add", "nobody", "more"];
    let out = r.cli(&[&bad[..], &["--as", "admin", "--code", &code]].concat());
    cli_refused(&out, &bad, "no account");
    cli_ok(
        &r,
        &[
            "grant", "add", "carol", "more", "--as", "admin", "--code", &code,
        ],
    );
}

/// The CLI with `--as admin` and no code.
fn as_admin_no_code(r: &support::Rampart, args: &[&str]) -> std::process::Output {
    r.cli(&[args, &["--as", "admin"]].concat())
}
