//! Refused connections: what the client is told (an exhaustive match decides it, so no
//! internal detail reaches a client) and what the audit log records.

use std::net::IpAddr;

use rampart_audit::{Action, Actor, AuditEvent, Outcome};

use super::{Client, Gateway};
use crate::codec::{self, CodecError};
use crate::upstream::UpstreamError;

/// Why a connection was refused; decides what the client is told.
#[derive(Debug)]
pub(super) enum Refusal {
    Plaintext,
    BadPacket(CodecError),
    NoTls,
    BadUser,
    Replication,
    BadToken {
        account: String,
        why: &'static str,
    },
    Denied {
        account: String,
        target: String,
        why: String,
    },
    NoCredential {
        target: String,
        db_role: String,
    },
    Upstream {
        target: String,
        error: UpstreamError,
    },
    Audit,
    Timeout,
}

impl Gateway {
    pub(super) async fn refuse(&self, client: &mut Client, ip: IpAddr, refusal: Refusal) {
        let message = match &refusal {
            Refusal::Upstream {
                error: UpstreamError::Refused(bytes),
                ..
            } => {
                // Errors from the server reach the client unchanged.
                bytes.clone()
            }
            other => {
                let (code, text) = client_text(other);
                codec::error_response("FATAL", code, &text)
            }
        };
        let _ = client.write(&message).await;
        self.audit_refusal(ip, &refusal).await;
    }

    pub(super) async fn audit_refusal(&self, ip: IpAddr, refusal: &Refusal) {
        let (actor, subject, reason) = match refusal {
            Refusal::Plaintext => (
                Actor::Anonymous,
                String::new(),
                "plaintext startup".to_owned(),
            ),
            Refusal::BadPacket(e) => (Actor::Anonymous, String::new(), e.to_string()),
            Refusal::NoTls => (Actor::Anonymous, String::new(), "no TLS".to_owned()),
            Refusal::BadUser => (
                Actor::Anonymous,
                String::new(),
                "user is not person#target".to_owned(),
            ),
            Refusal::Replication => (
                Actor::Anonymous,
                String::new(),
                "replication refused".to_owned(),
            ),
            Refusal::BadToken { account, why } => (
                Actor::Anonymous,
                String::new(),
                format!("{why} (for account {})", safe_name(account)),
            ),
            Refusal::Denied {
                account,
                target,
                why,
            } => (
                Actor::User(safe_name(account)),
                safe_name(target),
                why.clone(),
            ),
            Refusal::NoCredential { target, db_role } => (
                Actor::System,
                target.clone(),
                format!("no usable upstream credential for role {db_role}"),
            ),
            Refusal::Upstream { target, error } => {
                let text = match error {
                    UpstreamError::Refused(bytes) => {
                        let body = bytes.get(5..).unwrap_or_default();
                        let code = codec::error_field(body, b'C').unwrap_or_default();
                        format!(
                            "server refused (SQLSTATE {})",
                            String::from_utf8_lossy(code)
                        )
                    }
                    other => other.to_string(),
                };
                (Actor::System, target.clone(), text)
            }
            Refusal::Audit => (Actor::System, String::new(), "store unavailable".to_owned()),
            Refusal::Timeout => (
                Actor::Anonymous,
                String::new(),
                "handshake timed out".to_owned(),
            ),
        };
        let event = AuditEvent::new(actor, Action::DbRefused, subject)
            .outcome(Outcome::Denied)
            .source(Some(ip))
            .detail("reason", rampart_scrub::scrub_default(&reason));
        if let Err(e) = self.store.append_audit(&[event]).await {
            tracing::error!(error = %e, "cannot audit a refused database connection");
        }
    }
}

/// What the client is told (SQLSTATE and message) for a refusal.
fn client_text(refusal: &Refusal) -> (&'static str, String) {
    match refusal {
        Refusal::Plaintext | Refusal::NoTls => (
            "08P01",
            "rampart requires TLS: connect with sslmode=require".into(),
        ),
        Refusal::BadPacket(CodecError::TooLarge { .. }) => {
            ("08P01", "message too large for rampart's limit".into())
        }
        Refusal::BadPacket(CodecError::UnknownProtocol(v)) => (
            "08P01",
            format!("unsupported frontend protocol {}.{}: rampart speaks 3.0", v >> 16, v & 0xffff),
        ),
        Refusal::BadPacket(CodecError::Malformed(what)) => {
            ("08P01", format!("invalid startup packet: {what}"))
        }
        Refusal::BadPacket(CodecError::Io(_)) => ("08006", "connection failure".into()),
        Refusal::BadUser => (
            "28000",
            "connect as user person#target (for example alice#orders-db) with a database token as the password".into(),
        ),
        Refusal::Replication => ("28000", "replication connections are not relayed".into()),
        Refusal::BadToken { .. } => (
            "28P01",
            "password authentication failed: the database token is unknown, expired, revoked, or for another person or target".into(),
        ),
        Refusal::Denied { .. } => ("28000", "access denied".into()),
        Refusal::NoCredential { .. } => (
            "28000",
            "rampart has no credential for this target and database role; ask an administrator".into(),
        ),
        Refusal::Upstream { error, .. } => match error {
            UpstreamError::Connect(_) => ("08001", "rampart cannot reach the database server".into()),
            UpstreamError::Tls(_) => (
                "08001",
                "rampart could not set up verified TLS to the database server".into(),
            ),
            UpstreamError::Refused(_) => ("28000", "the database server refused the session".into()),
            UpstreamError::Method(_)
            | UpstreamError::Scram(_)
            | UpstreamError::ScramIterations(_) => (
                "28000",
                "rampart could not log in to the database server".into(),
            ),
            UpstreamError::Protocol(_) => ("08P01", "the database server broke the protocol".into()),
        },
        Refusal::Audit => (
            "58000",
            "rampart cannot write its audit log right now; try again later".into(),
        ),
        Refusal::Timeout => ("08006", "login timed out".into()),
    }
}

/// A name from the client, kept only when it looks like one (else a placeholder).
fn safe_name(name: &str) -> String {
    if !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
    {
        name.to_owned()
    } else {
        "(invalid name)".into()
    }
}
