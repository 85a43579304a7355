//! EXT-1: a third-party account never holds a standing grant; the report says so.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use support::{as_admin, between, cli_admin, cli_ok, enroll, sqlite, start};

fn ext1(r: &support::Rampart) -> (String, String) {
    let json: serde_json::Value =
        serde_json::from_str(&cli_ok(r, &["report", "--format", "json"])).unwrap();
    let control = json["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "EXT-1")
        .unwrap()
        .clone();
    (
        control["status"].as_str().unwrap().to_owned(),
        control.to_string(),
    )
}

#[test]
fn third_parties_get_only_short_time_boxed_grants_and_the_report_checks_it() {
    let mut r = start();
    let secret = enroll(&r.curl(), &r.admin_enroll_url);
    cli_ok(
        &r,
        &[
            "user",
            "add",
            "vendor",
            "--email",
            "vendor@partner.example",
            "--kind",
            "third-party",
        ],
    );
    cli_admin(
        &r,
        &secret,
        &["role", "add", "ops", "--grant", "web-* production deploy"],
    );

    for (args, why) in [
        (vec!["grant", "add", "vendor", "ops"], "standing grant"),
        (
            vec!["grant", "add", "vendor", "ops", "--hours", "24"],
            "at most 8 hours",
        ),
    ] {
        let out = as_admin(&r, &secret, &args);
        assert_eq!(out.status.code(), Some(64), "{args:?} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "{args:?}: {stderr}");
    }
    cli_admin(
        &r,
        &secret,
        &["grant", "add", "vendor", "ops", "--hours", "4"],
    );
    // People may still hold standing grants.
    cli_admin(&r, &secret, &["grant", "add", "admin", "ops"]);
    let (status, text) = ext1(&r);
    assert_eq!(status, "pass", "{text}");
    assert!(text.contains("1 live grants to them"), "{text}");

    // A standing grant slipped in behind rampart's back is caught by the report.
    r.stop();
    sqlite(
        &r.data_dir().join("rampart.db"),
        "UPDATE bindings SET expires_us = NULL WHERE account = 'vendor';",
    );
    let (status, text) = ext1(&r);
    assert_eq!(status, "fail", "{text}");
    assert!(text.contains("vendor (ops)"), "{text}");
}

/// EXT-1's workflow: a third party asks for a role in the UI, with a reason (scrubbed);
/// only someone else holding access.approve can approve; the approval grants the role,
/// time-boxed. Nobody decides their own request.
#[test]
fn a_third_party_requests_access_and_another_person_approves_it() {
    let r = start();
    let admin = r.curl();
    let admin_secret = enroll(&admin, &r.admin_enroll_url);
    let out = cli_ok(
        &r,
        &[
            "user",
            "add",
            "vendor",
            "--email",
            "vendor@partner.example",
            "--kind",
            "third-party",
        ],
    );
    let link = out
        .split_whitespace()
        .find(|w| w.starts_with("https://"))
        .expect("an enrollment link")
        .to_owned();
    let vendor = r.curl();
    enroll(&vendor, &link);
    // Creating the role is the admin's second-factor check (a code given to the CLI).
    cli_admin(
        &r,
        &admin_secret,
        &["role", "add", "ops", "--grant", "web-* production deploy"],
    );

    let page = vendor.get("/access");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<option>ops</option>"), "{}", page.body);
    let too_long = vendor.post(
        "/access",
        &[("role", "ops"), ("hours", "24"), ("reason", "migration")],
    );
    assert_eq!(too_long.status, 400, "{}", too_long.body);
    let asked = vendor.post(
        "/access",
        &[
            ("role", "ops"),
            ("hours", "4"),
            ("reason", "ticket 42, contact bob@customer.example"),
        ],
    );
    assert_eq!(asked.status, 303, "{}", asked.body);

    // The approver sees it, with the personal data in the reason scrubbed.
    let queue = admin.get("/access");
    assert_eq!(queue.status, 200);
    assert!(
        queue.body.contains("ticket 42, contact [EMAIL]"),
        "{}",
        queue.body
    );
    assert!(!queue.body.contains("bob@customer.example"));
    let id = between(&queue.body, "action=\"/access/", "/approve\"")
        .expect("an approve button")
        .to_owned();

    // The requester cannot approve (no permission), and no grant exists yet.
    assert_eq!(
        vendor.post(&format!("/access/{id}/approve"), &[]).status,
        403
    );
    assert!(!cli_ok(&r, &["grant", "list"]).contains("vendor"));

    // Approving needs a second-factor check in the last 5 minutes (ACC-2): the code the
    // admin gave for the role above is one, so no code is asked now.
    let approved = admin.post(&format!("/access/{id}/approve"), &[]);
    assert_eq!(approved.status, 303, "{}", approved.body);
    let grants = cli_ok(&r, &["grant", "list"]);
    let line = grants
        .lines()
        .find(|l| l.contains("vendor"))
        .expect("vendor's grant");
    assert!(line.contains("ops") && !line.contains("never"), "{grants}");
    let mine = vendor.get("/access");
    assert!(mine.body.contains("approved"), "{}", mine.body);
    let listed = cli_ok(&r, &["access", "list"]);
    assert!(
        listed.contains("approved") && listed.contains("admin"),
        "{listed}"
    );

    // An approver's own request waits for someone else.
    let own = admin.post(
        "/access",
        &[("role", "ops"), ("hours", "2"), ("reason", "on call")],
    );
    assert_eq!(own.status, 303);
    let pending = cli_ok(&r, &["access", "list", "--pending"]);
    let own_id = pending
        .lines()
        .find(|l| l.contains("on call"))
        .and_then(|l| l.split(['│', '┆']).nth(1))
        .map(str::trim)
        .expect("the pending request")
        .to_owned();
    assert!(
        !admin
            .get("/access")
            .body
            .contains(&format!("/access/{own_id}/approve"))
    );
    let self_approval = admin.post(&format!("/access/{own_id}/approve"), &[]);
    assert_eq!(self_approval.status, 400);
    assert!(
        self_approval.body.contains("their own request"),
        "{}",
        self_approval.body
    );
    // Nor on the CLI, where the approver is named and checked like on the web.
    let out = r.cli(&["access", "approve", &own_id, "--as", "admin"]);
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("their own request"), "{stderr}");

    let (status, text) = ext1(&r);
    assert_eq!(status, "pass", "{text}");
}
