//! The relay of an authenticated session: two halves in one task, each streaming messages
//! as they come (nothing waits for a whole result; a client that reads slowly slows the
//! server through TCP), and the statement audit between them.
//!
//! The client→server half reads each message's type, normalizes the text of `Query` and
//! `Parse` (never a `Bind` value), and queues what the server will answer to each message,
//! in order, before forwarding it. The server→client half matches every response to that
//! queue (PostgreSQL docs 55.2.3 "Extended Query": after an error the server skips to
//! `Sync`), turns each finished statement into an audit event, and before it forwards a
//! `ReadyForQuery` commits those events through the store's group committer. If the commit
//! fails or takes longer than the configured wait, the client gets an error instead of
//! `ReadyForQuery` and the session ends: nothing acknowledged is unaudited.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use rampart_audit::{Action, AuditRecord, Detail, Outcome};
use rampart_store::Store;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::codec::{self, CodecError, cstr};
use crate::sql::{self, Class, Statement};

/// Messages the client may have in flight (sent, not yet answered) before the session
/// ends: bounds the queue's memory.
const MAX_IN_FLIGHT: usize = 65_536;

/// Named prepared statements and portals tracked per session; beyond it, new names are
/// audited as "unknown prepared statement".
const MAX_NAMES: usize = 10_000;

/// Longest a write to the client may make no progress (a client that stopped reading).
const WRITE_STALL: Duration = Duration::from_secs(300);

/// Who and where a session is, for its audit records.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// Session id (UUID v7).
    pub id: String,
    /// The person's account.
    pub account: String,
    /// The target.
    pub target: String,
    /// The database role used upstream.
    pub db_role: String,
    /// The database.
    pub database: String,
    /// The client's address.
    pub source: Option<IpAddr>,
}

/// How a relay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The client sent `Terminate` or closed its connection.
    Client,
    /// The server closed its connection.
    Server,
    /// The grant the session rests on expired.
    GrantExpired,
    /// The grant the session rests on was removed (revoked in an access review, removed by
    /// an admin) or the account was disabled.
    GrantRemoved,
    /// An audit record could not be committed in time.
    AuditFailed,
    /// The audit log was refusing writes, so a new statement was not forwarded.
    AuditUnavailable,
    /// The client broke the protocol or its limits.
    ClientProtocol,
    /// The server broke the protocol or its limits.
    ServerProtocol,
}

impl End {
    /// The stored reason.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Server => "server",
            Self::GrantExpired => "grant expired",
            Self::GrantRemoved => "grant removed",
            Self::AuditFailed => "audit write failed",
            Self::AuditUnavailable => "audit log unavailable",
            Self::ClientProtocol => "client protocol error",
            Self::ServerProtocol => "server protocol error",
        }
    }
}

/// Whether the audit log is taking the gateway's writes. Set failing by any failed append;
/// cleared by any successful one (sessions, or the gateway's probe). While it fails, new
/// statements wait (bounded) and are then refused without reaching the server.
#[derive(Debug, Default)]
pub struct AuditHealth {
    failing: std::sync::atomic::AtomicBool,
    recovered: tokio::sync::Notify,
}

impl AuditHealth {
    /// An append failed.
    pub fn failed(&self) {
        self.failing.store(true, Ordering::SeqCst);
    }

    /// An append succeeded.
    pub fn succeeded(&self) {
        if self.failing.swap(false, Ordering::SeqCst) {
            self.recovered.notify_waiters();
        }
    }

    /// Whether the last append failed.
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::SeqCst)
    }

    /// Waits up to `limit` for the log to take writes again; whether it does.
    pub async fn wait_ok(&self, limit: Duration) -> bool {
        let recovered = self.recovered.notified();
        if !self.is_failing() {
            return true;
        }
        tokio::time::timeout(limit, recovered).await.is_ok() || !self.is_failing()
    }
}

/// A statement as the relay keeps it: normalized, with its scrubbed text.
#[derive(Debug)]
struct Tracked {
    statement: Statement,
    /// The normalized text after the scrubber (identifiers may still name people).
    text: String,
}

impl Tracked {
    fn new(statement: Statement) -> Arc<Self> {
        let text = rampart_scrub::scrub_default(&statement.text);
        Arc::new(Self { statement, text })
    }

    fn unknown() -> Arc<Self> {
        Self::new(Statement {
            text: "(unknown prepared statement)".into(),
            fingerprint: "0000000000000000".into(),
            class: Class::Other,
        })
    }
}

/// What the server will answer to one client message.
#[derive(Debug)]
enum Expect {
    Query {
        statements: VecDeque<Arc<Tracked>>,
        since: Instant,
    },
    Parse(Arc<Tracked>),
    Bind,
    Describe,
    Close,
    Execute {
        statement: Arc<Tracked>,
        since: Instant,
    },
    /// A fastpath function call (`F`; large objects use it): audited by its function's
    /// OID, as a write since the usual ones (`lo_write`, `lo_import`) are; answered by
    /// `FunctionCallResponse` or an error, then `ReadyForQuery`, like a simple query.
    FunctionCall {
        oid: i32,
        since: Instant,
    },
    Sync,
}

/// Relay state shared by both halves.
#[derive(Debug)]
struct Shared {
    queue: Mutex<VecDeque<Expect>>,
    statements: AtomicU64,
    /// Begun while the server owes answers (the queue is not empty): the store's group
    /// committer then waits a moment for this session's record to join a commit.
    executing: rampart_store::Executing,
}

/// What the relay needs besides the two connections.
#[derive(Debug, Clone)]
pub struct Relay {
    /// The store whose audit log takes the records.
    pub store: Arc<Store>,
    /// Largest message, in bytes.
    pub limit: usize,
    /// Longest wait for an audit commit.
    pub audit_wait: Duration,
    /// When the grant ends (the session ends then).
    pub until: Option<jiff::Timestamp>,
    /// The role whose grant the session rests on: the session ends when the grant is
    /// removed (checked every [`RECHECK`]).
    pub role: String,
    /// The session.
    pub session: Arc<SessionInfo>,
    /// Whether the audit log takes writes.
    pub health: Arc<AuditHealth>,
}

/// How often a live session checks that its grant and account still stand.
pub const RECHECK: Duration = Duration::from_secs(5);

impl Relay {
    /// Returns when the grant the session rests on is gone or the account is disabled;
    /// a store that cannot be read leaves the session alone until the next check (its
    /// expiry still ends it).
    async fn removed(&self) -> End {
        let mut tick = tokio::time::interval(RECHECK);
        tick.tick().await;
        loop {
            tick.tick().await;
            let account = self.session.account.as_str();
            let (bindings, who) = match tokio::try_join!(
                self.store.bindings(Some(account)),
                self.store.account_by_login(account)
            ) {
                Ok(facts) => facts,
                Err(e) => {
                    tracing::warn!(error = %e, "could not re-check a database session's grant");
                    continue;
                }
            };
            let granted = bindings.iter().any(|b| b.role.as_str() == self.role);
            if !granted || !who.is_some_and(|a| a.active) {
                return End::GrantRemoved;
            }
        }
    }

    /// Relays until either side ends; returns why, and how many statements were audited.
    pub async fn run<CR, CW, SR, SW>(
        &self,
        client_r: CR,
        client_w: CW,
        server_r: SR,
        server_w: SW,
    ) -> (End, u64)
    where
        CR: AsyncRead + Unpin,
        CW: AsyncWrite + Unpin,
        SR: AsyncRead + Unpin,
        SW: AsyncWrite + Unpin,
    {
        let shared = Shared {
            queue: Mutex::default(),
            statements: AtomicU64::default(),
            executing: self.store.executing(),
        };
        let end = tokio::select! {
            end = client_to_server(client_r, server_w, &shared, self) => end,
            end = server_to_client(server_r, client_w, &shared, self) => end,
            end = self.removed() => end,
        };
        (end, shared.statements.load(Ordering::Relaxed))
    }
}

async fn client_to_server<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    mut r: R,
    mut w: W,
    shared: &Shared,
    relay: &Relay,
) -> End {
    let limit = relay.limit;
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut names = Names::default();
    let mut expects = Vec::new();
    loop {
        let mut consumed = 0;
        let mut terminate = false;
        let want = loop {
            let rest = buf.get(consumed..).unwrap_or_default();
            let (tag, len) = match codec::frame(rest, limit) {
                Ok(Some(f)) => f,
                // Room for the rest of an incomplete message (bounded by the limit).
                Ok(None) => break missing(rest),
                Err(e) => {
                    tracing::info!(error = %e, "client protocol error");
                    return End::ClientProtocol;
                }
            };
            let body = rest.get(5..len).unwrap_or_default();
            if let Some(e) = inspect(tag, body, &mut names) {
                expects.push(e);
            }
            consumed += len;
            if tag == b'X' {
                terminate = true;
                break 0;
            }
        };
        let runs_statements = expects.iter().any(|e| {
            matches!(
                e,
                Expect::Query { .. } | Expect::Execute { .. } | Expect::FunctionCall { .. }
            )
        });
        if runs_statements
            && relay.health.is_failing()
            && !relay.health.wait_ok(relay.audit_wait).await
        {
            return End::AuditUnavailable;
        }
        if !expects.is_empty() {
            let Ok(mut queue) = shared.queue.lock() else {
                return End::ClientProtocol;
            };
            if queue.len() + expects.len() > MAX_IN_FLIGHT {
                tracing::info!("client exceeded the messages in flight");
                return End::ClientProtocol;
            }
            queue.extend(expects.drain(..));
            shared.executing.begin();
        }
        if consumed > 0 {
            let Some(out) = buf.get(..consumed) else {
                return End::ClientProtocol;
            };
            if w.write_all(out).await.is_err() || w.flush().await.is_err() {
                return End::Server;
            }
            buf.advance(consumed);
        }
        if terminate {
            return End::Client;
        }
        buf.reserve(want.max(16 * 1024));
        match r.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return End::Client,
            Ok(_) => {}
        }
    }
}

/// Prepared statements and portals by name.
#[derive(Debug, Default)]
struct Names {
    statements: HashMap<Vec<u8>, Arc<Tracked>>,
    portals: HashMap<Vec<u8>, Arc<Tracked>>,
}

impl Names {
    fn remember(map: &mut HashMap<Vec<u8>, Arc<Tracked>>, name: &[u8], t: Arc<Tracked>) {
        if map.len() < MAX_NAMES || map.contains_key(name) {
            map.insert(name.to_vec(), t);
        }
    }
}

/// What the server will answer to a client message, after noting its names. Reads only
/// the statement text of `Query` and `Parse` and the names of `Bind`, `Execute`, `Close`.
fn inspect(tag: u8, body: &[u8], names: &mut Names) -> Option<Expect> {
    match tag {
        b'Q' => {
            let text = cstr(body, 0).map(|(t, _)| t).unwrap_or(body);
            Some(Expect::Query {
                statements: sql::normalize(text).into_iter().map(Tracked::new).collect(),
                since: Instant::now(),
            })
        }
        b'P' => {
            let (name, next) = cstr(body, 0).unwrap_or((b"", body.len()));
            let text = cstr(body, next).map(|(t, _)| t).unwrap_or_default();
            let t = Tracked::new(sql::normalize_one(text));
            Names::remember(&mut names.statements, name, t.clone());
            Some(Expect::Parse(t))
        }
        b'B' => {
            let (portal, next) = cstr(body, 0).unwrap_or((b"", body.len()));
            let statement = cstr(body, next).map(|(s, _)| s).unwrap_or_default();
            let t = names
                .statements
                .get(statement)
                .cloned()
                .unwrap_or_else(Tracked::unknown);
            Names::remember(&mut names.portals, portal, t);
            Some(Expect::Bind)
        }
        b'E' => {
            let portal = cstr(body, 0).map(|(p, _)| p).unwrap_or_default();
            let statement = names
                .portals
                .get(portal)
                .cloned()
                .unwrap_or_else(Tracked::unknown);
            Some(Expect::Execute {
                statement,
                since: Instant::now(),
            })
        }
        b'C' => {
            let name = cstr(body, 1).map(|(n, _)| n).unwrap_or_default();
            match body.first() {
                Some(b'S') => names.statements.remove(name),
                _ => names.portals.remove(name),
            };
            Some(Expect::Close)
        }
        b'D' => Some(Expect::Describe),
        b'S' => Some(Expect::Sync),
        b'F' => Some(Expect::FunctionCall {
            oid: codec::i32_at(body, 0).unwrap_or(0),
            since: Instant::now(),
        }),
        _ => None,
    }
}

async fn server_to_client<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    mut r: R,
    mut w: W,
    shared: &Shared,
    relay: &Relay,
) -> End {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut events: Vec<AuditRecord> = Vec::new();
    let deadline = relay.until.map(|until| {
        let left = until.duration_since(jiff::Timestamp::now());
        let left = Duration::try_from(left).unwrap_or(Duration::ZERO);
        tokio::time::Instant::now() + left
    });
    loop {
        let mut consumed = 0;
        let mut start = 0;
        let want = loop {
            let rest = buf.get(consumed..).unwrap_or_default();
            let (tag, len) = match codec::frame(rest, relay.limit) {
                Ok(Some(f)) => f,
                // Room for the rest of an incomplete message (bounded by the limit).
                Ok(None) => break missing(rest),
                Err(e) => {
                    tracing::warn!(error = %e, "server protocol error");
                    let _ = send(&mut w, buf.get(start..consumed).unwrap_or_default()).await;
                    let _ = send(&mut w, &protocol_error(&e)).await;
                    return End::ServerProtocol;
                }
            };
            let body = rest.get(5..len).unwrap_or_default();
            if let Ok(mut queue) = shared.queue.lock() {
                respond(tag, body, &mut queue, &relay.session, &mut events);
                if queue.is_empty() {
                    shared.executing.end();
                }
            }
            if tag == b'Z' && !events.is_empty() {
                // ReadyForQuery goes only after the commit. What came before it goes now
                // when it is large; a small result waits and leaves with ReadyForQuery in
                // one write (one TLS record, one system call).
                if consumed - start > 32 * 1024 {
                    if send(&mut w, buf.get(start..consumed).unwrap_or_default())
                        .await
                        .is_err()
                    {
                        return End::Client;
                    }
                    start = consumed;
                }
                let n = events.len() as u64;
                let committed = tokio::time::timeout(
                    relay.audit_wait,
                    relay.store.append_records(std::mem::take(&mut events)),
                )
                .await;
                match committed {
                    Ok(Ok(mut sealed)) => {
                        // The vector comes back: the next statement's records reuse it.
                        sealed.clear();
                        events = sealed;
                        relay.health.succeeded();
                        shared.statements.fetch_add(n, Ordering::Relaxed);
                    }
                    outcome => {
                        relay.health.failed();
                        let why = match outcome {
                            Ok(Err((e, _))) => e.to_string(),
                            _ => "timed out".into(),
                        };
                        tracing::error!(session = %relay.session.id, error = %why, "statement audit could not be committed; ending the session");
                        let _ = send(
                            &mut w,
                            &codec::error_response(
                                "FATAL",
                                "58000",
                                "rampart could not write the audit record of this statement, so the session ends (nothing runs unaudited); try again later",
                            ),
                        )
                        .await;
                        return End::AuditFailed;
                    }
                }
            }
            consumed += len;
        };
        if consumed > start
            && send(&mut w, buf.get(start..consumed).unwrap_or_default())
                .await
                .is_err()
        {
            return End::Client;
        }
        buf.advance(consumed);
        buf.reserve(want.max(64 * 1024));
        let read = async {
            match deadline {
                Some(at) => tokio::time::timeout_at(at, r.read_buf(&mut buf)).await.ok(),
                None => Some(r.read_buf(&mut buf).await),
            }
        };
        match read.await {
            None => {
                let _ = send(
                    &mut w,
                    &codec::error_response(
                        "FATAL",
                        "57P01",
                        "the grant that allowed this session expired; rampart ended it",
                    ),
                )
                .await;
                return End::GrantExpired;
            }
            Some(Ok(0)) | Some(Err(_)) => {
                let _ = send(
                    &mut w,
                    &codec::error_response(
                        "FATAL",
                        "08006",
                        "the database server closed the connection",
                    ),
                )
                .await;
                return End::Server;
            }
            Some(Ok(_)) => {}
        }
    }
}

/// Bytes still missing of the incomplete message at the start of `rest` (its length is
/// checked against the limit before this is asked).
fn missing(rest: &[u8]) -> usize {
    codec::i32_at(rest, 1)
        .and_then(|l| usize::try_from(l).ok())
        .map_or(0, |len| (len + 1).saturating_sub(rest.len()))
}

async fn send<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    let write = async {
        w.write_all(bytes).await?;
        w.flush().await
    };
    tokio::time::timeout(WRITE_STALL, write)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "client stopped reading"))?
}

fn protocol_error(e: &CodecError) -> BytesMut {
    let text = match e {
        CodecError::TooLarge { .. } => {
            "the database server sent a message larger than rampart's limit (postgres.max_message_kib)"
        }
        CodecError::Malformed(_) | CodecError::UnknownProtocol(_) | CodecError::Io(_) => {
            "the database server sent a malformed message"
        }
    };
    codec::error_response("FATAL", "08P01", text)
}

/// Matches one server message to what was expected and notes finished statements.
fn respond(
    tag: u8,
    body: &[u8],
    queue: &mut VecDeque<Expect>,
    relay: &SessionInfo,
    events: &mut Vec<AuditRecord>,
) {
    let head_is = |q: &VecDeque<Expect>, f: fn(&Expect) -> bool| q.front().is_some_and(f);
    match tag {
        b'1' if head_is(queue, |e| matches!(e, Expect::Parse(_))) => {
            queue.pop_front();
        }
        b'2' if head_is(queue, |e| matches!(e, Expect::Bind)) => {
            queue.pop_front();
        }
        b'3' if head_is(queue, |e| matches!(e, Expect::Close)) => {
            queue.pop_front();
        }
        b'T' | b'n' if head_is(queue, |e| matches!(e, Expect::Describe)) => {
            queue.pop_front();
        }
        b'V' => {
            if let Some(Expect::FunctionCall { oid, since }) = queue.front() {
                events.push(record(
                    relay,
                    Some(function_call(*oid)),
                    *since,
                    Done::Complete(b"FUNCTION CALL"),
                ));
            }
        }
        b'C' | b's' | b'I' => {
            let tag_text = (tag == b'C')
                .then(|| cstr(body, 0).map(|(t, _)| t))
                .flatten();
            let outcome = match tag {
                b's' => Done::Suspended,
                b'I' => Done::Empty,
                _ => Done::Complete(tag_text.unwrap_or_default()),
            };
            match queue.front_mut() {
                Some(Expect::Query { statements, since }) => {
                    if tag == b'I' {
                        return;
                    }
                    let statement = statements.pop_front();
                    let started = std::mem::replace(since, Instant::now());
                    events.push(record(relay, statement, started, outcome));
                }
                Some(Expect::Execute { .. }) => {
                    if let Some(Expect::Execute { statement, since }) = queue.pop_front()
                        && tag != b'I'
                    {
                        events.push(record(relay, Some(statement), since, outcome));
                    }
                }
                _ => {}
            }
        }
        b'E' => {
            let code = codec::error_field(body, b'C').unwrap_or_default();
            match queue.front_mut() {
                Some(Expect::Query { statements, since }) => {
                    let statement = statements.pop_front();
                    let started = std::mem::replace(since, Instant::now());
                    events.push(record(relay, statement, started, Done::Error(code)));
                    // The rest of a failed simple query never runs.
                    statements.clear();
                }
                Some(Expect::FunctionCall { oid, since }) => {
                    events.push(record(
                        relay,
                        Some(function_call(*oid)),
                        *since,
                        Done::Error(code),
                    ));
                }
                Some(Expect::Sync) | None => {}
                Some(_) => {
                    match queue.pop_front() {
                        Some(Expect::Execute { statement, since }) => {
                            events.push(record(relay, Some(statement), since, Done::Error(code)));
                        }
                        Some(Expect::Parse(statement)) => {
                            events.push(record(
                                relay,
                                Some(statement),
                                Instant::now(),
                                Done::Error(code),
                            ));
                        }
                        _ => {}
                    }
                    // The server skips everything up to the next Sync.
                    while queue.front().is_some_and(|e| !matches!(e, Expect::Sync)) {
                        queue.pop_front();
                    }
                }
            }
        }
        b'Z' => {
            // Ends the Query or Sync at the head; anything still before it got no answer.
            while let Some(e) = queue.pop_front() {
                if matches!(
                    e,
                    Expect::Query { .. } | Expect::Sync | Expect::FunctionCall { .. }
                ) {
                    break;
                }
            }
        }
        _ => {}
    }
}

/// The audited form of a fastpath call: its function's OID only, never its arguments.
fn function_call(oid: i32) -> Arc<Tracked> {
    Tracked::new(Statement {
        text: format!("(fastpath function call, function OID {oid})"),
        fingerprint: "0000000000000000".into(),
        class: Class::Write,
    })
}

/// How a statement finished.
enum Done<'a> {
    Complete(&'a [u8]),
    Suspended,
    Empty,
    Error(&'a [u8]),
}

/// The unsealed audit record of a finished statement, made without an event (one per
/// statement: the gateway's busiest allocation site). Its details are those an event
/// with the same fields would have ([`rampart_audit::details_json`]).
fn record(
    s: &SessionInfo,
    statement: Option<Arc<Tracked>>,
    since: Instant,
    done: Done<'_>,
) -> AuditRecord {
    let statement = statement.unwrap_or_else(|| {
        Tracked::new(Statement {
            text: "(statement not recognized)".into(),
            fingerprint: "0000000000000000".into(),
            class: Class::Other,
        })
    });
    let class = statement.statement.class;
    let action = if class.is_change() {
        Action::DbChange
    } else {
        Action::DbStatement
    };
    let (command, rows, code, outcome) = match done {
        Done::Complete(tag) => {
            let (command, rows) = split_tag(tag);
            (Some(command), rows, None, Outcome::Success)
        }
        Done::Suspended => (
            Some(Cow::Borrowed("PORTAL SUSPENDED")),
            None,
            None,
            Outcome::Success,
        ),
        Done::Empty => (None, None, None, Outcome::Success),
        Done::Error(c) => (None, None, Some(sqlstate(c)), Outcome::Failure),
    };
    let mut fields = Vec::with_capacity(10);
    fields.extend([
        ("session", Detail::Text(&s.id)),
        ("db_role", Detail::Text(&s.db_role)),
        ("database", Detail::Text(&s.database)),
        ("class", Detail::Text(class.as_str())),
        (
            "fingerprint",
            Detail::Text(&statement.statement.fingerprint),
        ),
        ("statement", Detail::Text(&statement.text)),
        ("duration_us", Detail::Number(since.elapsed().as_micros())),
    ]);
    // The rest by how the statement finished; a field not given is left out.
    fields.extend(command.as_deref().map(|c| ("command", Detail::Text(c))));
    fields.extend(rows.map(|n| ("rows", Detail::Number(n.into()))));
    fields.extend(code.as_deref().map(|c| ("sqlstate", Detail::Text(c))));
    let details = rampart_audit::details_json(&mut fields);
    AuditRecord::unsealed_from(
        rampart_audit::user_actor(&s.account),
        action,
        &s.target,
        outcome,
        s.source,
        details,
    )
}

/// `INSERT 0 5` → (`INSERT`, 5); `CREATE TABLE` → (`CREATE TABLE`, none). The command is
/// borrowed from the tag when the tag is UTF-8 (as every tag PostgreSQL sends is).
fn split_tag(tag: &[u8]) -> (Cow<'_, str>, Option<u64>) {
    match String::from_utf8_lossy(tag) {
        Cow::Borrowed(text) => {
            let (command, rows) = split_tag_text(text);
            (Cow::Borrowed(command), rows)
        }
        Cow::Owned(text) => {
            let (command, rows) = split_tag_text(&text);
            (Cow::Owned(command.to_owned()), rows)
        }
    }
}

/// The command (trailing numbers off, at most 64 characters) and the row count of a tag.
fn split_tag_text(text: &str) -> (&str, Option<u64>) {
    let number = |w: &str| w.parse::<u64>().ok();
    let rows = text.rsplit(' ').next().and_then(number);
    // Trailing numbers (`INSERT 0 5`) are not part of the command.
    let mut command = text;
    loop {
        match command.rsplit_once(' ') {
            Some((before, last)) if number(last).is_some() => command = before,
            None if number(command).is_some() => command = "",
            _ => break,
        }
    }
    match command.char_indices().nth(64) {
        Some((cut, _)) => (command.get(..cut).unwrap_or_default(), rows),
        None => (command, rows),
    }
}

/// A SQLSTATE is five characters of `[0-9A-Z]`; anything else is stored as `?????`.
fn sqlstate(code: &[u8]) -> String {
    if code.len() == 5
        && code
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        String::from_utf8_lossy(code).into_owned()
    } else {
        "?????".into()
    }
}

#[cfg(test)]
mod tests;
