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
use support::{Curl, Rampart, bin, cli_admin, cli_ok, enroll, oathtool, sqlite};

/// rampart with the bastion on, alice enrolled with a registered key and a grant for
/// root on `web-*` in production; `web-1` (production) and `db-1` (staging) targets. The
/// first admin is enrolled (its web session and TOTP secret kept): changing roles and grants
/// needs it.
struct World {
    r: Rampart,
    port: u16,
    web: Sshd,
    db: Sshd,
    alice: Client,
    secret: String,
    admin: Curl,
    admin_secret: String,
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
    let admin = r.curl();
    let admin_secret = enroll(&admin, &r.admin_enroll_url);
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
    cli_admin(
        &r,
        &admin_secret,
        &["role", "add", "web-ops", "--grant", "web-* production root"],
    );
    cli_admin(&r, &admin_secret, &["grant", "add", "alice", "web-ops"]);
    World {
        r,
        port,
        web,
        db,
        alice,
        secret,
        admin,
        admin_secret,
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
    // ENC-3 evidence: the sessions and who holds SSH grants.
    let report = cli_ok(&w.r, &["report"]);
    let enc3 = report
        .lines()
        .skip_while(|l| !l.contains("ENC-3"))
        .take(8)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        enc3.contains("2 SSH sessions in the last 30 days"),
        "{enc3}"
    );
    assert!(enc3.contains("SSH grants held by: alice"), "{enc3}");
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
    // rsync over the bastion (it runs `rsync --server` by exec).
    let ssh = format!(
        "ssh {} -o User=alice:web-1",
        w.alice.options(w.port).join(" ").replace("-P ", "-p ")
    );
    let mut rsync = std::process::Command::new("rsync");
    rsync
        .args(["-a", "-e", &ssh])
        .arg(&src)
        .arg(format!("127.0.0.1:{remote}.rsync"));
    let out = run_with_deadline(rsync, Duration::from_secs(60));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read(format!("{remote}.rsync")).unwrap(), payload);
    let _ = std::fs::remove_file(format!("{remote}.rsync"));
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

/// The id of alice's newest session, from `rampart sessions list`.
fn newest_session(w: &World, all: bool) -> Option<String> {
    let mut args = vec!["sessions", "list"];
    if all {
        args.push("--all");
    }
    let list = cli_ok(&w.r, &args);
    list.lines()
        .filter(|l| l.contains("alice"))
        .find_map(|l| {
            l.trim_start_matches('│')
                .split('┆')
                .next()
                .map(|c| c.trim().to_owned())
        })
        .filter(|id| !id.is_empty())
}

#[test]
fn a_shell_is_recorded_scrubbed_and_replays() {
    let w = world("");
    assert_eq!(w.ssh("alice:web-1", &["true"]).status.code(), Some(0));
    let script = w.alice.dir().join("typed");
    std::fs::write(&script, "echo mail alice@example.com here\nexit\n").unwrap();
    let mut cmd = w.alice.command("ssh", w.port, &w.code());
    cmd.args(["-tt", "alice:web-1@127.0.0.1"])
        .stdin(std::fs::File::open(&script).unwrap());
    let out = run_with_deadline(cmd, Duration::from_secs(60));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("mail alice@example.com here"),
        "{}",
        text(&out)
    );

    let id = newest_session(&w, true).expect("a session is listed");
    let on_disk = std::fs::read_to_string(
        w.r.data_dir()
            .join("recordings")
            .join(format!("{id}.cast.sealed")),
    )
    .unwrap_or_else(|e| {
        panic!(
            "no recording for {id} ({e}): {:?}\n{}",
            std::fs::read_dir(w.r.data_dir().join("recordings"))
                .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>()),
            cli_ok(&w.r, &["sessions", "list", "--all"])
        )
    });
    assert!(!on_disk.contains("alice@example.com") && !on_disk.contains("mail"));
    let cast = cli_ok(&w.r, &["sessions", "play", &id, "--raw"]);
    let header: serde_json::Value = serde_json::from_str(cast.lines().next().unwrap()).unwrap();
    assert_eq!(header["version"], 2, "{cast}");
    assert!(cast.contains("mail") && cast.contains("here"), "{cast}");
    assert!(!cast.contains("alice@example.com"), "{cast}");
    for line in cast.lines().skip(1) {
        let ev: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(ev[0].is_f64() || ev[0].is_u64(), "{line}");
        assert!(
            ["o", "i", "r", "m"].contains(&ev[1].as_str().unwrap()),
            "{line}"
        );
    }
    let played = cli_ok(&w.r, &["sessions", "play", &id, "--speed", "100"]);
    assert!(
        played.contains("here") && !played.contains("alice@example.com"),
        "{played}"
    );

    // The web player: the recording page runs the vendored asciinema player under a
    // policy of its own (scripts from rampart itself only); every other page keeps the
    // front door's, which allows no script. Chromium plays the scrubbed session.
    let admin = &w.admin;
    let recording = format!("/ssh/sessions/{id}/recording");
    let page = admin.get(&recording);
    assert_eq!(page.status, 200, "{}", page.body);
    let policy = page.header("content-security-policy").unwrap_or_default();
    assert!(
        policy.contains("script-src 'self' 'wasm-unsafe-eval'"),
        "{policy}"
    );
    assert!(
        page.body.contains("/static/asciinema-player.js"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("alice@example.com"));
    let js = admin.get("/static/asciinema-player.js");
    assert_eq!(js.status, 200);
    assert!(
        js.header("content-type")
            .unwrap_or_default()
            .starts_with("text/javascript"),
        "{:?}",
        js.header("content-type")
    );
    let list = admin.get("/ssh/sessions");
    let policy = list.header("content-security-policy").unwrap_or_default();
    assert!(
        policy.starts_with("default-src 'none'") && !policy.contains("script-src"),
        "{policy}"
    );
    let origin = w.r.origin();
    support::browser(
        "replay.mjs",
        &[
            origin.as_ref(),
            admin.jar().as_os_str(),
            recording.as_ref(),
            "here".as_ref(),
        ],
        "replay passed",
    );
}

/// Starts `ssh … sleep 120` through the bastion; returns the client and the session id
/// once `rampart sessions list` shows it live.
fn live_session(w: &World) -> (std::process::Child, String) {
    assert_eq!(w.ssh("alice:web-1", &["true"]).status.code(), Some(0));
    let mut cmd = w.alice.command("ssh", w.port, &w.code());
    cmd.args(["alice:web-1@127.0.0.1", "sleep", "120"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let id = loop {
        if let Some(id) = newest_session(w, false) {
            break id;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no live session listed"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    (child, id)
}

/// Waits (at most 30 s) for the client to exit.
fn ended(child: std::process::Child) -> Output {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the client's session ended")
        .unwrap()
}

#[test]
fn terminate_from_the_cli_ends_the_clients_session() {
    let w = world("");
    let (child, id) = live_session(&w);
    cli_ok(&w.r, &["sessions", "kill", &id]);
    let out = ended(child);
    assert_eq!(out.status.code(), Some(255), "{}", text(&out));
    let ends = w.audit("ssh.session.end");
    assert!(ends.contains("ended by an administrator"), "{ends}");
    assert!(w.audit("ssh.session.kill").contains(&id));
    assert!(newest_session(&w, false).is_none());
}

#[test]
fn a_grant_removed_during_a_session_ends_it() {
    let w = world("");
    let (child, _id) = live_session(&w);
    cli_admin(
        &w.r,
        &w.admin_secret,
        &["grant", "remove", "alice", "web-ops"],
    );
    let out = ended(child);
    assert_eq!(out.status.code(), Some(255), "{}", text(&out));
    let ends = w.audit("ssh.session.end");
    assert!(ends.contains("the grant was removed or expired"), "{ends}");
}

#[test]
fn a_changed_target_host_key_is_refused_and_audited() {
    let mut w = world("");
    assert_eq!(w.ssh("alice:web-1", &["true"]).status.code(), Some(0));
    assert!(w.audit("ssh.hostkey").contains("pinned"));
    w.web.change_host_key();
    let out = w.ssh("alice:web-1", &["true"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("host key changed"),
        "{}",
        text(&out)
    );
    let events = w.audit("ssh.hostkey");
    assert!(
        events.contains("denied") && events.contains("expected"),
        "{events}"
    );
    // After an operator confirms the change, the new key is pinned.
    cli_ok(&w.r, &["ssh", "unpin", "web-1"]);
    assert_eq!(w.ssh("alice:web-1", &["true"]).status.code(), Some(0));
}

#[test]
fn bad_input_gets_a_clear_answer_and_leaves_others_unaffected() {
    use std::io::{Read, Write};
    let w = world("login_grace_seconds = 10\n");
    // Garbage on the port: the version line, then the connection closes.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", w.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(String::from_utf8_lossy(&got).starts_with("SSH-2.0-rampart"));
    // A stalled handshake is closed after the login grace time (deadline-bound).
    let mut stalled = std::net::TcpStream::connect(("127.0.0.1", w.port)).unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut sink = Vec::new();
    let closed = stalled.read_to_end(&mut sink);
    assert!(closed.is_ok(), "{closed:?}");
    // A 64 KB user name gets a message, not a crash.
    let long = "a".repeat(64 * 1024);
    let out = w.ssh(&long, &["true"]);
    assert_eq!(out.status.code(), Some(255), "{}", text(&out));
    // A target that is down: a clear message and an audit record.
    cli_ok(
        &w.r,
        &[
            "target",
            "add",
            "web-9",
            "--kind",
            "ssh",
            "--address",
            &format!("127.0.0.1:{}", free_port()),
            "--env",
            "production",
        ],
    );
    let down = w.ssh("alice:web-9", &["true"]);
    assert_eq!(down.status.code(), Some(1), "{}", text(&down));
    assert!(
        String::from_utf8_lossy(&down.stderr).contains("unreachable"),
        "{}",
        text(&down)
    );
    let refused = w.audit("ssh.login");
    assert!(
        refused.contains("protocol error") || refused.contains("handshake"),
        "{refused}"
    );
    // Others are unaffected.
    let ok = w.ssh("alice:web-1", &["echo", "still-fine"]);
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains("still-fine"),
        "{}",
        text(&ok)
    );
}

#[test]
fn ssh_audit_finds_no_failure_and_no_warning_beyond_algorithms_it_predates() {
    let w = world("");
    let mut cmd = std::process::Command::new("ssh-audit");
    cmd.args(["-p", &w.port.to_string(), "127.0.0.1"]);
    let out = run_with_deadline(cmd, Duration::from_secs(60));
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(report.contains("(key) ssh-ed25519"), "{report}");
    assert!(!report.contains("[fail]"), "{report}");
    // Debian 12's ssh-audit (2.5) predates the post-quantum key exchange and the strict-kex
    // marker (the Terrapin fix); it warns "unknown algorithm" for them and exits 2 for
    // that. Any other warning fails this test.
    let warnings: Vec<&str> = report
        .lines()
        .filter(|l| l.contains("[warn]"))
        .filter(|l| {
            !(l.contains("unknown algorithm")
                && (l.contains("mlkem768x25519-sha256") || l.contains("kex-strict-s-v00")))
        })
        .collect();
    assert!(warnings.is_empty(), "{warnings:?}\n{report}");
    let unknown_only = report
        .lines()
        .find(|l| l.contains("unknown algorithm(s) found"))
        .is_none_or(|l| l.contains("mlkem768x25519-sha256,kex-strict-s-v00@openssh.com."));
    assert!(unknown_only, "{report}");
    assert!(matches!(out.status.code(), Some(0 | 2)), "{}", text(&out));
}

#[test]
fn local_forwarding_reaches_only_destinations_the_grant_names_in_its_environment() {
    let w = world("");
    let web = w.web.address();
    let db = w.db.address();
    cli_admin(
        &w.r,
        &w.admin_secret,
        &[
            "role",
            "add",
            "web-ops",
            "--grant",
            &format!("web-* production root forward={web} forward={db}"),
        ],
    );
    // Replacing the role keeps alice's grant to it (the store updates the role in place):
    // what follows goes through the grant `world` made.
    // A named destination in the target's environment: the target's own sshd answers.
    let through = w.ssh("alice:web-1", &["-W", &web]);
    assert!(
        String::from_utf8_lossy(&through.stdout).starts_with("SSH-2.0-OpenSSH"),
        "{}",
        text(&through)
    );
    assert!(w.audit("ssh.forward").contains(&web));
    // Named, but a target of another environment lives there: refused.
    let other_env = w.ssh("alice:web-1", &["-W", &db]);
    assert_eq!(other_env.status.code(), Some(255), "{}", text(&other_env));
    // Not named: refused.
    let unnamed = w.ssh(
        "alice:web-1",
        &["-W", &format!("127.0.0.1:{}", w.r.https_port)],
    );
    assert_eq!(unnamed.status.code(), Some(255), "{}", text(&unnamed));
    let refusals = w.audit("ssh.forward");
    assert!(
        refusals.contains("denied") && refusals.contains(&db),
        "{refusals}"
    );
}

#[test]
fn repeated_wrong_totp_locks_the_account_for_ssh_and_the_web_alike() {
    let w = world("\n[policy]\nlockout_failures = 3\nlockout_seconds = 600\n");
    for _ in 0..3 {
        let wrong = w.alice.ssh(w.port, "alice:web-1", "000000", &["true"]);
        assert_eq!(wrong.status.code(), Some(255), "{}", text(&wrong));
    }
    assert!(w.audit("login.locked").contains("alice"));
    // The right code no longer opens the bastion while the lock lasts.
    let right = w.ssh("alice:web-1", &["true"]);
    assert_eq!(right.status.code(), Some(255), "{}", text(&right));
    assert!(w.audit("ssh.login").contains("locked"));
    // The web login's second factor shares the lock.
    let web = w.r.curl();
    let first = web.post(
        "/login",
        &[("login", "alice"), ("password", support::PASSWORD)],
    );
    assert_eq!(first.status, 303, "{}", first.body);
    let mfa = web.post("/login/mfa", &[("code", &oathtool(&w.secret, 30))]);
    assert_eq!(mfa.status, 429, "{}", mfa.body);
}

#[test]
fn a_target_that_refuses_the_certificate_is_reached_with_its_static_key_or_not_at_all() {
    let w = world("");
    let static_key = Client::new();
    let legacy = Sshd::start_with_key(&std::fs::read_to_string(static_key.public_key()).unwrap());
    cli_ok(
        &w.r,
        &[
            "target",
            "add",
            "web-legacy",
            "--kind",
            "ssh",
            "--address",
            &legacy.address(),
            "--env",
            "production",
        ],
    );
    // No static key: the certificate is refused, and the client is told so.
    let refused = w.ssh("alice:web-legacy", &["true"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("refused rampart's certificate"),
        "{}",
        text(&refused)
    );
    // With the target's static key set, the same session goes through.
    cli_ok(
        &w.r,
        &[
            "ssh",
            "static-key",
            "web-legacy",
            static_key.key.to_str().unwrap(),
        ],
    );
    let ok = w.ssh("alice:web-legacy", &["echo", "legacy-ok"]);
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains("legacy-ok"),
        "{}",
        text(&ok)
    );
    assert!(w.audit("ssh.login").contains("static key"));
}

#[test]
fn a_target_with_a_host_certificate_from_a_trusted_ca_is_not_pinned_and_survives_a_key_change() {
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = ca_dir.path().join("host_ca");
    rampart_testkit::sshd::keygen(&ca, "host CA");
    let ca_line = std::fs::read_to_string(ca.with_extension("pub")).unwrap();
    let mut w = world(&format!("target_host_cas = [\"{}\"]\n", ca_line.trim()));
    w.web.certify_host(&ca);
    assert_eq!(w.ssh("alice:web-1", &["true"]).status.code(), Some(0));
    assert!(
        !w.audit("ssh.hostkey").contains("web-1"),
        "a certified host is not pinned"
    );
    // A new host key, certified again by the same CA: still trusted.
    w.web.change_host_key();
    w.web.certify_host(&ca);
    let out = w.ssh("alice:web-1", &["true"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn a_client_that_stops_reading_cannot_make_rampart_buffer_without_bound() {
    let w = world("");
    assert_eq!(w.ssh("alice:web-1", &["true"]).status.code(), Some(0));
    // The target writes as fast as it can; the client's stdout is a pipe nobody reads.
    let mut cmd = w.alice.command("ssh", w.port, &w.code());
    cmd.args(["alice:web-1@127.0.0.1", "cat /dev/zero"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    // Observation windows, not ordering: unbounded buffering of a local `cat /dev/zero`
    // would grow by hundreds of MiB in each.
    std::thread::sleep(Duration::from_secs(3));
    let before = w.r.rss_kib();
    std::thread::sleep(Duration::from_secs(3));
    let after = w.r.rss_kib();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        after < before + 16 * 1024,
        "rampart grew from {before} KiB to {after} KiB"
    );
    // Others are still served.
    let ok = w.ssh("alice:web-1", &["echo", "fine"]);
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains("fine"),
        "{}",
        text(&ok)
    );
}

#[test]
fn sessions_left_live_by_a_stopped_rampart_are_ended_when_it_serves_again() {
    let mut w = world("");
    let (child, _id) = live_session(&w);
    w.r.stop();
    let _ = ended(child);
    w.r.serve();
    wait_for_port(w.port, Duration::from_secs(10), "the SSH bastion");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while newest_session(&w, false).is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "a session is still listed live"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        w.audit("ssh.session.end")
            .contains("rampart stopped while it was live")
    );
}

/// People add and remove their own SSH keys on the account page; a key already registered
/// to someone else is refused (ACC-1), and the page's title is just its title.
#[test]
fn keys_are_added_and_removed_on_the_account_page() {
    let r = support::start();
    let admin = r.curl();
    enroll(&admin, &r.admin_enroll_url);
    let key = Client::new();
    let public = std::fs::read_to_string(key.public_key()).unwrap();

    let page = admin.get("/account");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("<title>My account · rampart</title>"),
        "{}",
        page.body
    );
    let added = admin.post("/account/ssh-keys", &[("key", public.trim())]);
    assert_eq!(added.status, 303, "{}", added.body);
    let listed = cli_ok(&r, &["ssh", "key", "list", "admin"]);
    let fingerprint = listed
        .split_whitespace()
        .find(|w| w.starts_with("SHA256:"))
        .unwrap_or_else(|| panic!("no fingerprint in {listed}"))
        .to_owned();
    assert!(admin.get("/account").body.contains(&fingerprint));

    // Someone else cannot register the same key.
    let added = cli_ok(&r, &["user", "add", "bob", "--email", "bob@example.com"]);
    let link = added
        .split_whitespace()
        .find(|w| w.contains("/enroll/"))
        .unwrap()
        .replace(
            "https://localhost:8443",
            &format!("https://{}:{}", r.public_host, r.https_port),
        );
    let bob = r.curl();
    enroll(&bob, &link);
    let stolen = bob.post("/account/ssh-keys", &[("key", public.trim())]);
    assert_eq!(stolen.status, 409, "{}", stolen.body);
    assert!(
        cli_ok(&r, &["ssh", "key", "list", "bob"])
            .find("SHA256:")
            .is_none()
    );

    let removed = admin.post("/account/ssh-keys/remove", &[("fingerprint", &fingerprint)]);
    assert_eq!(removed.status, 303, "{}", removed.body);
    assert!(!cli_ok(&r, &["ssh", "key", "list", "admin"]).contains(&fingerprint));
    let audit = cli_ok(&r, &["audit", "search", "--action", "ssh.key", "--json"]);
    assert!(
        audit.contains("ssh.key.add") && audit.contains("ssh.key.remove"),
        "{audit}"
    );
}
