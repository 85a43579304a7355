//! The admin UI in a real browser: Debian's headless Chromium driven by Playwright
//! (`tests/browser/*.mjs`), TOTP codes from oathtool, security keys from Chromium's
//! virtual authenticator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};

use support::*;

/// Runs `tests/browser/SCRIPT` against `r` (origin, the admin's enrollment link and a
/// screenshot folder); returns its output after asserting it succeeded and printed `passed`.
fn run_script(r: &Rampart, script: &str, passed: &str) -> (String, PathBuf) {
    let shots = r.data_dir().join("shots");
    std::fs::create_dir_all(&shots).unwrap();
    let origin = r.origin();
    let text = browser(
        script,
        &[
            origin.as_ref(),
            r.admin_enroll_url.as_ref(),
            shots.as_os_str(),
        ],
        passed,
    );
    (text, shots)
}

#[test]
fn chromium_enrolls_the_first_admin_logs_in_with_totp_and_creates_a_user() {
    let r = start();
    let (_, shots) = run_script(&r, "admin_flow.mjs", "browser flow passed");

    // What the browser did is in the store and the audit log, seen from outside.
    let users = cli_ok(&r, &["user", "show", "carol"]);
    assert!(
        users.contains("carol@example.com") && users.contains("enrollment pending"),
        "{users}"
    );
    let created = cli_ok(
        &r,
        &[
            "audit",
            "search",
            "--actor",
            "user:admin",
            "--action",
            "user.create",
            "--json",
        ],
    );
    assert!(created.contains("\"subject\":\"carol\""), "{created}");
    let mfa = cli_ok(
        &r,
        &["audit", "search", "--action", "session.start", "--json"],
    );
    assert!(mfa.lines().count() >= 2, "two complete logins: {mfa}");
    assert!(
        !mfa.contains("\\\"mfa\\\":\\\"none\\\""),
        "no login without MFA: {mfa}"
    );
    if let Ok(keep) = std::env::var("RAMPART_KEEP_SHOTS") {
        for name in ["mfa-enroll.png", "dashboard.png", "users.png"] {
            let _ = std::fs::copy(shots.join(name), Path::new(&keep).join(name));
        }
    }
}

#[test]
fn chromium_adds_a_virtual_security_key_and_logs_in_with_it() {
    let r = start();
    let (_, shots) = run_script(&r, "webauthn.mjs", "webauthn flow passed");

    // Seen from outside: the key was enrolled and the second login used it.
    let enrolled = cli_ok(&r, &["audit", "search", "--action", "mfa.enroll", "--json"]);
    assert!(
        enrolled.contains(r#"\"factor\":\"webauthn\""#),
        "{enrolled}"
    );
    let starts = cli_ok(
        &r,
        &["audit", "search", "--action", "session.start", "--json"],
    );
    assert!(starts.contains(r#"\"mfa\":\"webauthn\""#), "{starts}");
    if let Ok(keep) = std::env::var("RAMPART_KEEP_SHOTS") {
        for name in ["webauthn-account.png", "webauthn-login.png"] {
            let _ = std::fs::copy(shots.join(name), Path::new(&keep).join(name));
        }
    }
}
