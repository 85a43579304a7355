//! EXT-1 notices: access requests filed, approved and denied (and access review campaigns
//! opened and closed) go to the signed webhook of `[logs.alerts]` (verified here with
//! openssl); a webhook that hangs holds up nothing and its undelivered notice is audited.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::time::{Duration, Instant};

use support::*;

const KEY: &str = "access-webhook-key-0123456789";

fn with_webhook(port: u16, keys: &tempfile::TempDir) -> Rampart {
    let key_file = keys.path().join("webhook.key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    Rampart::start_with(bin(), |_| {
        format!(
            "[logs.alerts]\nwebhook_url = \"http://127.0.0.1:{port}/hook\"\nwebhook_secret_file = \"{}\"\n",
            key_file.display()
        )
    })
}

fn request(r: &Rampart, reason: &str) -> String {
    cli_ok(
        r,
        &[
            "access", "request", "--user", "bob", "ops", "--hours", "2", "--reason", reason,
        ],
    )
    .trim()
    .to_owned()
}

#[test]
fn request_steps_are_sent_signed_to_the_webhook() {
    let (port, rx) = receiver();
    let keys = tempfile::tempdir().unwrap();
    let r = with_webhook(port, &keys);
    let admin = r.curl();
    let secret = enroll(&admin, &r.admin_enroll_url);
    // The code given for the role is the admin's recent second-factor check (ACC-2) that
    // the approval below relies on.
    cli_admin(
        &r,
        &secret,
        &["role", "add", "ops", "--grant", "web-* production deploy"],
    );
    cli_ok(&r, &["user", "add", "bob", "--email", "bob@example.com"]);

    let first = request(&r, "deploy; mail bob@example.com");
    let filed = next_notice(&rx, &r, KEY);
    assert_eq!(filed["kind"], "access_request");
    assert_eq!(filed["event"], "filed");
    assert_eq!(filed["request"], first.as_str());
    assert_eq!(filed["requester"], "bob");
    assert_eq!(filed["status"], "pending");
    // The reason was scrubbed before it was stored, and so before it was sent.
    assert!(
        !filed["reason"]
            .as_str()
            .unwrap()
            .contains("bob@example.com")
    );

    let approved = admin.post(&format!("/access/{first}/approve"), &[]);
    assert_eq!(approved.status, 303, "{}", approved.body);
    let notice = next_notice(&rx, &r, KEY);
    assert_eq!(
        (&notice["event"], &notice["status"], &notice["by"]),
        (
            &serde_json::json!("approved"),
            &serde_json::json!("approved"),
            &serde_json::json!("admin")
        )
    );

    let second = request(&r, "again");
    assert_eq!(next_notice(&rx, &r, KEY)["event"], "filed");
    cli_ok(&r, &["access", "deny", &second, "--reason", "not now"]);
    let denied = next_notice(&rx, &r, KEY);
    assert_eq!(denied["event"], "denied");
    assert_eq!(denied["status"], "denied");
    assert_eq!(denied["request"], second.as_str());

    // Access reviews: a campaign opened and closed is noticed too (bob's approved grant).
    let campaign = cli_ok(&r, &["review", "start", "--days", "0"])
        .trim()
        .to_owned();
    let opened = next_notice(&rx, &r, KEY);
    assert_eq!(opened["rule"], "review");
    assert_eq!(opened["kind"], "review_opened");
    assert_eq!(opened["campaign"], campaign.as_str());
    assert_eq!(opened["grants"], 1);
    cli_ok(&r, &["review", "sweep"]);
    let closed = next_notice(&rx, &r, KEY);
    assert_eq!(closed["kind"], "review_closed");
    assert_eq!(closed["missed"], 1);
}

#[test]
fn a_hanging_webhook_holds_up_nothing_and_is_audited() {
    // Accepts connections (the kernel's backlog) and never answers.
    let hang = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hang.local_addr().unwrap().port();
    let keys = tempfile::tempdir().unwrap();
    let r = with_webhook(port, &keys);
    let admin = r.curl();
    let secret = enroll(&admin, &r.admin_enroll_url);
    cli_admin(
        &r,
        &secret,
        &["role", "add", "ops", "--grant", "web-* production deploy"],
    );
    cli_ok(&r, &["user", "add", "bob", "--email", "bob@example.com"]);

    // The web answers at once; the notice is sent in the background.
    let started = Instant::now();
    let asked = admin.post(
        "/access",
        &[("role", "ops"), ("hours", "1"), ("reason", "on call")],
    );
    assert_eq!(asked.status, 303, "{}", asked.body);
    assert!(started.elapsed() < Duration::from_secs(5));

    // The CLI waits a bounded time, then audits the undelivered notice.
    let started = Instant::now();
    request(&r, "deploy");
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(20), "{waited:?}");
    let failed = cli_ok(
        &r,
        &[
            "audit",
            "search",
            "--action",
            "access.notify",
            "--outcome",
            "failure",
            "--json",
        ],
    );
    assert_eq!(failed.lines().count(), 1, "{failed}");
    assert!(
        failed.contains("filed") && failed.contains("bob"),
        "{failed}"
    );
    drop(hang);
}
