//! The identity-aware HTTPS proxy: internal tools ("apps") behind rampart's front door.
//!
//! `config` validates `[[apps]]`; `engine` forwards a request to an app's upstream over
//! HTTP/1.1 connections kept per front-door thread (`engine::conns`; rustls for https
//! upstreams), streaming bodies both ways under limits, WebSocket upgrades, timeouts and
//! error pages that leak nothing; `assertion` signs
//! the short-lived Ed25519 JWT that tells the app who is asking; `audit` writes one record
//! per request in batches and refuses new requests while the audit log refuses writes.
//! Who may reach an app (session or bearer token, then `rampart_access::authorize` on the
//! app's `http` target) is decided by the front door (`rampart-web`), which calls in here.
//!
//! Invariants: nothing reaches an upstream without the identity headers rampart set (copies
//! from the client are removed) and without a reserved audit slot; rampart's cookies and its
//! bearer token never reach an upstream; error pages name nothing of the upstream.

pub mod assertion;
pub mod audit;
pub mod config;
pub mod engine;

pub use config::{App, AppConfig, AppConfigError, Mount, Scheme};
pub use engine::{Finished, Forward, Upstream};

use std::net::IpAddr;

use rampart_audit::{Action, AuditRecord, Detail, Outcome};

/// The audit record of one proxied request, not yet sealed. The path and query pass the
/// scrubber (a query may carry personal data or secrets). Made straight from its fields,
/// as `AuditRecord::unsealed` would make it of the event with these details: a request's
/// record is the proxy's busiest allocation site, and the event and its conversion made
/// about 35 allocations (the details map's keys, values and nodes, then the JSON and
/// copies of every field) where this makes 7.
#[allow(clippy::too_many_arguments)]
pub fn request_record(
    app: &str,
    username: &str,
    source: Option<IpAddr>,
    method: &str,
    path_and_query: &str,
    via: &str,
    finished: Finished,
    duration_ms: u128,
) -> AuditRecord {
    let path = audited_path(path_and_query);
    let path = rampart_scrub::scrub_default_cow(&path);
    let details = rampart_audit::details_json(&mut [
        ("method", Detail::Text(method)),
        ("path", Detail::Text(&path)),
        ("status", Detail::Number(finished.status.into())),
        ("bytes_in", Detail::Number(finished.bytes_in.into())),
        ("bytes_out", Detail::Number(finished.bytes_out.into())),
        ("duration_ms", Detail::Number(duration_ms)),
        ("via", Detail::Text(via)),
    ]);
    AuditRecord::unsealed_from(
        rampart_audit::user_actor(username),
        Action::AppRequest,
        app,
        request_outcome(finished),
        source,
        details,
    )
}

fn request_outcome(finished: Finished) -> Outcome {
    if finished.status >= 500 || finished.status == 0 {
        Outcome::Failure
    } else {
        Outcome::Success
    }
}

/// The path and query as audited, before scrubbing: decoded first, so that
/// `alice%40example.com` is seen (and scrubbed) as an address, and cut at 2,048 characters.
fn audited_path(path_and_query: &str) -> String {
    const MOST: usize = 2048;
    let mut path = percent_decoded(path_and_query);
    if let Some((cut, _)) = path.char_indices().nth(MOST) {
        path.truncate(cut);
    }
    path
}

/// `%XX` sequences decoded (lossy UTF-8); malformed ones kept as they are.
pub fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = (b == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    /// The record of a request as the proxy first made it: an event (then its record).
    #[allow(clippy::too_many_arguments)]
    fn request_event(
        app: &str,
        username: &str,
        source: Option<std::net::IpAddr>,
        method: &str,
        path_and_query: &str,
        via: &str,
        finished: super::Finished,
        duration_ms: u128,
    ) -> rampart_audit::AuditEvent {
        rampart_audit::AuditEvent::new(
            rampart_audit::Actor::User(username.to_owned()),
            super::Action::AppRequest,
            app,
        )
        .outcome(super::request_outcome(finished))
        .source(source)
        .detail("method", method)
        .detail(
            "path",
            rampart_scrub::scrub_default(&super::audited_path(path_and_query)),
        )
        .detail("status", finished.status.to_string())
        .detail("bytes_in", finished.bytes_in.to_string())
        .detail("bytes_out", finished.bytes_out.to_string())
        .detail("duration_ms", duration_ms.to_string())
        .detail("via", via)
    }

    #[test]
    fn queries_are_decoded_then_scrubbed() {
        assert_eq!(
            super::percent_decoded("/a%20b?x=%zz&y=%41"),
            "/a b?x=%zz&y=A"
        );
        let record = super::request_record(
            "echo",
            "alice",
            None,
            "GET",
            "/p?email=bob%40example.com",
            "session",
            super::Finished {
                status: 200,
                bytes_in: 0,
                bytes_out: 5,
            },
            3,
        );
        let details: serde_json::Value = serde_json::from_str(&record.details).unwrap();
        let path = details["path"].as_str().unwrap_or_default().to_owned();
        assert!(path.starts_with("/p?email="), "{path}");
        assert!(
            !path.contains("bob@example.com") && !path.contains("bob%40"),
            "{path}"
        );
    }

    #[test]
    fn a_request_record_is_the_record_of_its_event() {
        let long = format!("/p/{}?q=1", "é".repeat(3000));
        type Case<'a> = (
            &'a str,
            Option<std::net::IpAddr>,
            &'a str,
            &'a str,
            &'a str,
            u16,
        );
        let cases: &[Case] = &[
            ("/", None, "GET", "session", "alice", 200),
            (
                "/a%20b?x=%zz&y=%41",
                Some("127.0.0.1".parse().unwrap()),
                "POST",
                "token",
                "bob",
                404,
            ),
            (
                "/q?email=carol%40example.com&k=\"quoted\"\\back",
                Some("::1".parse().unwrap()),
                "PUT",
                "token",
                "svc-ci",
                502,
            ),
            (
                "/ctl?x=%01%1f%7f&t=tab%09nl%0a",
                None,
                "PROPFIND",
                "session",
                "dave",
                0,
            ),
            ("/bad%ff%fe/utf8", None, "DELETE", "session", "eve", 204),
            (long.as_str(), None, "GET", "session", "frank", 301),
        ];
        for &(path, source, method, via, user, status) in cases {
            let finished = super::Finished {
                status,
                bytes_in: 17,
                bytes_out: 4_000_000_000,
            };
            let event = request_event("grafana", user, source, method, path, via, finished, 12);
            let expected = rampart_audit::AuditRecord::unsealed(&event);
            let record =
                super::request_record("grafana", user, source, method, path, via, finished, 12);
            assert_eq!(record, expected, "{path}");
            let details: serde_json::Value = serde_json::from_str(&record.details).unwrap();
            assert_eq!(details["status"], status.to_string());
        }
        // The cut at 2,048 characters is of characters, not bytes.
        let event = request_event(
            "a",
            "u",
            None,
            "GET",
            &long,
            "token",
            super::Finished {
                status: 200,
                bytes_in: 0,
                bytes_out: 0,
            },
            0,
        );
        assert_eq!(event.details["path"].chars().count(), 2048);
    }
}
