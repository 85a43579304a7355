//! EXT-1: a third-party account never holds a standing grant; the report says so.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use support::{cli_ok, sqlite, start};

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
    cli_ok(
        &r,
        &["role", "add", "ops", "--grant", "web-* production deploy"],
    );

    for (args, why) in [
        (vec!["grant", "add", "vendor", "ops"], "standing grant"),
        (
            vec!["grant", "add", "vendor", "ops", "--hours", "24"],
            "at most 8 hours",
        ),
    ] {
        let out = r.cli(&args);
        assert_eq!(out.status.code(), Some(64), "{args:?} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "{args:?}: {stderr}");
    }
    cli_ok(&r, &["grant", "add", "vendor", "ops", "--hours", "4"]);
    // People may still hold standing grants.
    cli_ok(&r, &["grant", "add", "admin", "ops"]);
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
