//! The listener and the startup handshake (PostgreSQL docs 55.2.1 "Start-up", 55.2.10
//! "SSL Session Encryption", 55.2.8 "Canceling Requests in Progress").
//!
//! A connection goes through states, each a step of [`handle`]: negotiate encryption
//! (TLS or nothing), read the startup packet, ask for the password (the database token),
//! check the token (bound to account, target and role; live), authorize the person now,
//! log in upstream, then relay. Every refusal is an audit record and a client-facing error
//! whose text is chosen here, from an exhaustive match: no internal detail reaches the
//! client.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use rampart_audit::{Action, Actor, AuditEvent, Outcome};
use rampart_identity::sealed::MasterKey;
use rampart_store::Store;
use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::codec::{self, CodecError, Startup};
use crate::config::{ClientAuth, PostgresConfig};
use crate::relay::{AuditHealth, End, Relay, SessionInfo};
use crate::upstream::{self, UpstreamError};

mod auth;
mod refusal;

use refusal::Refusal;

/// The running gateway: shared by every connection.
pub struct Gateway {
    store: Arc<Store>,
    master: Arc<MasterKey>,
    tls: TlsAcceptor,
    config: PostgresConfig,
    cancels: Mutex<HashMap<i32, CancelKey>>,
    health: Arc<AuditHealth>,
    upstream_tls: upstream::UpstreamTlsConfig,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Where a cancel request for one of rampart's backend keys goes.
#[derive(Debug, Clone)]
struct CancelKey {
    secret: i32,
    upstream: String,
    pid: i32,
    upstream_secret: i32,
    account: String,
    target: String,
    session: String,
}

/// The sealing context of a target's credential for a role: a sealed value moved to
/// another row does not open.
pub fn credential_context(target: &str, db_role: &str) -> String {
    format!("db-credential:{target}:{db_role}")
}

impl Gateway {
    /// A gateway that answers TLS with `tls` (its ALPN is set to `postgresql`); fails when
    /// the upstream TLS settings cannot be used.
    pub fn new(
        store: Arc<Store>,
        master: Arc<MasterKey>,
        tls: Arc<rustls::ServerConfig>,
        config: PostgresConfig,
    ) -> Result<Arc<Self>, upstream::tls::TlsSetupError> {
        let mut tls = (*tls).clone();
        tls.alpn_protocols = vec![b"postgresql".to_vec()];
        let upstream_tls = upstream::UpstreamTlsConfig::new(&config)?;
        Ok(Arc::new(Self {
            store,
            master,
            tls: TlsAcceptor::from(Arc::new(tls)),
            config,
            cancels: Mutex::new(HashMap::new()),
            health: Arc::default(),
            upstream_tls,
        }))
    }

    /// Accepts connections until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        let probe = tokio::spawn(self.clone().probe());
        let _stop_probe = AbortOnDrop(probe);
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "postgres gateway accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let gateway = self.clone();
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                gateway.handle(stream, peer).await;
            });
        }
    }

    async fn handle(self: Arc<Self>, stream: TcpStream, peer: SocketAddr) {
        let handshake = Duration::from_secs(u64::from(self.config.handshake_seconds));
        let opened = tokio::time::timeout(handshake, self.open(stream, peer.ip())).await;
        let (client, login) = match opened {
            Ok(Ok(Some(pair))) => pair,
            Ok(Ok(None)) => return,
            Ok(Err((mut client, refusal))) => {
                self.refuse(&mut client, peer.ip(), refusal).await;
                return;
            }
            Err(_) => {
                self.audit_refusal(peer.ip(), &Refusal::Timeout).await;
                return;
            }
        };
        self.run(client, login, peer.ip()).await;
    }
}

/// Aborts a task when dropped (the probe ends with the listener).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Gateway {
    /// While the audit log refuses writes, tries one record a second; the first that
    /// commits says how long statements were refused and lets them run again.
    async fn probe(self: Arc<Self>) {
        let mut since: Option<std::time::Instant> = None;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if !self.health.is_failing() {
                since = None;
                continue;
            }
            let started = *since.get_or_insert_with(std::time::Instant::now);
            let event = AuditEvent::new(Actor::System, Action::DbAuditResumed, "postgres gateway")
                .detail("refused_for_s", started.elapsed().as_secs().to_string());
            if self.store.append_audit(&[event]).await.is_ok() {
                tracing::info!("the audit log takes writes again; database statements run again");
                self.health.succeeded();
                since = None;
            }
        }
    }
}

/// A client connection: plaintext until TLS is negotiated.
enum Client {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Client {
    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Plain(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Self::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
        }
    }
}

/// A person who proved a token and may use the target.
struct Login {
    account: String,
    target: rampart_access::Target,
    db_role: String,
    database: String,
    params: Vec<(String, String)>,
    permit: rampart_access::Permit,
}

impl Gateway {
    /// Negotiates, reads the startup packet and checks the token and the grant. `None`:
    /// the connection was a cancel request (already handled) or went away.
    async fn open(
        &self,
        stream: TcpStream,
        ip: IpAddr,
    ) -> Result<Option<(Client, Login)>, (Client, Refusal)> {
        let mut client = Client::Plain(stream);
        // At most one GSSENC and one SSL negotiation, as libpq does.
        for _ in 0..3 {
            let packet = match &mut client {
                Client::Plain(s) => codec::read_startup(s).await,
                Client::Tls(s) => codec::read_startup(s.as_mut()).await,
            };
            let packet = match packet {
                Ok(p) => p,
                Err(CodecError::Io(_)) => return Ok(None),
                Err(e) => return Err((client, Refusal::BadPacket(e))),
            };
            match (packet, client) {
                (Startup::GssEnc, Client::Plain(mut s)) => {
                    if s.write_all(b"N").await.is_err() {
                        return Ok(None);
                    }
                    client = Client::Plain(s);
                }
                (Startup::Ssl, Client::Plain(mut s)) => {
                    if s.write_all(b"S").await.is_err() {
                        return Ok(None);
                    }
                    match self.tls.accept(s).await {
                        Ok(tls) => client = Client::Tls(Box::new(tls)),
                        Err(e) => {
                            tracing::info!(error = %e, "postgres TLS handshake failed");
                            return Ok(None);
                        }
                    }
                }
                (Startup::Cancel { pid, secret }, _) => {
                    self.cancel(pid, secret, ip).await;
                    return Ok(None);
                }
                (Startup::Startup { .. }, c @ Client::Plain(_)) => {
                    return Err((c, Refusal::Plaintext));
                }
                (Startup::Startup { minor, params }, Client::Tls(s)) => {
                    let mut c = Client::Tls(s);
                    return match self.login(&mut c, minor, params).await {
                        Ok(login) => Ok(Some((c, login))),
                        Err(r) => Err((c, r)),
                    };
                }
                (_, c) => return Err((c, Refusal::NoTls)),
            }
        }
        Err((client, Refusal::NoTls))
    }

    async fn login(
        &self,
        client: &mut Client,
        minor: u16,
        params: Vec<(String, String)>,
    ) -> Result<Login, Refusal> {
        let Client::Tls(stream) = client else {
            return Err(Refusal::Plaintext);
        };
        let mut user = None;
        let mut database = None;
        let mut rest = Vec::new();
        let mut unknown_options = Vec::new();
        for (k, v) in params {
            match k.as_str() {
                "user" => user = Some(v),
                "database" => database = Some(v),
                "replication" if !matches!(v.as_str(), "false" | "off" | "0" | "no") => {
                    return Err(Refusal::Replication);
                }
                "replication" => {}
                _ if k.starts_with("_pq_.") => unknown_options.push(k),
                _ => rest.push((k, v)),
            }
        }
        if minor > 0 || !unknown_options.is_empty() {
            // 55.2.1: answer the newest minor version spoken (0) and the options ignored.
            let mut body = Vec::new();
            body.extend_from_slice(&0i32.to_be_bytes());
            body.extend_from_slice(
                &i32::try_from(unknown_options.len())
                    .unwrap_or(0)
                    .to_be_bytes(),
            );
            for o in &unknown_options {
                body.extend_from_slice(o.as_bytes());
                body.push(0);
            }
            write(stream, &codec::message(b'v', &body)).await?;
        }
        let user = user.ok_or(Refusal::BadUser)?;
        let (account, target_name) = user.split_once('#').ok_or(Refusal::BadUser)?;
        let now = jiff::Timestamp::now();
        let token = match self.config.client_auth {
            ClientAuth::Scram => self.scram(stream, account, target_name, now).await?,
            ClientAuth::Password => self.password(stream, account, target_name, now).await?,
        };
        let denied = |why: String| Refusal::Denied {
            account: account.to_owned(),
            target: target_name.to_owned(),
            why,
        };
        let target = crate::token::postgres_target(&self.store, target_name)
            .await
            .map_err(|_| Refusal::Audit)?
            .ok_or_else(|| denied("no such postgres target".into()))?;
        let permit = crate::token::permit(&self.store, account, &target, &token.db_role, now)
            .await
            .map_err(|_| Refusal::Audit)?
            .map_err(|d| denied(d.to_string()))?;
        let database = match database {
            Some(d) if d != user => d,
            _ => token.db_role.clone(),
        };
        Ok(Login {
            account: account.to_owned(),
            target,
            db_role: token.db_role,
            database,
            params: rest,
            permit,
        })
    }

    async fn run(&self, mut client: Client, login: Login, ip: IpAddr) {
        let target = login.target.name.to_string();
        let limit = Duration::from_secs(u64::from(self.config.handshake_seconds));
        let upstream = match tokio::time::timeout(limit, self.upstream(&login)).await {
            Ok(Ok(u)) => u,
            Ok(Err(r)) => return self.refuse(&mut client, ip, r).await,
            Err(_) => {
                let error = UpstreamError::Connect(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no answer within postgres.handshake_seconds",
                ));
                let refusal = Refusal::Upstream { target, error };
                return self.refuse(&mut client, ip, refusal).await;
            }
        };
        let Client::Tls(stream) = client else {
            return;
        };
        let session = Arc::new(SessionInfo {
            id: uuid::Uuid::now_v7().to_string(),
            account: login.account.clone(),
            target: target.clone(),
            db_role: login.db_role.clone(),
            database: login.database.clone(),
            source: Some(ip),
        });
        let start = AuditEvent::new(
            Actor::User(login.account.clone()),
            Action::DbSessionStart,
            target.clone(),
        )
        .source(Some(ip))
        .detail("session", session.id.clone())
        .detail("db_role", login.db_role.clone())
        .detail("database", login.database.clone())
        .detail("role", login.permit.role().to_string())
        .detail(
            "upstream_tls",
            if upstream.stream.is_tls() {
                "yes"
            } else {
                "no"
            },
        );
        let mut stream = stream;
        if self.store.append_audit(&[start]).await.is_err() {
            self.health.failed();
            let mut c = Client::Tls(stream);
            return self.refuse(&mut c, ip, Refusal::Audit).await;
        }
        self.health.succeeded();
        let (pid, secret) = self.register(&login, &session.id, &upstream);
        let mut hello = BytesMut::new();
        hello.extend_from_slice(&codec::authentication(0, &[]));
        hello.extend_from_slice(&upstream.greeting);
        hello.extend_from_slice(&codec::backend_key_data(pid, secret));
        codec::put_message(&mut hello, b'Z', &[upstream.status]);
        let greeted = async {
            stream.write_all(&hello).await?;
            stream.flush().await
        }
        .await;
        let (end, statements) = if greeted.is_ok() {
            let relay = Relay {
                store: self.store.clone(),
                limit: self.config.max_message_bytes(),
                audit_wait: Duration::from_secs(u64::from(self.config.audit_wait_seconds)),
                until: login.permit.until(),
                role: login.permit.role().to_string(),
                session: session.clone(),
                health: self.health.clone(),
            };
            let (mut cr, mut cw) = tokio::io::split(*stream);
            let (mut sr, mut sw) = tokio::io::split(upstream.stream);
            let (end, n) = relay.run(&mut cr, &mut cw, &mut sr, &mut sw).await;
            let last_word = match end {
                End::AuditUnavailable => Some((
                    "58000",
                    "rampart cannot write its audit log right now, so this statement was not run; try again later",
                )),
                End::ClientProtocol => Some((
                    "08P01",
                    "rampart ended the session: a message broke the protocol or was larger than postgres.max_message_kib",
                )),
                End::GrantRemoved => Some((
                    "57P01",
                    "the grant that allowed this session was removed (or the account disabled); rampart ended it",
                )),
                End::Client
                | End::Server
                | End::GrantExpired
                | End::AuditFailed
                | End::ServerProtocol => None,
            };
            if let Some((code, text)) = last_word {
                let _ = cw
                    .write_all(&codec::error_response("FATAL", code, text))
                    .await;
                let _ = cw.flush().await;
            }
            (end, n)
        } else {
            (End::Client, 0)
        };
        if let Ok(mut map) = self.cancels.lock() {
            map.remove(&pid);
        }
        let outcome = match end {
            End::Client | End::Server | End::GrantExpired | End::GrantRemoved => Outcome::Success,
            End::AuditFailed
            | End::AuditUnavailable
            | End::ClientProtocol
            | End::ServerProtocol => Outcome::Failure,
        };
        let done = AuditEvent::new(
            Actor::User(login.account.clone()),
            Action::DbSessionEnd,
            target,
        )
        .outcome(outcome)
        .source(Some(ip))
        .detail("session", session.id.clone())
        .detail("reason", end.as_str())
        .detail("statements", statements.to_string());
        if let Err(e) = self.store.append_audit(&[done]).await {
            tracing::error!(error = %e, session = %session.id, "cannot audit the end of a database session");
        }
    }

    async fn upstream(&self, login: &Login) -> Result<upstream::Upstream, Refusal> {
        let target = login.target.name.to_string();
        let cred = self
            .store
            .db_credential(&target, &login.db_role)
            .await
            .map_err(|_| Refusal::Audit)?
            .ok_or_else(|| Refusal::NoCredential {
                target: target.clone(),
                db_role: login.db_role.clone(),
            })?;
        let password = self
            .master
            .open(
                &credential_context(&target, &login.db_role),
                &cred.secret_sealed,
            )
            .map_err(|_| Refusal::NoCredential {
                target: target.clone(),
                db_role: login.db_role.clone(),
            })?;
        let mut params = login.params.clone();
        params.push(("database".into(), login.database.clone()));
        upstream::connect(
            &login.target.address,
            &cred.username,
            password.expose_secret(),
            &params,
            self.config.max_message_bytes(),
            &self.upstream_tls,
        )
        .await
        .map_err(|error| Refusal::Upstream { target, error })
    }

    /// Gives the session a backend key of rampart's own, mapped to the upstream's.
    fn register(&self, login: &Login, session: &str, upstream: &upstream::Upstream) -> (i32, i32) {
        let mut bytes = [0u8; 8];
        if aws_lc_rs::rand::fill(&mut bytes).is_err() {
            return (0, 0);
        }
        let [a, b, c, d, e, f, g, h] = bytes;
        let mut pid = i32::from_be_bytes([a & 0x7f, b, c, d]).max(1);
        let secret = i32::from_be_bytes([e, f, g, h]);
        let Some((up_pid, up_secret)) = upstream.key else {
            return (pid, secret);
        };
        if let Ok(mut map) = self.cancels.lock() {
            while map.contains_key(&pid) {
                pid = pid.wrapping_add(1).max(1);
            }
            map.insert(
                pid,
                CancelKey {
                    secret,
                    upstream: login.target.address.clone(),
                    pid: up_pid,
                    upstream_secret: up_secret,
                    account: login.account.clone(),
                    target: login.target.name.to_string(),
                    session: session.to_owned(),
                },
            );
        }
        (pid, secret)
    }

    async fn cancel(&self, pid: i32, secret: i32, ip: IpAddr) {
        let key = self
            .cancels
            .lock()
            .ok()
            .and_then(|map| map.get(&pid).cloned())
            .filter(|k| bool::from(k.secret.to_be_bytes().ct_eq(&secret.to_be_bytes())));
        let event = match key {
            Some(k) => {
                let limit = Duration::from_secs(u64::from(self.config.handshake_seconds));
                let sent = tokio::time::timeout(
                    limit,
                    upstream::cancel(&k.upstream, k.pid, k.upstream_secret),
                )
                .await
                .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()));
                AuditEvent::new(Actor::User(k.account), Action::DbCancel, k.target)
                    .outcome(if sent.is_ok() {
                        Outcome::Success
                    } else {
                        Outcome::Failure
                    })
                    .detail("session", k.session)
            }
            None => AuditEvent::new(Actor::Anonymous, Action::DbCancel, "unknown")
                .outcome(Outcome::Denied)
                .detail("reason", "no session has that backend key"),
        };
        if let Err(e) = self.store.append_audit(&[event.source(Some(ip))]).await {
            tracing::error!(error = %e, "cannot audit a cancel request");
        }
    }
}

/// The TLS stream of a client.
type TlsClient = Box<tokio_rustls::server::TlsStream<TcpStream>>;

async fn write<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, bytes: &[u8]) -> Result<(), Refusal> {
    let done = async {
        s.write_all(bytes).await?;
        s.flush().await
    };
    done.await
        .map_err(|e| Refusal::BadPacket(CodecError::Io(e)))
}
