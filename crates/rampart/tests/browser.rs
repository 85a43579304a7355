//! The admin UI in a real browser: Debian's headless Chromium driven by Playwright
//! (`tests/browser/admin_flow.mjs`), TOTP codes from oathtool.

mod support;

use std::path::Path;
use std::process::Command;

use support::*;

#[test]
fn chromium_enrolls_the_first_admin_logs_in_with_totp_and_creates_a_user() {
    let r = start();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = root.join("tests/browser/admin_flow.mjs");
    assert!(
        root.join("tests/browser/node_modules/playwright-core")
            .exists(),
        "playwright-core missing: run scripts/test (or `cd tests/browser && npm ci`)"
    );
    let shots = r.data_dir().join("shots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("node")
        .arg(&script)
        .arg(r.origin())
        .arg(&r.admin_enroll_url)
        .arg(&shots)
        .output()
        .expect("node runs (apt-get install -y nodejs)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("browser flow passed"), "{text}");

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
