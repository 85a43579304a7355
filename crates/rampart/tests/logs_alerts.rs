//! An error burst fires an alert once (de-duplicated), audited, with a signed webhook
//! that a local receiver verifies with openssl; when the burst leaves the window the alert
//! resolves with a second signed notice.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use support::*;

const KEY: &str = "webhook-test-key-0123456789";

#[test]
fn an_error_burst_fires_one_signed_alert_and_a_signed_resolved_notice() {
    let (port, rx) = receiver();
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("webhook.key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let r = Rampart::start_with(bin(), |_| {
        format!(
            "[logs.alerts]\nevery_seconds = 1\nwebhook_url = \"http://127.0.0.1:{port}/hook\"\nwebhook_secret_file = \"{}\"\n\n[[logs.alerts.rules]]\nname = \"api-errors\"\nkind = \"error_rate\"\nsource = \"api\"\nthreshold = 5\nwindow_minutes = 1\n",
            key_file.display()
        )
    });
    let account = "svc-api";
    cli_ok(
        &r,
        &[
            "user",
            "add",
            account,
            "--kind",
            "service",
            "--owner",
            "admin",
            "--email",
            "svc-api@rampart.localhost",
        ],
    );
    let token = cli_ok(
        &r,
        &["logs", "token", "create", "api", "--account", account],
    )
    .trim()
    .to_owned();
    // Ten errors stamped 50 s ago: inside the 1-minute window now, out of it soon after.
    let at = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(50);
    let body: String = (0..10)
        .map(|i| {
            format!("{{\"ts\":\"{at}\",\"level\":\"error\",\"msg\":\"upstream timeout {i}\"}}\n")
        })
        .collect();
    let file = r.data_dir().join("burst.ndjson");
    std::fs::write(&file, body).unwrap();
    let pushed = r.curl().run(&[
        &format!("{}/ingest/ndjson", r.origin()),
        "--data-binary",
        &format!("@{}", file.display()),
        "-H",
        &format!("Authorization: Bearer {token}"),
    ]);
    assert_eq!(pushed.status, 200, "{}", pushed.body);

    let firing = next_notice(&rx, &r, KEY);
    assert_eq!(firing["status"], "firing", "{firing}");
    assert_eq!(firing["rule"], "api-errors");
    assert_eq!(firing["source"], "api");
    assert_eq!(firing["count"], 10);
    // The next notice is the resolution: no second "firing" in between (de-duplicated).
    let resolved = next_notice(&rx, &r, KEY);
    assert_eq!(resolved["status"], "resolved", "{resolved}");
    assert_eq!(resolved["rule"], "api-errors");

    let audit = cli_ok(&r, &["audit", "search", "--action", "logs.alert"]);
    assert_eq!(audit.matches("logs.alert").count(), 2, "{audit}");
}
