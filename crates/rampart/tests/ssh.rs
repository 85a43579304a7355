//! The SSH bastion with real peers: two OpenSSH `sshd` targets in different environments
//! trusting rampart's user CA, and the stock `ssh`, `scp` and `sftp` clients answering the
//! TOTP prompt through `SSH_ASKPASS` with a code from `oathtool`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::process::Output;
use std::time::Duration;

use rampart_testkit::sshd::{Client, Sshd, run_with_deadline};
use rampart_testkit::{free_port, wait_for_port};
use support::{Rampart, bin, cli_ok, enroll, oathtool, sqlite};

/// rampart with the bastion on, alice enrolled with a registered key and a grant for
/// root on `web-*` in production; `web-1` (production) and `db-1` (staging) targets.
struct World {
    r: Rampart,
    port: u16,
    web: Sshd,
    db: Sshd,
    alice: Client,
    secret: String,
}

fn world(extra: &str) -> World {
    let port = free_port();
    let r = Rampart::start(
        bin(),
        &format!("[ssh]\nlisten = \"127.0.0.1:{port}\"\n{extra}"),
    );
    wait_for_port(port, Duration::from_secs(10), "the SSH bastion");
    let ca = cli_ok(&r, &["ssh", "ca"]);
    let ca_line = ca
        .lines()
        .find(|l| l.starts_with("ssh-ed25519 "))
        .expect("CA line");
    let web = Sshd::start(ca_line);
    let db = Sshd::start(ca_line);
    let added = cli_ok(
        &r,
        &["user", "add", "alice", "--email", "alice@example.com"],
    );
    let link = added
        .split_whitespace()
        .find(|w| w.contains("/enroll/"))
        .expect("enrollment link")
        .replace(
            "https://localhost:8443",
            &format!("https://{}:{}", r.public_host, r.https_port),
        );
    let secret = enroll(&r.curl(), &link);
    let alice = Client::new();
    cli_ok(
        &r,
        &[
            "ssh",
            "key",
            "add",
            "alice",
            alice.public_key().to_str().unwrap(),
        ],
    );
    for (name, sshd, env) in [("web-1", &web, "production"), ("db-1", &db, "staging")] {
        cli_ok(
            &r,
            &[
                "target",
                "add",
                name,
                "--kind",
                "ssh",
                "--address",
                &sshd.address(),
                "--env",
                env,
            ],
        );
    }
    cli_ok(
        &r,
        &["role", "add", "web-ops", "--grant", "web-* production root"],
    );
    cli_ok(&r, &["grant", "add", "alice", "web-ops"]);
    World {
        r,
        port,
        web,
        db,
        alice,
        secret,
    }
}

impl World {
    /// `ssh` as `user`, answering the TOTP prompt with the next step's code (enrollment
    /// used the current one, and a step is accepted once); later connections from the same
    /// key and address are remembered and not asked.
    fn ssh(&self, user: &str, args: &[&str]) -> Output {
        self.alice.ssh(self.port, user, &self.code(), args)
    }

    fn code(&self) -> String {
        oathtool(&self.secret, 30)
    }

    fn audit(&self, action: &str) -> String {
        cli_ok(&self.r, &["audit", "search", "--action", action, "--json"])
    }
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn key_and_totp_reach_the_target_which_logs_the_persons_key_id() {
    let w = world("");
    let out = w.ssh("alice:web-1", &["echo", "hello-from-target;", "exit", "3"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("hello-from-target"),
        "{}",
        text(&out)
    );
    // The target's own log names the person and the session through the certificate.
    let log = w.web.log();
    assert!(log.contains("ID rampart:alice:"), "{log}");
    // The other spelling and an explicit login work too.
    let out = w.ssh("alice#root@web-1", &["true"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Start and end are audited with bytes and exit status.
    let starts = w.audit("ssh.session.start");
    assert!(
        starts.contains("web-1") && starts.contains(r#"\"login\":\"root\""#),
        "{starts}"
    );
    let ends = w.audit("ssh.session.end");
    assert!(ends.contains(r#"\"exit_status\":\"3\""#), "{ends}");
    let execs = w.audit("ssh.exec");
    assert!(execs.contains("hello-from-target"), "{execs}");
}

#[test]
fn scp_and_sftp_copy_files_through_the_bastion() {
    let w = world("");
    let unique = format!("rampart-scp-{}", std::process::id());
    let src = w.alice.dir().join("payload.bin");
    let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&src, &payload).unwrap();
    // Log in once (TOTP), then scp and sftp are remembered. scp and sftp split
    // `user@host:path` at the first ':', so they use the `person#target` spelling.
    assert_eq!(w.ssh("alice:web-1", &["true"]).status.code(), Some(0));
    let remote = format!("/tmp/{unique}.bin");
    let mut scp = w.alice.command("scp", w.port, &w.code());
    scp.arg(&src).arg(format!("alice#web-1@127.0.0.1:{remote}"));
    let out = run_with_deadline(scp, Duration::from_secs(60));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read(&remote).unwrap(), payload);
    // Legacy scp protocol (exec of `scp -t`) too.
    // Legacy scp checks user names itself and refuses '#': the user goes in -o User.
    let mut scp = w.alice.command("scp", w.port, &w.code());
    scp.args(["-O", "-o", "User=alice:web-1"])
        .arg(format!("127.0.0.1:{remote}"))
        .arg(w.alice.dir().join("back.bin"));
    let out = run_with_deadline(scp, Duration::from_secs(60));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read(w.alice.dir().join("back.bin")).unwrap(),
        payload
    );
    // sftp in batch mode.
    let batch = w.alice.dir().join("batch");
    std::fs::write(
        &batch,
        format!(
            "get {remote} {}\nrm {remote}\n",
            w.alice.dir().join("sftp.bin").display()
        ),
    )
    .unwrap();
    let mut sftp = w.alice.command("sftp", w.port, &w.code());
    sftp.arg("-b").arg(&batch).arg("alice#web-1@127.0.0.1");
    let out = run_with_deadline(sftp, Duration::from_secs(60));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read(w.alice.dir().join("sftp.bin")).unwrap(),
        payload
    );
    assert!(!std::path::Path::new(&remote).exists());
    let execs = w.audit("ssh.exec");
    assert!(
        execs.contains("sftp") && execs.contains("scp -f"),
        "{execs}"
    );
}

#[test]
fn missing_or_wrong_totp_and_a_key_of_another_account_are_refused() {
    let w = world("");
    let wrong = w.alice.ssh(w.port, "alice:web-1", "000000", &["true"]);
    assert_eq!(wrong.status.code(), Some(255), "{}", text(&wrong));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("Permission denied"));
    let missing = w.alice.ssh(w.port, "alice:web-1", "", &["true"]);
    assert_eq!(missing.status.code(), Some(255), "{}", text(&missing));
    let failures = w.audit("login.mfa");
    assert!(
        failures.contains("wrong code") && failures.contains(r#"\"via\":\"ssh\""#),
        "{failures}"
    );

    // bob's key does not open alice's account, and one key belongs to one account only.
    cli_ok(&w.r, &["user", "add", "bob", "--email", "bob@example.com"]);
    let bob = Client::new();
    cli_ok(
        &w.r,
        &[
            "ssh",
            "key",
            "add",
            "bob",
            bob.public_key().to_str().unwrap(),
        ],
    );
    let again = w.r.cli(&[
        "ssh",
        "key",
        "add",
        "alice",
        bob.public_key().to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(64), "{again:?}");
    let stolen = bob.ssh(w.port, "alice:web-1", &w.code(), &["true"]);
    assert_eq!(stolen.status.code(), Some(255), "{}", text(&stolen));
    let denials = w.audit("ssh.login");
    assert!(
        denials.contains("key registered to another account"),
        "{denials}"
    );

    // The right code still works after those failures.
    let ok = w.ssh("alice:web-1", &["true"]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
}

#[test]
fn ungranted_target_login_expired_grant_and_forwarding_are_refused() {
    let w = world("");
    // With no target, the list of reachable targets.
    let list = w.ssh("alice", &[]);
    let listed = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(
        listed.contains("web-1") && !listed.contains("db-1"),
        "{}",
        text(&list)
    );
    for user in ["alice:db-1", "alice:nobody@web-1", "alice:no-such-target"] {
        let out = w.ssh(user, &["true"]);
        assert_eq!(out.status.code(), Some(1), "{user}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("rampart: access denied"), "{user}: {err}");
        assert!(
            !err.contains("staging") && !err.contains("grant"),
            "{user}: {err}"
        );
    }
    let decisions = w.audit("access.authorize");
    assert!(
        decisions.contains("unknown target") && decisions.contains("no role of alice"),
        "{decisions}"
    );

    // -W (a direct-tcpip channel, as -L uses) is refused: the grant names no destination.
    let fwd = w.ssh("alice:web-1", &["-W", &w.db.address()]);
    assert_eq!(fwd.status.code(), Some(255), "{}", text(&fwd));
    assert!(
        String::from_utf8_lossy(&fwd.stderr).contains("forwarding failed"),
        "{}",
        text(&fwd)
    );
    assert!(w.audit("ssh.forward").contains(&w.db.address()));

    // An expired grant is refused with the reason in the audit log.
    sqlite(
        &w.r.data_dir().join("rampart.db"),
        "UPDATE bindings SET expires_us = 1000000 WHERE account = 'alice';",
    );
    let out = w.ssh("alice:web-1", &["true"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let decisions = w.audit("access.authorize");
    assert!(decisions.contains("expired"), "{}\n{decisions}", text(&out));
}
