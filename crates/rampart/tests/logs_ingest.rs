//! Application logs end to end through the built binary: tokens held by a service account,
//! NDJSON and Loki protobuf pushes, scrubbing in storage and search, per-line errors,
//! 401 for missing and revoked tokens (audited), retention bounds refused at startup.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use prost::Message;
use rampart_logs::parse::loki::{EntryAdapter, ProtoTimestamp, PushRequest, StreamAdapter};
use support::*;

fn push(r: &Rampart, path: &str, token: Option<&str>, content_type: &str, body: &[u8]) -> Response {
    let file = r.data_dir().join(format!("body-{}", body.len()));
    std::fs::write(&file, body).unwrap();
    let url = format!("{}{path}", r.origin());
    let mut args = vec![
        url,
        "--data-binary".into(),
        format!("@{}", file.display()),
        "-H".into(),
        format!("Content-Type: {content_type}"),
    ];
    if let Some(token) = token {
        args.push("-H".into());
        args.push(format!("Authorization: Bearer {token}"));
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    r.curl().run(&refs)
}

#[test]
fn pushed_lines_are_scrubbed_stored_and_searchable_and_bad_lines_reported() {
    let r = start();
    let token = token_for(&r, "api");
    let now = jiff::Timestamp::now();
    let body = format!(
        "{{\"ts\":\"{now}\",\"level\":\"error\",\"msg\":\"payment failed for bob@example.com card 4111 1111 1111 1111\",\"user_email\":\"carol@example.org\"}}\n\
         {{this is not json\n\
         {{\"level\":\"info\",\"msg\":\"deploy done with token ghp_abcdefghijklmnopqrstuvwxyz0123456789\"}}\n\
         {{\"ts\":\"1999-01-01T00:00:00Z\",\"msg\":\"clock far behind\"}}\n"
    );
    let answer = push(
        &r,
        "/ingest/ndjson",
        Some(&token),
        "application/x-ndjson",
        body.as_bytes(),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let report: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(report["stored"], 3, "{report}");
    assert_eq!(report["clamped"], 1, "{report}");
    assert_eq!(report["errors"][0]["line"], 2, "{report}");
    assert_eq!(report["errors"][0]["reason"], "invalid JSON", "{report}");
    assert!(report["scrubbed"].as_u64().unwrap() >= 3, "{report}");

    // A hand-built Loki push: protobuf in a snappy block, as Promtail sends it.
    let request = PushRequest {
        streams: vec![StreamAdapter {
            labels: r#"{app="api", level="warn"}"#.into(),
            entries: vec![EntryAdapter {
                timestamp: Some(ProtoTimestamp {
                    seconds: now.as_second(),
                    nanos: 0,
                }),
                line: b"loki line from dave@example.net".to_vec(),
                structured_metadata: vec![],
            }],
            hash: 0,
        }],
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .unwrap();
    let answer = push(
        &r,
        "/loki/api/v1/push",
        Some(&token),
        "application/x-protobuf",
        &body,
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let json = br#"{"streams":[{"stream":{"app":"web"},"values":[["1","loki json line"]]}]}"#;
    let answer = push(
        &r,
        "/loki/api/v1/push",
        Some(&token),
        "application/json",
        json,
    );
    assert_eq!(answer.status, 200, "{}", answer.body);

    // Search through the CLI: scrubbed, filtered.
    let all = cli_ok(&r, &["logs", "search", "--since", "1h", "--json"]);
    assert_eq!(all.lines().count(), 5, "{all}");
    for secret in [
        "bob@example.com",
        "4111 1111",
        "carol@example.org",
        "ghp_abc",
        "dave@example.net",
    ] {
        assert!(!all.contains(secret), "{secret} leaked: {all}");
    }
    assert!(all.contains("[EMAIL]"), "{all}");
    let errors = cli_ok(
        &r,
        &[
            "logs", "search", "payment", "--level", "error", "--source", "api",
        ],
    );
    assert_eq!(errors.lines().count(), 1, "{errors}");
    assert!(errors.contains("payment failed"), "{errors}");
    let none = cli_ok(&r, &["logs", "search", "bob@example.com"]);
    assert!(none.trim().is_empty(), "{none}");
    let loki = cli_ok(&r, &["logs", "search", "loki", "--level", "warn"]);
    assert!(loki.contains("loki line from [EMAIL]"), "{loki}");

    // The report proves LOG-1, LOG-2 and LOG-5 from the log store.
    let report: serde_json::Value =
        serde_json::from_str(&cli_ok(&r, &["report", "--format", "json"])).unwrap();
    for id in ["LOG-1", "LOG-2", "LOG-5"] {
        let control = report["controls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap();
        assert_eq!(control["status"], "pass", "{id}: {control}");
    }

    // The /logs page: same filters, a server-side SVG histogram, scrubbed lines.
    let curl = r.curl();
    enroll(&curl, &r.admin_enroll_url);
    let page = curl.get("/logs?q=payment&since=1h&level=error&source=api");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("payment failed for [EMAIL]"),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("deploy done"),
        "level filter: {}",
        page.body
    );
    assert!(page.body.contains("<svg"), "{}", page.body);
    assert!(page.body.contains("error</title>"), "{}", page.body);
    assert!(!page.body.contains("<script"), "{}", page.body);
    let policy = page.header("content-security-policy").unwrap_or_default();
    assert!(!policy.contains("script-src"), "{policy}");
    // Live tail on: the page runs rampart's tail script (allowed by its own policy), and
    // reloads every 10 s without scripts.
    let all = curl.get("/logs?since=1h&tail=on");
    assert!(all.body.contains("5 matching lines."), "{}", all.body);
    assert!(
        all.body.contains("<script src=\"/static/logs-tail.js\"")
            && all.body.contains("data-stream=\"/logs/stream?")
            && all.body.contains("<noscript><meta http-equiv=\"refresh\""),
        "{}",
        all.body
    );
    let policy = all.header("content-security-policy").unwrap_or_default();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert_eq!(curl.get("/static/logs-tail.js").status, 200);

    // Nothing in the day files holds the raw values.
    for entry in std::fs::read_dir(r.data_dir().join("logs")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("bob@example.com"));
        assert!(!text.contains("carol@example.org"));
    }

    // No token, a wrong token, a revoked token: 401, audited.
    let line = b"{\"msg\":\"x\"}\n";
    assert_eq!(
        push(&r, "/ingest/ndjson", None, "application/x-ndjson", line).status,
        401
    );
    assert_eq!(
        push(
            &r,
            "/ingest/ndjson",
            Some("rlt_wrong"),
            "application/x-ndjson",
            line
        )
        .status,
        401
    );
    cli_ok(&r, &["logs", "token", "revoke", "api"]);
    let revoked = push(
        &r,
        "/ingest/ndjson",
        Some(&token),
        "application/x-ndjson",
        line,
    );
    assert_eq!(revoked.status, 401);
    let audit = cli_ok(&r, &["audit", "search", "--action", "logs"]);
    assert_eq!(audit.matches("logs.ingest.denied").count(), 3, "{audit}");
    assert!(audit.contains("logs.token.create"), "{audit}");
    assert!(audit.contains("logs.token.revoke"), "{audit}");
    let list = cli_ok(&r, &["logs", "token", "list"]);
    assert!(list.contains("svc-api") && !list.contains(&token), "{list}");
}

#[test]
fn a_retention_outside_15_to_30_days_is_refused_at_startup() {
    let mut r = start();
    r.stop();
    let config = r.data_dir().join("rampart.toml");
    let base = std::fs::read_to_string(&config).unwrap();
    for days in [14, 31] {
        std::fs::write(
            &config,
            format!("{base}\n[logs]\nretention_days = {days}\n"),
        )
        .unwrap();
        for command in [&["check-config"][..], &["serve"][..]] {
            let out = r.cli(command);
            assert_eq!(out.status.code(), Some(64), "{command:?} {days}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains(&format!("logs.retention_days = {days} is not allowed"))
                    && err.contains("from 15 to 30 days (LOG-5)"),
                "{err}"
            );
        }
    }
    std::fs::write(&config, format!("{base}\n[logs]\nretention_days = 21\n")).unwrap();
    assert!(r.cli(&["check-config"]).status.success());
}

#[test]
fn a_flooding_source_gets_429_and_the_others_are_still_served() {
    let r = Rampart::start(
        bin(),
        "[logs]\nrate_lines_per_second = 100\nrate_burst_lines = 1000\n",
    );
    let flood = token_for(&r, "flood");
    let calm = token_for(&r, "calm");
    // The whole burst at once: the next batch would need 10 s of refill (the bucket itself
    // is tested with a fake clock in rampart-logs).
    let batch: String = (0..1000)
        .map(|i| format!("{{\"msg\":\"line {i}\"}}\n"))
        .collect();
    let first = push(
        &r,
        "/ingest/ndjson",
        Some(&flood),
        "application/x-ndjson",
        batch.as_bytes(),
    );
    assert_eq!(first.status, 200, "{}", first.body);
    let second = push(
        &r,
        "/ingest/ndjson",
        Some(&flood),
        "application/x-ndjson",
        batch.as_bytes(),
    );
    assert_eq!(second.status, 429, "{}", second.body);
    assert!(second.header("retry-after").is_some());
    let other = push(
        &r,
        "/ingest/ndjson",
        Some(&calm),
        "application/x-ndjson",
        batch.as_bytes(),
    );
    assert_eq!(other.status, 200, "{}", other.body);
    let stored = cli_ok(
        &r,
        &["logs", "search", "--source", "flood", "--limit", "10000"],
    );
    assert_eq!(
        stored.lines().count(),
        1000,
        "nothing of the refused batch was stored"
    );
}

#[test]
fn gzip_encoded_pushes_are_decoded_and_other_encodings_refused() {
    let r = start();
    let token = token_for(&r, "api");
    let json = format!(
        r#"{{"streams":[{{"stream":{{"app":"web"}},"values":[["{}","gzipped loki line for erin@example.com"]]}}]}}"#,
        jiff::Timestamp::now().as_nanosecond()
    );
    let plain = r.data_dir().join("push.json");
    std::fs::write(&plain, &json).unwrap();
    // gzip(1), as a shipper's HTTP client would compress.
    let zipped = std::process::Command::new("gzip")
        .arg("-c")
        .arg(&plain)
        .output()
        .unwrap();
    assert!(zipped.status.success());
    let file = r.data_dir().join("push.json.gz");
    std::fs::write(&file, &zipped.stdout).unwrap();
    let post = |encoding: &str| {
        let url = format!("{}/loki/api/v1/push", r.origin());
        let data = format!("@{}", file.display());
        let auth = format!("Authorization: Bearer {token}");
        let enc = format!("Content-Encoding: {encoding}");
        r.curl().run(&[
            &url,
            "--data-binary",
            &data,
            "-H",
            "Content-Type: application/json",
            "-H",
            &enc,
            "-H",
            &auth,
        ])
    };
    let answer = post("gzip");
    assert_eq!(answer.status, 200, "{}", answer.body);
    let found = cli_ok(&r, &["logs", "search", "gzipped", "--since", "1h"]);
    assert!(found.contains("gzipped loki line for [EMAIL]"), "{found}");
    let refused = post("br");
    assert_eq!(refused.status, 415, "{}", refused.body);
    assert!(
        refused.body.contains("Content-Encoding"),
        "{}",
        refused.body
    );
}

/// The live tail in Chromium: a line pushed after the page opened appears at the top,
/// scrubbed, without a reload (`tests/browser/tail.mjs`).
#[test]
fn chromium_sees_new_lines_in_the_live_tail() {
    let r = start();
    let token = token_for(&r, "api");
    let admin = r.curl();
    enroll(&admin, &r.admin_enroll_url);
    let origin = r.origin();
    browser(
        "tail.mjs",
        &[origin.as_ref(), admin.jar().as_os_str(), token.as_ref()],
        "tail passed",
    );
}

/// The tail's event stream: refused without logs.view; ended, with the reason, once its
/// session is signed out (checked every 5 s; curl's own limit bounds the wait).
#[test]
fn a_live_tail_needs_logs_view_and_ends_when_its_session_is_signed_out() {
    let r = start();
    let admin = r.curl();
    enroll(&admin, &r.admin_enroll_url);
    let link = cli_ok(&r, &["user", "add", "bob", "--email", "bob@example.com"]);
    let link = link
        .split_whitespace()
        .find(|w| w.contains("/enroll/"))
        .unwrap()
        .to_owned();
    let bob = r.curl();
    enroll(&bob, &link);
    assert_eq!(bob.get("/logs/stream").status, 403);
    let denied = cli_ok(
        &r,
        &["audit", "search", "--action", "admin.denied", "--json"],
    );
    assert!(denied.contains("logs.view"), "{denied}");

    let mut stream = std::process::Command::new("curl")
        .args(["-sS", "-k", "-N", "--max-time", "60", "--resolve"])
        .arg(format!("{}:{}:127.0.0.1", r.public_host, r.https_port))
        .arg("-b")
        .arg(admin.jar())
        .arg(format!("{}/logs/stream", r.origin()))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stream.stdout.take().unwrap()));
    // The stream is open once its first field arrives.
    let first = lines.next().unwrap().unwrap();
    assert_eq!(first, "retry: 2000");
    support::logout(&admin);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = stream.wait().unwrap();
    assert!(status.success(), "curl ended with {status}: {rest:?}");
    let text = rest.join("\n");
    assert!(
        text.contains("event: end") && text.contains("the session has ended"),
        "{text}"
    );
}
