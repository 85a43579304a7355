//! ACC-2: WebAuthn keys as a second factor, end to end against the built binary. A
//! software authenticator (webauthn-authenticator-rs `SoftPasskey`, the client side of
//! WebAuthn written independently of the server crate) answers the options rampart's HTTP
//! endpoints give; curl carries the requests. Replays and an expired challenge are refused
//! (the expiry is moved into the past in the database: no sleeping).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use support::{Curl, PASSWORD, Rampart, between, cli_ok, enroll, logout, oathtool, sqlite, start};
use webauthn_authenticator_rs::prelude::{
    CreationChallengeResponse, PublicKeyCredential, RequestChallengeResponse, Url,
    WebauthnAuthenticator,
};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

fn origin(r: &Rampart) -> Url {
    Url::parse(&r.origin()).unwrap()
}

/// Password step of a login; the session then waits for a second factor.
fn password(curl: &Curl) {
    let first = curl.post("/login", &[("login", "admin"), ("password", PASSWORD)]);
    assert_eq!(first.status, 303, "{}", first.body);
    assert_eq!(first.header("location"), Some("/login/mfa"));
}

/// Begins a WebAuthn login and has the soft authenticator answer it.
fn assertion(r: &Rampart, curl: &Curl, key: &mut SoftPasskey) -> PublicKeyCredential {
    let begun = curl.post("/login/webauthn/begin", &[]);
    assert_eq!(begun.status, 200, "{}", begun.body);
    let options: RequestChallengeResponse = serde_json::from_str(&begun.body).unwrap();
    key.do_authentication(origin(r), options).unwrap()
}

fn post_assertion(curl: &Curl, answer: &PublicKeyCredential) -> support::Response {
    curl.post(
        "/login/webauthn",
        &[("credential", &serde_json::to_string(answer).unwrap())],
    )
}

/// The `login.mfa` records of method webauthn, as JSON lines.
fn webauthn_checks(r: &Rampart) -> Vec<serde_json::Value> {
    cli_ok(r, &["audit", "search", "--action", "login.mfa", "--json"])
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.to_string().contains("webauthn"))
        .collect()
}

#[test]
fn a_soft_passkey_enrolls_and_logs_in_and_replays_and_expired_challenges_are_refused() {
    let r = start();
    let admin = r.curl();
    let secret = enroll(&admin, &r.admin_enroll_url);
    let mut key = SoftPasskey::new(true);

    // The account page runs rampart's own script, and nothing else.
    let page = admin.get("/account");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<script src=\"/static/webauthn.js\">"));
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    let js = admin.get("/static/webauthn.js");
    assert_eq!(js.status, 200);
    assert!(js.body.contains("navigator.credentials.create"));
    // Other pages stay script-free.
    let dashboard = admin.get("/");
    let csp = dashboard
        .header("content-security-policy")
        .unwrap_or_default();
    assert!(!csp.contains("script-src"), "{csp}");

    // Enrollment: options from rampart, the soft key's answer posted back once.
    let begun = admin.post("/account/webauthn/begin", &[]);
    assert_eq!(begun.status, 200, "{}", begun.body);
    assert_eq!(begun.header("content-type"), Some("application/json"));
    let options: CreationChallengeResponse = serde_json::from_str(&begun.body).unwrap();
    assert_eq!(options.public_key.rp.id, r.public_host);
    let registration = key.do_registration(origin(&r), options).unwrap();
    let registration = serde_json::to_string(&registration).unwrap();
    let added = admin.post(
        "/account/webauthn",
        &[("name", "soft key"), ("credential", &registration)],
    );
    assert_eq!(added.status, 303, "{}", added.body);
    assert_eq!(added.header("location"), Some("/account"));
    let again = admin.post(
        "/account/webauthn",
        &[("name", "soft key 2"), ("credential", &registration)],
    );
    assert_eq!(again.status, 400, "a registration answer is used once");
    let garbage = admin.post(
        "/account/webauthn",
        &[("name", "x"), ("credential", "{\"id\": 5")],
    );
    assert_eq!(garbage.status, 400, "{}", garbage.body);
    assert!(garbage.body.contains("not understood"), "{}", garbage.body);
    let page = admin.get("/account");
    assert!(page.body.contains("soft key"), "{}", page.body);
    let key_id = between(&page.body, "/account/webauthn/", "/remove")
        .unwrap()
        .to_owned();
    let enrolled = cli_ok(&r, &["audit", "search", "--action", "mfa.enroll", "--json"]);
    assert!(enrolled.contains("webauthn"), "{enrolled}");
    let shown = cli_ok(&r, &["user", "show", "admin"]);
    assert!(
        shown.contains("mfa:      enrolled (TOTP, 1 security key)"),
        "{shown}"
    );

    // The report counts the key as a second factor (ACC-2).
    let report = cli_ok(&r, &["report", "--format", "json"]);
    assert!(
        report.contains("1 of them hold a security key or passkey"),
        "{report}"
    );

    // Login: password, then the key instead of a code.
    logout(&admin);
    password(&admin);
    let mfa = admin.get("/login/mfa");
    assert_eq!(mfa.status, 200);
    assert!(mfa.body.contains("Use security key"), "{}", mfa.body);
    assert!(
        mfa.header("content-security-policy")
            .unwrap_or_default()
            .contains("script-src 'self'")
    );
    let bad = admin.post("/login/webauthn", &[("credential", "not json")]);
    assert_eq!(bad.status, 400, "{}", bad.body);
    let first = assertion(&r, &admin, &mut key);
    let done = post_assertion(&admin, &first);
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.header("location"), Some("/"));
    assert_eq!(admin.get("/").status, 200);
    let starts = cli_ok(
        &r,
        &["audit", "search", "--action", "session.start", "--json"],
    );
    assert!(starts.contains(r#"\"mfa\":\"webauthn\""#), "{starts}");

    // Replay: the same assertion, in a new login, is refused: no challenge waits, and
    // against a fresh challenge it signs the wrong one.
    logout(&admin);
    password(&admin);
    let replay = post_assertion(&admin, &first);
    assert_eq!(replay.status, 401, "{}", replay.body);
    let _fresh = admin.post("/login/webauthn/begin", &[]);
    let replay = post_assertion(&admin, &first);
    assert_eq!(replay.status, 401, "{}", replay.body);
    assert_eq!(
        admin.get("/").status,
        303,
        "still not logged in after replays"
    );

    // Expired: a begun challenge whose expiry has passed is refused, and gone.
    let late = assertion(&r, &admin, &mut key);
    sqlite(
        &r.data_dir().join("rampart.db"),
        "UPDATE webauthn_challenges SET expires_us = 0;",
    );
    let refused = post_assertion(&admin, &late);
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(refused.body.contains("took too long"), "{}", refused.body);
    let refused = post_assertion(&admin, &late);
    assert_eq!(refused.status, 401, "{}", refused.body);

    // A fresh ceremony still works (the counter moved forward and was stored).
    let second = assertion(&r, &admin, &mut key);
    let done = post_assertion(&admin, &second);
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(admin.get("/").status, 200);

    let checks = webauthn_checks(&r);
    let outcomes: Vec<String> = checks
        .iter()
        .map(|c| format!("{} {}", c["outcome"].as_str().unwrap_or(""), c["details"]))
        .collect();
    let text = outcomes.join("\n");
    assert_eq!(
        checks.iter().filter(|c| c["outcome"] == "success").count(),
        2,
        "{text}"
    );
    assert!(text.contains("already used"), "{text}");
    assert!(text.contains("challenge expired"), "{text}");
    assert!(
        checks.iter().filter(|c| c["outcome"] == "failure").count() >= 4,
        "{text}"
    );

    // Removal needs a recent second factor: an old login is not enough without a code.
    sqlite(
        &r.data_dir().join("rampart.db"),
        "UPDATE accounts SET last_mfa_us = last_mfa_us - 600000000 WHERE username = 'admin';",
    );
    let path = format!("/account/webauthn/{key_id}/remove");
    let refused = admin.post(&path, &[]);
    assert_eq!(refused.status, 403, "{}", refused.body);
    let removed = admin.post(&path, &[("code", &oathtool(&secret, 30))]);
    assert_eq!(removed.status, 303, "{}", removed.body);
    assert!(!admin.get("/account").body.contains("soft key"));
    let removals = cli_ok(&r, &["audit", "search", "--action", "mfa.remove", "--json"]);
    assert!(removals.contains("webauthn"), "{removals}");

    // Without keys, the login offers codes only again.
    logout(&admin);
    password(&admin);
    let mfa = admin.get("/login/mfa");
    assert!(!mfa.body.contains("Use security key"), "{}", mfa.body);
    let begun = admin.post("/login/webauthn/begin", &[]);
    assert_eq!(begun.status, 400, "{}", begun.body);
}
