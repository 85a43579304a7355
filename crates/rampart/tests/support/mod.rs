//! Shared steps of the end-to-end tests: enroll a person, log in.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

pub use rampart_testkit::rampart::{Curl, Rampart, Response, between, oathtool};

pub const PASSWORD: &str = "vivid-otter-canyon-42-lamp";

pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_rampart"))
}

pub fn start() -> Rampart {
    Rampart::start(bin(), "")
}

/// The path and query of a URL (what curl is pointed at).
pub fn path_of(url: &str) -> &str {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    rest.find('/').and_then(|i| rest.get(i..)).unwrap_or("/")
}

/// Uses an enrollment link: sets the password, enrolls TOTP with a code from oathtool.
/// Returns the TOTP secret; the session is complete afterwards.
pub fn enroll(curl: &Curl, enroll_url: &str) -> String {
    let path = path_of(enroll_url);
    let page = curl.get(path);
    assert_eq!(page.status, 200, "{}", page.body);
    let set = curl.post(path, &[("password", PASSWORD), ("confirm", PASSWORD)]);
    assert_eq!(set.status, 303, "{}", set.body);
    assert_eq!(set.header("location"), Some("/mfa/enroll"));
    let mfa = curl.get("/mfa/enroll");
    assert_eq!(mfa.status, 200, "{}", mfa.body);
    let secret = between(&mfa.body, "<code id=\"totp-secret\">", "</code>")
        .expect("secret shown")
        .to_owned();
    let sealed = between(&mfa.body, "name=\"sealed\" value=\"", "\"")
        .expect("sealed field")
        .to_owned();
    let done = curl.post(
        "/mfa/enroll",
        &[("sealed", &sealed), ("code", &oathtool(&secret, 0))],
    );
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("recovery codes"), "{}", done.body);
    secret
}

/// Logs in with password and a TOTP code `offset` seconds ahead; returns the MFA response.
pub fn login(curl: &Curl, user: &str, secret: &str, offset: i64) -> Response {
    let first = curl.post("/login", &[("login", user), ("password", PASSWORD)]);
    assert_eq!(first.status, 303, "{}", first.body);
    assert_eq!(first.header("location"), Some("/login/mfa"));
    curl.post("/login/mfa", &[("code", &oathtool(secret, offset))])
}

pub fn logout(curl: &Curl) {
    let out = curl.post("/logout", &[]);
    assert_eq!(out.status, 303);
}

/// Runs the CLI and returns stdout, asserting success.
pub fn cli_ok(r: &Rampart, args: &[&str]) -> String {
    let out = r.cli(args);
    assert!(
        out.status.success(),
        "rampart {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a CLI command that changes roles or grants, which needs a person holding
/// roles.manage with a second-factor check within 5 minutes (ACC-2): `--as admin`, and when
/// rampart answers that a code is needed, once more with the code of the next 30-second step
/// (the current one may already be taken by the enrollment or a login). Returns the output.
pub fn as_admin(r: &Rampart, secret: &str, args: &[&str]) -> std::process::Output {
    let mut with: Vec<&str> = args.to_vec();
    with.extend(["--as", "admin"]);
    let out = r.cli(&with);
    if out.status.success() || !String::from_utf8_lossy(&out.stderr).contains("give a current code")
    {
        return out;
    }
    let code = oathtool(secret, 30);
    with.extend(["--code", &code]);
    r.cli(&with)
}

/// [`as_admin`], asserting success; returns stdout.
pub fn cli_admin(r: &Rampart, secret: &str, args: &[&str]) -> String {
    let out = as_admin(r, secret, args);
    assert!(
        out.status.success(),
        "rampart {args:?} --as admin: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `tests/browser/SCRIPT ARGS…` with node (Debian's headless Chromium driven by
/// playwright-core); asserts that it succeeded and printed `passed`; returns its output.
pub fn browser(script: &str, args: &[&std::ffi::OsStr], passed: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    assert!(
        root.join("tests/browser/node_modules/playwright-core")
            .exists(),
        "playwright-core missing: run scripts/test (or `cd tests/browser && npm ci`)"
    );
    let out = std::process::Command::new("node")
        .arg(root.join("tests/browser").join(script))
        .args(args)
        .output()
        .expect("node runs (apt-get install -y nodejs)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{script}: {said}");
    assert!(said.contains(passed), "{script}: {said}");
    said
}

/// Runs SQL on the SQLite database with python3's sqlite3 module (the server stopped).
pub fn sqlite(db: &Path, sql: &str) {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()"])
        .arg(db)
        .arg(sql)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "sqlite: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Creates a service account `svc-SOURCE` owned by admin and a log-source token for
/// `source` held by it; returns the token.
pub fn token_for(r: &Rampart, source: &str) -> String {
    let account = format!("svc-{source}");
    cli_ok(
        r,
        &[
            "user",
            "add",
            &account,
            "--kind",
            "service",
            "--owner",
            "admin",
            "--email",
            &format!("{account}@rampart.localhost"),
        ],
    );
    let token = cli_ok(
        r,
        &["logs", "token", "create", source, "--account", &account],
    );
    let token = token.trim().to_owned();
    assert!(token.starts_with("rlt_"), "{token}");
    token
}

/// A tiny HTTP receiver: each request's signature header and body go to the channel.
pub fn receiver() -> (u16, mpsc::Receiver<(String, Vec<u8>)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut signature = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    match k.to_ascii_lowercase().as_str() {
                        "x-rampart-signature" => signature = v.trim().to_owned(),
                        "content-length" => length = v.trim().parse().unwrap_or(0),
                        _ => {}
                    }
                }
            }
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body).unwrap();
            let _ = stream.write_all(
                b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            if tx.send((signature, body)).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

/// HMAC-SHA-256 of `body` under `key`, computed by openssl independently of rampart, in
/// the form rampart's webhooks sign with (`sha256=<hex>`).
pub fn openssl_hmac(key: &str, body: &[u8]) -> String {
    let mut child = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", key, "-hex"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl missing: apt-get install -y openssl");
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    format!("sha256={}", text.trim().rsplit(' ').next().unwrap())
}

/// The next webhook `receiver()` got, within 30 s, its signature checked against `key`.
pub fn next_notice(
    rx: &mpsc::Receiver<(String, Vec<u8>)>,
    r: &Rampart,
    key: &str,
) -> serde_json::Value {
    let (signature, body) = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("no webhook within 30 s; log:\n{}", r.log()));
    assert_eq!(
        signature,
        openssl_hmac(key, &body),
        "signature does not verify"
    );
    serde_json::from_slice(&body).unwrap()
}
