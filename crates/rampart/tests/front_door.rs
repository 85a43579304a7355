//! End-to-end tests of the front door with the built binary, curl and openssl.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::process::Command;

use support::*;

#[test]
fn http_request_is_redirected_with_path_and_query_to_the_configured_host() {
    let r = start();
    let curl = r.curl();
    let url = format!("http://127.0.0.1:{}/some/path?a=1&b=two", r.http_port);
    for host in ["evil.example", "gateway.test", "127.0.0.1:1"] {
        let resp = curl.run(&["-H", &format!("Host: {host}"), &url]);
        assert_eq!(resp.status, 308, "Host {host}");
        assert_eq!(
            resp.header("location"),
            Some(format!("{}/some/path?a=1&b=two", r.origin()).as_str()),
            "Host {host}"
        );
    }
    // HTTP/1.0 without any Host header, and a POST: same answer.
    let bare = curl.run(&["--http1.0", "-H", "Host:", &url]);
    assert_eq!(bare.status, 308);
    assert_eq!(
        bare.header("location"),
        Some(format!("{}/some/path?a=1&b=two", r.origin()).as_str())
    );
    let post = curl.run(&[
        "-X",
        "POST",
        "--data",
        "x=1",
        &format!("http://127.0.0.1:{}/login", r.http_port),
    ]);
    assert_eq!(post.status, 308);
    assert!(post.body.is_empty(), "the HTTP listener serves no content");
}

#[test]
fn every_https_response_carries_hsts_and_security_headers() {
    let r = start();
    let curl = r.curl();
    for path in [
        "/login",
        "/healthz",
        "/no/such/page",
        "/static/app.css",
        "/",
    ] {
        let resp = curl.get(path);
        assert_eq!(
            resp.header("strict-transport-security"),
            Some("max-age=63072000; includeSubDomains"),
            "{path}"
        );
        assert_eq!(
            resp.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(
            resp.header("referrer-policy"),
            Some("no-referrer"),
            "{path}"
        );
        assert!(
            resp.header("content-security-policy")
                .unwrap_or("")
                .contains("frame-ancestors 'none'"),
            "{path}"
        );
    }
}

/// openssl is told to offer only TLS 1.1 (with the security level lowered so that it
/// really offers it); the same command with TLS 1.2 must connect, so the refusal is the
/// server's.
#[test]
fn tls_1_1_is_refused_and_tls_1_2_accepted() {
    let r = start();
    let connect = |version: &str| {
        Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{}", r.https_port),
                version,
                "-cipher",
                "DEFAULT@SECLEVEL=0",
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl runs (apt-get install -y openssl)")
    };
    let old = connect("-tls1_1");
    let text =
        String::from_utf8_lossy(&old.stdout).to_string() + &String::from_utf8_lossy(&old.stderr);
    assert!(!old.status.success(), "TLS 1.1 handshake must fail: {text}");
    assert!(
        text.contains("alert") && text.contains("Cipher is (NONE)"),
        "{text}"
    );
    let ok = connect("-tls1_2");
    assert!(
        ok.status.success(),
        "TLS 1.2 must work: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains("Protocol  : TLSv1.2")
            || String::from_utf8_lossy(&ok.stdout).contains("TLSv1.2")
    );
}

#[test]
fn login_with_totp_works_and_the_same_code_replayed_is_refused() {
    let r = start();
    let curl = r.curl();
    let secret = enroll(&curl, &r.admin_enroll_url);
    assert_eq!(
        curl.get("/users").status,
        200,
        "a complete session reaches admin pages"
    );
    logout(&curl);
    assert_eq!(curl.get("/users").status, 303, "logged out");

    // The code of the next step is inside the ±1 window and newer than the enrollment's.
    let code = oathtool(&secret, 30);
    let first = curl.post("/login", &[("login", "admin"), ("password", PASSWORD)]);
    assert_eq!(first.header("location"), Some("/login/mfa"));
    let ok = curl.post("/login/mfa", &[("code", &code)]);
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert_eq!(ok.header("location"), Some("/"));
    logout(&curl);

    let again = curl.post("/login", &[("login", "admin"), ("password", PASSWORD)]);
    assert_eq!(again.header("location"), Some("/login/mfa"));
    let replay = curl.post("/login/mfa", &[("code", &code)]);
    assert_eq!(replay.status, 401, "a replayed code is refused");
    assert_eq!(curl.get("/users").status, 303, "no session after a replay");

    let audit = cli_ok(
        &r,
        &[
            "audit",
            "search",
            "--action",
            "login.mfa",
            "--outcome",
            "failure",
            "--json",
        ],
    );
    assert!(audit.contains("code already used"), "{audit}");
}

#[test]
fn repeated_failures_lock_the_account_and_are_audited() {
    let r = start();
    let curl = r.curl();
    enroll(&curl, &r.admin_enroll_url);
    logout(&curl);
    let url = format!("https://{}:{}/login", r.public_host, r.https_port);
    let attempt = |from: &str, login: &str, password: &str| {
        curl.run(&[
            "--interface",
            from,
            "--data-urlencode",
            &format!("login={login}"),
            "--data-urlencode",
            &format!("password={password}"),
            &url,
        ])
    };
    // An unknown user gets the same answer as a wrong password (from another address).
    let unknown = attempt("127.0.0.3", "nobody", "wrong-password-123");
    let wrong = attempt("127.0.0.3", "admin", "wrong-password-123");
    assert_eq!((unknown.status, wrong.status), (401, 401));
    assert!(unknown.body.contains("Invalid user name or password."));
    assert!(wrong.body.contains("Invalid user name or password."));
    for i in 0..4 {
        let resp = attempt("127.0.0.1", "admin", "wrong-password-123");
        assert_eq!(resp.status, 401, "attempt {i}");
    }
    // Five failures for the account: locked, even with the right password from a fresh address.
    let locked = attempt("127.0.0.2", "admin", PASSWORD);
    assert_eq!(locked.status, 429, "{}", locked.body);
    let audit = cli_ok(
        &r,
        &["audit", "search", "--action", "login.locked", "--json"],
    );
    assert!(audit.contains("\"subject\":\"admin\""), "{audit}");
    assert!(
        audit.contains("account"),
        "the account key was locked: {audit}"
    );
}

#[test]
fn audit_verify_finds_a_changed_row_and_a_deleted_row() {
    let mut r = start();
    let curl = r.curl();
    enroll(&curl, &r.admin_enroll_url);
    r.stop();
    let ok = r.cli(&["audit", "verify"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let db = r.data_dir().join("rampart.db");

    // The server and the CLI closed the database, so it is one file again (no WAL).
    assert!(
        !r.data_dir().join("rampart.db-wal").exists(),
        "a clean close checkpoints the WAL"
    );
    let copy = r.data_dir().join("pristine.db");
    std::fs::copy(&db, &copy).unwrap();
    sqlite(
        &db,
        "UPDATE audit_log SET subject = 'mallory' WHERE seq = 3;",
    );
    let changed = r.cli(&["audit", "verify"]);
    assert_eq!(changed.status.code(), Some(1));
    let text = String::from_utf8_lossy(&changed.stdout);
    assert!(
        text.contains("sequence 3") && text.contains("altered"),
        "{text}"
    );

    std::fs::copy(&copy, &db).unwrap();
    let _ = std::fs::remove_file(r.data_dir().join("rampart.db-wal"));
    let _ = std::fs::remove_file(r.data_dir().join("rampart.db-shm"));
    sqlite(&db, "DELETE FROM audit_log WHERE seq = 2;");
    let deleted = r.cli(&["audit", "verify"]);
    assert_eq!(deleted.status.code(), Some(1));
    let text = String::from_utf8_lossy(&deleted.stdout);
    assert!(
        text.contains("sequence 2") && text.contains("missing"),
        "{text}"
    );
}

#[test]
fn a_signed_checkpoint_reveals_a_cut_off_tail() {
    let mut r = start();
    let curl = r.curl();
    enroll(&curl, &r.admin_enroll_url);
    r.stop();
    let checkpoint = cli_ok(&r, &["audit", "checkpoint"]);
    let file = r.data_dir().join("checkpoint.txt");
    std::fs::write(&file, checkpoint).unwrap();
    let ok = r.cli(&["audit", "verify", "--checkpoint", file.to_str().unwrap()]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    sqlite(
        &r.data_dir().join("rampart.db"),
        "DELETE FROM audit_log WHERE seq = (SELECT MAX(seq) FROM audit_log);",
    );
    assert!(
        r.cli(&["audit", "verify"]).status.success(),
        "without the checkpoint a cut tail looks intact"
    );
    let cut = r.cli(&["audit", "verify", "--checkpoint", file.to_str().unwrap()]);
    assert_eq!(cut.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&cut.stdout).contains("removed"),
        "{}",
        String::from_utf8_lossy(&cut.stdout)
    );
}

#[test]
fn an_expired_grant_and_a_disabled_account_are_denied() {
    let mut r = start();
    let admin = r.curl();
    let secret = enroll(&admin, &r.admin_enroll_url);
    let out = cli_ok(&r, &["user", "add", "bob", "--email", "bob@example.com"]);
    let link = out
        .split_whitespace()
        .find(|w| w.contains("/enroll/"))
        .unwrap()
        .to_owned();
    cli_admin(
        &r,
        &secret,
        &["role", "add", "helpdesk", "--perm", "users.manage"],
    );
    cli_admin(
        &r,
        &secret,
        &["grant", "add", "bob", "helpdesk", "--hours", "1"],
    );
    let bob = r.curl();
    enroll(&bob, &link);
    assert_eq!(bob.get("/users").status, 200, "a live grant admits");

    // Move the grant's expiry into the past, as time would.
    r.stop();
    sqlite(
        &r.data_dir().join("rampart.db"),
        "UPDATE bindings SET expires_us = 1000000 WHERE account = 'bob';",
    );
    r.serve();
    let denied = bob.get("/users");
    assert_eq!(denied.status, 403, "an expired grant is denied");
    let audit = cli_ok(
        &r,
        &["audit", "search", "--action", "admin.denied", "--json"],
    );
    assert!(audit.contains("expired"), "{audit}");

    cli_ok(&r, &["user", "disable", "bob"]);
    let after = bob.get("/account");
    assert_eq!(after.status, 303, "a disabled account's session is gone");
    let relogin = bob.post("/login", &[("login", "bob"), ("password", PASSWORD)]);
    assert_eq!(relogin.status, 401);
    assert!(relogin.body.contains("Invalid user name or password."));
}

#[test]
fn oversized_headers_and_bodies_and_bad_forms_are_refused_cleanly() {
    let r = start();
    let curl = r.curl();
    let big_header = format!("X-Big: {}", "a".repeat(100 * 1024));
    let resp = curl.run(&[
        "--http1.1",
        "-H",
        &big_header,
        &format!("https://{}:{}/login", r.public_host, r.https_port),
    ]);
    assert_eq!(resp.status, 431);
    let body = r.data_dir().join("big-body");
    std::fs::write(
        &body,
        format!("login=x&password={}", "a".repeat(200 * 1024)),
    )
    .unwrap();
    // Refused before the body is read, over both protocols (over HTTP/2 the rest of the
    // body is read, not the stream reset, which curl 7.88 reports as a stream error).
    for protocol in ["--http1.1", "--http2"] {
        let resp = curl.run(&[
            protocol,
            "--data-binary",
            &format!("@{}", body.display()),
            &format!("https://{}:{}/login", r.public_host, r.https_port),
        ]);
        assert_eq!(resp.status, 413, "{protocol}");
    }
    let resp = curl.run(&[
        "--http1.1",
        "--data",
        "login=%ZZ&&&=",
        &format!("https://{}:{}/login", r.public_host, r.https_port),
    ]);
    assert_eq!(resp.status, 400);
    assert!(
        !resp.body.to_lowercase().contains("error:"),
        "no internal detail: {}",
        resp.body
    );
}

#[test]
fn a_cross_site_post_is_refused() {
    let r = start();
    let curl = r.curl();
    let url = format!("https://{}:{}/login", r.public_host, r.https_port);
    let origin = format!("Origin: https://{}:{}", r.public_host, r.https_port);
    // Both protocols: HTTP/2 carries the host in :authority, HTTP/1.1 in Host.
    for proto in ["--http1.1", "--http2"] {
        let resp = curl.run(&[
            proto,
            "-H",
            "Origin: https://evil.example",
            "--data",
            "login=admin&password=x",
            &url,
        ]);
        assert_eq!(resp.status, 403, "{proto}");
        let resp = curl.run(&[
            proto,
            "-H",
            "Sec-Fetch-Site: cross-site",
            "--data",
            "login=admin&password=x",
            &url,
        ]);
        assert_eq!(resp.status, 403, "{proto}");
        let same = curl.run(&[
            proto,
            "-H",
            &origin,
            "-H",
            "Sec-Fetch-Site: same-origin",
            "--data",
            "login=admin&password=wrong-password-1",
            &url,
        ]);
        assert_eq!(
            same.status, 401,
            "{proto}: a same-origin post goes through to the login check"
        );
    }
}

#[test]
fn report_shows_every_control_with_live_evidence() {
    let r = start();
    let curl = r.curl();
    enroll(&curl, &r.admin_enroll_url);
    let json: serde_json::Value =
        serde_json::from_str(&cli_ok(&r, &["report", "--format", "json"])).unwrap();
    let controls = json["controls"].as_array().unwrap();
    assert_eq!(controls.len(), 25);
    let status = |id: &str| {
        controls
            .iter()
            .find(|c| c["id"] == id)
            .map(|c| c["status"].as_str().unwrap_or("").to_owned())
            .unwrap()
    };
    assert_eq!(status("ENC-2"), "pass", "{json:#}");
    assert_eq!(status("ACC-1"), "pass");
    assert_eq!(status("ACC-2"), "pass");
    assert_eq!(status("ACC-6"), "pass");
    assert_eq!(status("LOG-3"), "pass");
    assert_eq!(status("BAK-1"), "not_checked");
    // The dashboard shows the same report.
    let dash = curl.get("/");
    assert_eq!(dash.status, 200);
    assert!(dash.body.contains("ENC-2") && dash.body.contains("EXT-2"));
}

#[test]
fn the_report_fails_enc2_when_the_front_door_is_down() {
    let mut r = start();
    r.stop();
    let json: serde_json::Value =
        serde_json::from_str(&cli_ok(&r, &["report", "--format", "json"])).unwrap();
    let enc2 = json["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "ENC-2")
        .unwrap()
        .clone();
    assert_eq!(enc2["status"], "fail", "{enc2:#}");
}

#[test]
fn sigterm_drains_and_records_the_shutdown() {
    let mut r = start();
    assert_eq!(r.stop(), Some(0));
    let last = cli_ok(&r, &["audit", "search", "--limit", "1", "--json"]);
    assert!(last.contains("system.shutdown"), "{last}");
}

#[test]
fn configuration_errors_exit_64_with_one_sentence() {
    let r = start();
    let config = r.data_dir().join("rampart.toml");
    let good = std::fs::read_to_string(&config).unwrap();
    let one_line = |out: &std::process::Output| {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        assert_eq!(out.status.code(), Some(64), "{err}");
        assert_eq!(err.lines().count(), 1, "one sentence: {err}");
        err
    };

    // A port in use: the running server holds it.
    let err = one_line(&r.cli(&["serve"]));
    assert!(
        err.contains(&format!("127.0.0.1:{}", r.https_port)) && err.contains("web.https_listen"),
        "{err}"
    );

    std::fs::write(&config, format!("{good}\n[web\n")).unwrap();
    let err = one_line(&r.cli(&["check-config"]));
    assert!(
        err.contains("rampart.toml") && err.contains("line"),
        "{err}"
    );

    std::fs::write(&config, format!("{good}\n[tls]\nmode = \"files\"\ncert_file = \"missing.pem\"\nkey_file = \"missing.key\"\n")).unwrap();
    let err = one_line(&r.cli(&["check-config"]));
    assert!(
        err.contains("tls.cert_file") && err.contains("missing.pem"),
        "{err}"
    );

    std::fs::write(
        &config,
        format!("{good}\n[policy]\nsession_idle_minutes = 1\n"),
    )
    .unwrap();
    let err = one_line(&r.cli(&["check-config"]));
    assert!(
        err.contains("session_idle_minutes") && err.contains("from 5 to 240"),
        "{err}"
    );

    std::fs::write(&config, &good).unwrap();
    assert!(r.cli(&["check-config"]).status.success());
}

/// Certificates from files are reloaded when the files change, without a restart.
#[test]
fn certificate_files_are_reloaded_when_they_change() {
    let dir = tempfile::tempdir().unwrap();
    let make = |cn: &str| {
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "2",
            ])
            .args([
                "-subj",
                &format!("/CN={cn}"),
                "-addext",
                "subjectAltName=DNS:gateway.test",
            ])
            .arg("-keyout")
            .arg(dir.path().join("new.key"))
            .arg("-out")
            .arg(dir.path().join("new.pem"))
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::rename(dir.path().join("new.key"), dir.path().join("key.pem")).unwrap();
        std::fs::rename(dir.path().join("new.pem"), dir.path().join("cert.pem")).unwrap();
    };
    make("first-certificate");
    let extra = format!(
        "[tls]\nmode = \"files\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        dir.path().join("cert.pem").display(),
        dir.path().join("key.pem").display()
    );
    let r = Rampart::start(bin(), &extra);
    let subject = || {
        let out = Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{}", r.https_port),
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl runs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.trim_start().starts_with("0 s:"))
            .unwrap_or("")
            .to_owned()
    };
    assert!(subject().contains("first-certificate"), "{}", subject());
    // The key first, then the certificate (as certbot and friends replace them).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    make("second-certificate");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !subject().contains("second-certificate") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert!(subject().contains("second-certificate"), "{}", subject());
}

/// An `admin` role made by an older version lacks the permissions added since: serving
/// gives them back (audited), unless a person has changed that role, whose choice stands.
#[test]
fn an_upgrade_gives_the_init_admin_role_new_permissions_unless_a_person_changed_it() {
    let mut r = start();
    let curl = r.curl();
    let secret = enroll(&curl, &r.admin_enroll_url);
    let drop_logs_view = "UPDATE roles SET body = json_set(body, '$.permissions', \
         (SELECT json_group_array(value) FROM json_each(roles.body, '$.permissions') \
          WHERE value <> 'logs.view')) WHERE name = 'admin';";
    let admin_row = |r: &Rampart| {
        cli_ok(r, &["role", "list"])
            .lines()
            .find(|l| l.contains(" admin "))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(admin_row(&r).contains("logs.view"), "{}", admin_row(&r));

    // As an older version left it: no logs.view. Serving again adds it back, audited.
    r.stop();
    sqlite(&r.data_dir().join("rampart.db"), drop_logs_view);
    assert!(!admin_row(&r).contains("logs.view"), "{}", admin_row(&r));
    r.serve();
    assert!(admin_row(&r).contains("logs.view"), "{}", admin_row(&r));
    let upgrade = cli_ok(
        &r,
        &["audit", "search", "--action", "role.create", "--json"],
    );
    assert!(
        upgrade.contains(r#"\"via\":\"upgrade\""#) && upgrade.contains("logs.view"),
        "{upgrade}"
    );

    // A person changes the role: what they chose is kept through restarts.
    cli_admin(
        &r,
        &secret,
        &[
            "role",
            "add",
            "admin",
            "--perm",
            "users.manage",
            "--perm",
            "roles.manage",
        ],
    );
    r.stop();
    r.serve();
    let row = admin_row(&r);
    assert!(
        row.contains("users.manage") && !row.contains("logs.view"),
        "{row}"
    );
}
