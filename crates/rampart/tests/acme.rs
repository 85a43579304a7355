//! ACME against pebble, Let's Encrypt's test CA: rampart answers HTTP-01 on its own HTTP
//! listener, obtains a certificate and serves it without a restart.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use rampart_testkit::pebble::Pebble;
use support::*;

#[test]
fn a_certificate_is_issued_by_pebble_over_http_01_and_served() {
    let mut pebble = None;
    let r = Rampart::start_with(bin(), |http_port| {
        let p = Pebble::start(http_port);
        let extra = format!(
            "[tls]\nmode = \"acme\"\n\n[tls.acme]\ndirectory = \"{}\"\nca_file = \"{}\"\ncontact = \"security@example.com\"\n",
            p.directory,
            p.ca_file.display()
        );
        pebble = Some(p);
        extra
    });
    let issuer = |port: u16| {
        let out = Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{port}"),
                "-servername",
                "gateway.test",
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl runs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.trim_start().starts_with("i:"))
            .unwrap_or("")
            .to_owned()
    };
    assert!(
        issuer(r.https_port).contains("rcgen"),
        "self-signed until the CA answers"
    );
    // Issuance is asynchronous; wait for it with a deadline.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut served = issuer(r.https_port);
    while !served.contains("Pebble") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        served = issuer(r.https_port);
    }
    assert!(
        served.contains("Pebble"),
        "served issuer: {served}\n{}",
        r.log()
    );
    assert!(r.data_dir().join("tls/acme/cert.pem").exists());
    let audit = cli_ok(
        &r,
        &["audit", "search", "--action", "tls.certificate", "--json"],
    );
    assert!(
        audit.contains("\"outcome\":\"success\"") && audit.contains("gateway.test"),
        "{audit}"
    );
    // The HTTP listener still redirects everything else.
    let resp = r
        .curl()
        .run(&[&format!("http://127.0.0.1:{}/x", r.http_port)]);
    assert_eq!(resp.status, 308);
    // The live probe pins the new certificate: ENC-2 still passes.
    let report = cli_ok(&r, &["report", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&report).unwrap();
    let enc2 = json["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "ENC-2")
        .unwrap()
        .clone();
    assert_eq!(enc2["status"], "pass", "{enc2:#}");
    drop(pebble);
}
