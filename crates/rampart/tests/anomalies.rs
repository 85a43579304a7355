//! ACC-7 anomaly rules through the binary: a burst of failed logins raises alerts for the
//! account and the address, once, as audit records shown on /anomalies.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::time::{Duration, Instant};

use support::{cli_ok, enroll, start};

/// The mark of how far the rules have read, once the server has set it.
fn mark(r: &support::Rampart) -> Option<String> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); r=c.execute(\"SELECT value FROM meta WHERE key='anomaly.seq'\").fetchone(); print(r[0] if r else '')",
        ])
        .arg(r.data_dir().join("rampart.db"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (!text.is_empty()).then_some(text)
}

#[test]
fn a_burst_of_failed_logins_raises_alerts_once() {
    let r = start();
    let admin = r.curl();
    enroll(&admin, &r.admin_enroll_url);
    // The server learns the history at its first minute tick (right at start): what came
    // before raises nothing.
    let started = Instant::now();
    while mark(&r).is_none() {
        assert!(started.elapsed() < Duration::from_secs(30), "no mark");
        std::thread::sleep(Duration::from_millis(100));
    }
    let quiet = r.cli(&["anomaly", "scan"]);
    assert!(quiet.status.success());
    assert!(String::from_utf8_lossy(&quiet.stderr).contains("0 alerts raised"));

    cli_ok(&r, &["user", "add", "bob", "--email", "bob@example.com"]);
    let guesser = r.curl();
    for _ in 0..6 {
        let out = guesser.post(
            "/login",
            &[("login", "bob"), ("password", "wrong-password-1")],
        );
        assert_ne!(out.status, 303, "{}", out.body);
    }
    let out = r.cli(&["anomaly", "scan"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("failed_logins_account"), "{text}");
    assert!(text.contains("for account bob"), "{text}");
    assert!(text.contains("failed_logins_address"), "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 alerts raised"));
    // Written once: a second scan (or the server's next minute) raises nothing new.
    let again = r.cli(&["anomaly", "scan"]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("0 alerts raised"));

    let alerts = cli_ok(
        &r,
        &["audit", "search", "--action", "anomaly.alert", "--json"],
    );
    assert_eq!(alerts.lines().count(), 2, "{alerts}");
    let page = admin.get("/anomalies");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("failed_logins_account"), "{}", page.body);
    assert!(page.body.contains("for account bob"), "{}", page.body);

    // Acknowledged with a note (scrubbed), once; only alerts can be acknowledged.
    let first: serde_json::Value = serde_json::from_str(alerts.lines().next().unwrap()).unwrap();
    let seq = first["seq"].as_u64().unwrap();
    let acked = admin.post(
        &format!("/anomalies/{seq}/ack"),
        &[("note", "bob's password manager; asked bob@example.com")],
    );
    assert_eq!(acked.status, 303, "{}", acked.body);
    let page = admin.get("/anomalies").body;
    assert!(
        page.contains("user:admin: bob&#39;s password manager"),
        "{page}"
    );
    assert!(!page.contains("bob@example.com"), "{page}");
    let again = r.cli(&["anomaly", "ack", &seq.to_string(), "--note", "again"]);
    assert_eq!(again.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already acknowledged"));
    let report = cli_ok(&r, &["report", "--format", "json"]);
    assert!(
        report.contains("anomaly alerts in the last 30 days: 2, 1 not acknowledged"),
        "{report}"
    );
    let not_alert = r.cli(&["anomaly", "ack", "1", "--note", "x"]);
    assert_eq!(not_alert.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&not_alert.stderr).contains("not an anomaly alert"));
}
