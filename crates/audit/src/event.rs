//! The typed events that every other crate emits.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// Who did something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// rampart itself (jobs, startup).
    System,
    /// An account, by its unique user name.
    User(String),
    /// Someone not yet identified (a failed login names the attempted user in the subject).
    Anonymous,
    /// An operator using the command line on the server, by operating-system user.
    Cli(String),
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::System => f.write_str("system"),
            Self::User(name) => write!(f, "user:{name}"),
            Self::Anonymous => f.write_str("anonymous"),
            Self::Cli(name) => write!(f, "cli:{name}"),
        }
    }
}

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It happened.
    Success,
    /// It was attempted and failed (a wrong password).
    Failure,
    /// It was refused by policy (no grant, locked, MFA missing).
    Denied,
}

impl Outcome {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Denied => "denied",
        }
    }
}

macro_rules! actions {
    ($( $variant:ident = $name:literal, $doc:literal; )*) => {
        /// Everything rampart audits. The stored name is stable; new variants may be added.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Action {
            $( #[doc = $doc] $variant, )*
        }

        impl Action {
            /// Every action.
            pub const ALL: &'static [Action] = &[$(Action::$variant),*];

            /// The stored name, such as `login.success`.
            pub fn as_str(self) -> &'static str {
                match self { $(Action::$variant => $name,)* }
            }

            /// Parses a stored name.
            pub fn parse(name: &str) -> Option<Self> {
                match name { $($name => Some(Action::$variant),)* _ => None }
            }
        }
    };
}

actions! {
    Startup = "system.startup", "rampart started serving.";
    Shutdown = "system.shutdown", "rampart stopped serving.";
    LoginPassword = "login.password", "A password was checked (first factor).";
    LoginMfa = "login.mfa", "A second factor was checked.";
    LoginLocked = "login.locked", "An account or address was locked out after failures.";
    SessionStart = "session.start", "A session began after a complete login.";
    SessionEnd = "session.end", "A session ended by logout or timeout.";
    SessionRevoke = "session.revoke", "A session was revoked.";
    MfaEnroll = "mfa.enroll", "A second factor was enrolled.";
    MfaReset = "mfa.reset", "An account's second factors were removed by an admin.";
    MfaRemove = "mfa.remove", "A person removed one of their second factors (a WebAuthn key).";
    RecoveryCodeUsed = "mfa.recovery_code", "A recovery code was used.";
    EnrollLinkIssue = "enroll.issue", "A one-time enrollment link was issued.";
    EnrollComplete = "enroll.complete", "An enrollment link was used to set a password.";
    UserCreate = "user.create", "An account was created.";
    UserDisable = "user.disable", "An account was disabled.";
    UserEnable = "user.enable", "An account was enabled.";
    RoleCreate = "role.create", "A role was created or changed.";
    RoleDelete = "role.delete", "A role was deleted.";
    GrantAdd = "grant.add", "A role was granted to an account.";
    GrantRemove = "grant.remove", "A grant was removed.";
    AccessRequest = "access.request", "Someone asked for a role for a few hours, with a reason.";
    AccessApprove = "access.approve", "An approver approved an access request.";
    AccessDeny = "access.deny", "An approver denied an access request.";
    AccessExpire = "access.expire", "An access request lapsed with nobody deciding.";
    AccessNotify = "access.notify", "A notice of an access request (filed, approved, denied, expired) or an access review (opened, closed) could not be delivered to the webhook (outcome failure).";
    AnomalyAlert = "anomaly.alert", "An anomaly rule fired over the audit log (details: the rule and the records behind it).";
    AnomalyAck = "anomaly.ack", "An anomaly alert was acknowledged with a note (the subject is the alert's record number).";
    ReviewStart = "review.start", "An access review campaign opened over every grant that reaches the gateway (ACC-7).";
    ReviewDecide = "review.decide", "A grant under review was kept or revoked (reason \"missed review\": decided at the deadline).";
    ReviewClose = "review.close", "An access review campaign closed at its deadline.";
    TargetAdd = "target.add", "A target was registered or changed.";
    TargetRemove = "target.remove", "A target was removed.";
    Authorize = "access.authorize", "An access decision was made for a target.";
    AuditExport = "audit.export", "The audit log or a checkpoint was exported.";
    PermissionDenied = "admin.denied", "An admin action was refused for lack of permission.";
    NetworkCheck = "network.check", "The network inventory was checked (outcome failure: violations or unreadable input).";
    CertificateIssue = "tls.certificate", "A TLS certificate was obtained from the ACME CA (or the attempt failed).";
    LogTokenCreate = "logs.token.create", "A log-source ingest token was issued to a service account.";
    LogTokenRevoke = "logs.token.revoke", "The ingest tokens of a log source were revoked.";
    LogIngestDenied = "logs.ingest.denied", "A log push was refused: no, unknown or revoked token.";
    LogPurge = "logs.purge", "Days of application logs older than the retention were removed (LOG-5).";
    LogAlert = "logs.alert", "A log alert rule fired (outcome failure) or resolved (success).";
    BackupRun = "backup.run", "A backup ran (outcome failure: the source or the storage failed; nothing was catalogued).";
    BackupList = "backup.list", "The backup catalog or its retention plan was read.";
    BackupDownload = "backup.download", "A backup object was read back (verification, download).";
    BackupRestore = "backup.restore", "A backup was restored.";
    BackupVerify = "backup.verify", "A backup was verified (outcome failure: missing or altered object).";
    BackupPrune = "backup.prune", "A backup was deleted by pruning, as the retention plan said.";
    BackupPin = "backup.pin", "A backup was pinned or unpinned (legal hold).";
    BackupOrphan = "backup.orphan", "An object with no catalog row (left by a crashed run) was removed.";
    BackupDrillIdentity = "backup.drill_identity", "The restore drill's identity was stored (sealed at rest) or removed.";
    BackupAlert = "backup.alert", "Scheduled backups of a source started failing (outcome failure) or succeeded again.";
    SshKeyAdd = "ssh.key.add", "A public key was registered to an account for the SSH bastion.";
    SshKeyRemove = "ssh.key.remove", "A registered SSH public key was removed.";
    SshLogin = "ssh.login", "An SSH client authenticated (or was refused: the reason is in the details).";
    SshSessionStart = "ssh.session.start", "An SSH session to a target began.";
    SshSessionEnd = "ssh.session.end", "An SSH session ended (bytes each way, exit status, duration).";
    SshSessionKill = "ssh.session.kill", "An admin asked for a live SSH session to be ended.";
    SshExec = "ssh.exec", "A command, shell or subsystem was started in an SSH session.";
    SshForward = "ssh.forward", "A port forwarding was asked for (outcome denied when refused).";
    SshHostKey = "ssh.hostkey", "A target's host key was pinned, or refused for not matching the pin.";
    DbTokenCreate = "db.token.create", "A short-lived database token was issued for a person, target and database role.";
    DbTokenRevoke = "db.token.revoke", "A database token was revoked.";
    DbCredentialSet = "db.credential.set", "The upstream credential of a database target and role was set (sealed; never shown again).";
    DbRefused = "db.refused", "A database connection was refused before a session began (no TLS, bad packet, bad token, no grant).";
    DbSessionStart = "db.session.start", "A database session through the gateway began.";
    DbSessionEnd = "db.session.end", "A database session ended (details say why and how many statements ran).";
    DbStatement = "db.statement", "A database statement that changes nothing ran (normalized text: no values).";
    DbChange = "db.change", "A database write, DDL or privilege statement ran (LOG-4; normalized text: no values).";
    DbAuditResumed = "db.audit.resumed", "The audit log took the PostgreSQL gateway's writes again after refusing them (statements were refused meanwhile).";
    DbCancel = "db.cancel", "A cancel request for a running statement was forwarded (or refused).";
    AppRequest = "app.request", "A request to an app behind the front door was proxied (method, path with the query scrubbed, status, bytes, duration).";
    AppTokenCreate = "app.token.create", "A bearer token for an app was issued to a service account.";
    AppTokenRevoke = "app.token.revoke", "The bearer tokens of an app were revoked.";
    AppKeyCreate = "app.key.create", "The key that signs identity assertions for apps was created (sealed at rest).";
}

/// One thing that happened, before it is sealed into the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Who acted.
    pub actor: Actor,
    /// What was done.
    pub action: Action,
    /// What it was done to (an account name, a target, a role).
    pub subject: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The client address.
    pub source: Option<IpAddr>,
    /// Extra fields. Only text rampart produced, or scrubbed text.
    pub details: BTreeMap<String, String>,
}

impl AuditEvent {
    /// A successful event with no source and no details.
    pub fn new(actor: Actor, action: Action, subject: impl Into<String>) -> Self {
        Self {
            actor,
            action,
            subject: subject.into(),
            outcome: Outcome::Success,
            source: None,
            details: BTreeMap::new(),
        }
    }

    /// Sets the outcome.
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    /// Sets the client address.
    pub fn source(mut self, source: Option<IpAddr>) -> Self {
        self.source = source;
        self
    }

    /// Adds a detail.
    pub fn detail(mut self, key: &str, value: impl Into<String>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// The details as the JSON object that is stored and hashed (keys sorted).
    pub fn details_json(&self) -> String {
        serde_json::to_string(&self.details).unwrap_or_else(|_| String::from("{}"))
    }
}

impl Actor {
    /// The stored text (as `Display` writes it), in one allocation.
    pub fn text(&self) -> String {
        match self {
            Self::User(name) => prefixed("user:", name),
            Self::Cli(name) => prefixed("cli:", name),
            Self::System => String::from("system"),
            Self::Anonymous => String::from("anonymous"),
        }
    }
}

/// The stored actor text of the account `name` (`Actor::User(name)`), without making the
/// actor.
pub fn user_actor(name: &str) -> String {
    prefixed("user:", name)
}

fn prefixed(prefix: &str, name: &str) -> String {
    let mut text = String::with_capacity(prefix.len() + name.len());
    text.push_str(prefix);
    text.push_str(name);
    text
}

/// A detail's value for [`details_json`]: stored as a JSON string either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail<'a> {
    /// Text (escaped as JSON).
    Text(&'a str),
    /// A number, written in decimal.
    Number(u128),
}

/// The details JSON of `fields`, exactly as [`AuditEvent::details_json`] writes the same
/// details: keys sorted, every value a JSON string, a key given twice keeping its last
/// value. For the busiest records (app requests, database statements), made without an
/// event: no map, no owned key or value.
pub fn details_json(fields: &mut [(&str, Detail<'_>)]) -> String {
    use std::io::Write as _;
    // Stable: of equal keys the last given stays last, and is the one kept below.
    fields.sort_by(|a, b| a.0.cmp(b.0));
    let room: usize = fields
        .iter()
        .map(|(k, v)| {
            k.len()
                + 6
                + match v {
                    Detail::Text(t) => t.len() + 8,
                    Detail::Number(_) => 39,
                }
        })
        .sum();
    let mut json = Vec::with_capacity(room + 2);
    json.push(b'{');
    let mut first = true;
    let mut rest = fields.iter().peekable();
    while let Some((key, value)) = rest.next() {
        if rest.peek().is_some_and(|(next, _)| next == key) {
            continue;
        }
        if !first {
            json.push(b',');
        }
        first = false;
        // Writing into a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut json, key);
        json.push(b':');
        match value {
            Detail::Text(text) => {
                let _ = serde_json::to_writer(&mut json, text);
            }
            Detail::Number(n) => {
                let _ = write!(json, "\"{n}\"");
            }
        }
    }
    json.push(b'}');
    String::from_utf8(json).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// `ip` as stored, in one allocation (`to_string` grows its string as it writes).
pub fn address_text(ip: IpAddr) -> String {
    use std::fmt::Write as _;
    let mut text = String::with_capacity(45);
    let _ = write!(text, "{ip}");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_are_unique_and_parse_back() {
        let mut names: Vec<_> = Action::ALL.iter().map(|a| a.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Action::ALL.len());
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Some(*a));
        }
    }

    #[test]
    fn details_are_stored_with_sorted_keys() {
        let ev = AuditEvent::new(Actor::System, Action::Startup, "")
            .detail("zeta", "1")
            .detail("alpha", "2");
        assert_eq!(ev.details_json(), r#"{"alpha":"2","zeta":"1"}"#);
    }

    #[test]
    fn details_written_directly_are_those_of_the_event() {
        let path = "/a \"quoted\" \\ back\u{1}slash é ✓";
        let mut fields = [
            ("via", Detail::Text("token")),
            ("status", Detail::Number(200)),
            ("path", Detail::Text(path)),
            ("bytes_out", Detail::Number(u128::from(u64::MAX))),
            ("method", Detail::Text("GET")),
            ("status", Detail::Number(502)),
            ("", Detail::Text("")),
        ];
        let event = AuditEvent::new(Actor::System, Action::AppRequest, "a")
            .detail("via", "token")
            .detail("status", "200")
            .detail("path", path)
            .detail("bytes_out", u64::MAX.to_string())
            .detail("method", "GET")
            .detail("status", "502")
            .detail("", "");
        assert_eq!(details_json(&mut fields), event.details_json());
        assert_eq!(details_json(&mut []), "{}");
    }

    #[test]
    fn actors_and_addresses_are_stored_as_they_display() {
        for actor in [
            Actor::System,
            Actor::Anonymous,
            Actor::User("alice".into()),
            Actor::Cli("root".into()),
        ] {
            assert_eq!(actor.text(), actor.to_string());
        }
        assert_eq!(user_actor("bob"), Actor::User("bob".into()).to_string());
        for ip in [
            "10.1.2.3",
            "::1",
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(address_text(ip), ip.to_string());
        }
    }
}
