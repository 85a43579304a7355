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
