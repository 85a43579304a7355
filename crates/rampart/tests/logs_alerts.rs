//! An error burst fires an alert once (de-duplicated), audited, with a signed webhook
//! that a local receiver verifies with openssl; when the burst leaves the window the alert
//! resolves with a second signed notice.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::*;

const KEY: &str = "webhook-test-key-0123456789";

/// A tiny HTTP receiver: each request's signature header and body go to the channel.
fn receiver() -> (u16, mpsc::Receiver<(String, Vec<u8>)>) {
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

/// HMAC-SHA-256 computed by openssl, independently of rampart.
fn openssl_hmac(body: &[u8]) -> String {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", KEY, "-hex"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl missing: apt-get install -y openssl");
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    format!("sha256={}", text.trim().rsplit(' ').next().unwrap())
}

fn next_notice(rx: &mpsc::Receiver<(String, Vec<u8>)>, r: &Rampart) -> serde_json::Value {
    let (signature, body) = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("no webhook within 30 s; log:\n{}", r.log()));
    assert_eq!(signature, openssl_hmac(&body), "signature does not verify");
    serde_json::from_slice(&body).unwrap()
}

#[test]
fn an_error_burst_fires_one_signed_alert_and_a_signed_resolved_notice() {
    let (port, rx) = receiver();
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("webhook.key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let r = Rampart::start_with(bin(), |_| {
        format!(
            "[logs.alerts]\nevery_seconds = 1\nwebhook_url = \"http://127.0.0.1:{port}/hook\"\nwebhook_secret_file = \"{}\"\n\n[[logs.alerts.rules]]\nname = \"api-errors\"\nkind = \"error_rate\"\nsource = \"api\"\nthreshold = 5\nwindow_minutes = 1\n",
            key_file.display()
        )
    });
    let account = "svc-api";
    cli_ok(
        &r,
        &[
            "user",
            "add",
            account,
            "--kind",
            "service",
            "--owner",
            "admin",
            "--email",
            "svc-api@rampart.localhost",
        ],
    );
    let token = cli_ok(
        &r,
        &["logs", "token", "create", "api", "--account", account],
    )
    .trim()
    .to_owned();
    // Ten errors stamped 50 s ago: inside the 1-minute window now, out of it soon after.
    let at = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(50);
    let body: String = (0..10)
        .map(|i| {
            format!("{{\"ts\":\"{at}\",\"level\":\"error\",\"msg\":\"upstream timeout {i}\"}}\n")
        })
        .collect();
    let file = r.data_dir().join("burst.ndjson");
    std::fs::write(&file, body).unwrap();
    let pushed = r.curl().run(&[
        &format!("{}/ingest/ndjson", r.origin()),
        "--data-binary",
        &format!("@{}", file.display()),
        "-H",
        &format!("Authorization: Bearer {token}"),
    ]);
    assert_eq!(pushed.status, 200, "{}", pushed.body);

    let firing = next_notice(&rx, &r);
    assert_eq!(firing["status"], "firing", "{firing}");
    assert_eq!(firing["rule"], "api-errors");
    assert_eq!(firing["source"], "api");
    assert_eq!(firing["count"], 10);
    // The next notice is the resolution: no second "firing" in between (de-duplicated).
    let resolved = next_notice(&rx, &r);
    assert_eq!(resolved["status"], "resolved", "{resolved}");
    assert_eq!(resolved["rule"], "api-errors");

    let audit = cli_ok(&r, &["audit", "search", "--action", "logs.alert"]);
    assert_eq!(audit.matches("logs.alert").count(), 2, "{audit}");
}
