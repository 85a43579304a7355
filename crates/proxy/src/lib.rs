//! The identity-aware HTTPS proxy: internal tools ("apps") behind rampart's front door.
//!
//! `config` validates `[[apps]]`; `engine` forwards a request to an app's upstream with a
//! pooled hyper client (rustls for https upstreams), streaming bodies both ways under
//! limits, WebSocket upgrades, timeouts and error pages that leak nothing; `assertion` signs
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

use rampart_audit::{Action, Actor, AuditEvent, Outcome};

/// The audit record of one proxied request. The path and query pass the scrubber (a query
/// may carry personal data or secrets).
#[allow(clippy::too_many_arguments)]
pub fn request_event(
    app: &str,
    username: &str,
    source: Option<IpAddr>,
    method: &str,
    path_and_query: &str,
    via: &str,
    finished: Finished,
    duration_ms: u128,
) -> AuditEvent {
    let outcome = if finished.status >= 500 || finished.status == 0 {
        Outcome::Failure
    } else {
        Outcome::Success
    };
    // Decoded first, so that `alice%40example.com` is seen (and scrubbed) as an address.
    let path: String = percent_decoded(path_and_query).chars().take(2048).collect();
    AuditEvent::new(Actor::User(username.to_owned()), Action::AppRequest, app)
        .outcome(outcome)
        .source(source)
        .detail("method", method)
        .detail("path", rampart_scrub::scrub_default(&path))
        .detail("status", finished.status.to_string())
        .detail("bytes_in", finished.bytes_in.to_string())
        .detail("bytes_out", finished.bytes_out.to_string())
        .detail("duration_ms", duration_ms.to_string())
        .detail("via", via)
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
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn queries_are_decoded_then_scrubbed() {
        assert_eq!(
            super::percent_decoded("/a%20b?x=%zz&y=%41"),
            "/a b?x=%zz&y=A"
        );
        let ev = super::request_event(
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
        let path = ev.details.get("path").cloned().unwrap_or_default();
        assert!(
            !path.contains("bob@example.com") && !path.contains("bob%40"),
            "{path}"
        );
    }
}
