//! Notices of access requests (EXT-1) to the signed webhook of `[logs.alerts]` (the one
//! backup alerts use too): a request filed, approved, denied or expired is POSTed as
//! `{"rule": "access", "kind": "access_request", "event", "request", "requester", "role",
//! "hours", "reason", "status", "by", "at"}` with `X-Rampart-Signature: sha256=<hex HMAC>`.
//!
//! Sending never holds up the action: the server sends from a background task, with a
//! timeout per attempt and a bound on the whole; the CLI waits at most [`CLI_WAIT`]. A
//! notice that could not be delivered is audited as `access.notify` with outcome failure.

use std::sync::Arc;
use std::time::Duration;

use rampart_audit::{Action, Actor, AuditEvent, Outcome};
use rampart_store::{AccessRequest, Store};

use crate::logs::alerts::{Webhook, notify};

/// The longest the server spends on one notice, retries included.
pub const SERVER_WAIT: Duration = Duration::from_secs(45);

/// The longest the CLI waits for one notice before it gives up.
pub const CLI_WAIT: Duration = Duration::from_secs(10);

/// What happened to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Someone asked.
    Filed,
    /// An approver approved (the status says whether the role was granted).
    Approved,
    /// An approver denied.
    Denied,
    /// Nobody decided in time.
    Expired,
}

impl Event {
    /// The name in the notice.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Filed => "filed",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Expired => "expired",
        }
    }
}

/// The notice's JSON body.
pub fn body(event: Event, r: &AccessRequest, status: &str, by: &str) -> Vec<u8> {
    serde_json::json!({
        "rule": "access",
        "kind": "access_request",
        "event": event.as_str(),
        "request": r.id,
        "requester": r.requester,
        "role": r.role,
        "hours": r.hours,
        "reason": r.reason,
        "status": status,
        "by": by,
        "at": jiff::Timestamp::now().to_string(),
    })
    .to_string()
    .into_bytes()
}

/// Sends one notice within `wait`; when it is not delivered, audits `access.notify` with
/// outcome failure. Without a webhook, does nothing.
pub async fn deliver(
    store: &Store,
    webhook: Option<&Webhook>,
    event: Event,
    r: &AccessRequest,
    status: &str,
    by: &str,
    wait: Duration,
) {
    let Some(webhook) = webhook else {
        return;
    };
    let sent = tokio::time::timeout(wait, notify(webhook, body(event, r, status, by)))
        .await
        .unwrap_or(false);
    if !sent {
        let ev = AuditEvent::new(Actor::System, Action::AccessNotify, r.requester.clone())
            .outcome(Outcome::Failure)
            .detail("request", r.id.clone())
            .detail("event", event.as_str())
            .detail("reason", "the webhook did not take the notice");
        if let Err(e) = store.append_audit(&[ev]).await {
            tracing::warn!(error = %e, "could not audit an undelivered access notice");
        }
    }
}

/// Sends one notice from a background task (the server's way): the caller goes on at once.
pub fn spawn(
    store: Arc<Store>,
    webhook: Option<Arc<Webhook>>,
    event: Event,
    r: AccessRequest,
    status: &str,
    by: &str,
) {
    let Some(webhook) = webhook else {
        return;
    };
    let (status, by) = (status.to_owned(), by.to_owned());
    tokio::spawn(async move {
        deliver(&store, Some(&webhook), event, &r, &status, &by, SERVER_WAIT).await;
    });
}
