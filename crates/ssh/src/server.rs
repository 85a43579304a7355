//! The listener, the per-connection handler (authentication in states), and the session's
//! start, watch and end.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use rampart_access::{Principal, Request, Target, TargetKind, authorize};
use rampart_audit::{Action, Actor, AuditEvent, Outcome};
use rampart_identity::policy::{MfaPolicy, PolicyConfig};
use rampart_identity::sealed::MasterKey;
use rampart_identity::totp::{self, TotpSecret};
use rampart_store::{Account, SshSession, Store};
use russh::keys::{PrivateKey, PublicKey};
use russh::server::{Auth, Handler, Msg, Session};
use russh::{Channel, ChannelId, MethodKind, MethodSet};
use tokio::sync::watch;

use crate::config::SshConfig;
use crate::keys::{self, CertRequest};
use crate::recording::{Cast, SealedWriter};
use crate::user::{BadUser, Destination};
use crate::{reach, relay, upstream};

/// Initial channel window (bytes): enough for a fast copy over loopback or a LAN.
pub(crate) const WINDOW: u32 = 4 * 1024 * 1024;
/// Largest packet: 32 KiB, as OpenSSH.
pub(crate) const PACKET: u32 = 32 * 1024;
/// Messages queued per channel before the connection stops reading (backpressure).
pub(crate) const CHANNEL_BUFFER: usize = 64;

/// Key exchange, ciphers and MACs that ssh-audit rates without failure or warning.
pub(crate) fn preferred() -> russh::Preferred {
    use russh::{cipher, kex, mac};
    russh::Preferred {
        kex: Cow::Borrowed(&[
            kex::MLKEM768X25519_SHA256,
            kex::CURVE25519,
            kex::CURVE25519_PRE_RFC_8731,
            kex::EXTENSION_SUPPORT_AS_CLIENT,
            kex::EXTENSION_SUPPORT_AS_SERVER,
            kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
            kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
        ]),
        key: Cow::Borrowed(&[russh::keys::Algorithm::Ed25519]),
        cipher: Cow::Borrowed(&[
            cipher::CHACHA20_POLY1305,
            cipher::AES_256_GCM,
            cipher::AES_128_GCM,
        ]),
        mac: Cow::Borrowed(&[mac::HMAC_SHA512_ETM, mac::HMAC_SHA256_ETM]),
        // Compression only after authentication (no zlib parser exposed to strangers).
        compression: Cow::Borrowed(&[russh::compression::NONE, russh::compression::ZLIB_LEGACY]),
        ..Default::default()
    }
}

/// Everything the bastion shares between connections.
pub struct Bastion {
    pub(crate) store: Arc<Store>,
    pub(crate) master: Arc<MasterKey>,
    pub(crate) config: Arc<SshConfig>,
    pub(crate) policy: PolicyConfig,
    pub(crate) ca: PrivateKey,
    pub(crate) node: String,
    pub(crate) recordings: PathBuf,
    pub(crate) public_host: String,
    pub(crate) host_cas: Arc<Vec<PublicKey>>,
    live: Mutex<HashMap<String, LiveEntry>>,
    remembered: Mutex<HashMap<(String, IpAddr), i64>>,
}

/// What the bastion keeps of a live session to end it and to decide again.
struct LiveEntry {
    stop: watch::Sender<Option<&'static str>>,
    person: String,
    target: String,
    login: String,
}

impl std::fmt::Debug for Bastion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bastion").field("node", &self.node).finish()
    }
}

/// The sealing context of a target's static login key.
pub fn static_key_context(target: &str) -> String {
    format!("ssh-static-key:{target}")
}

/// What the bastion needs to start.
#[derive(Debug)]
pub struct BastionParts {
    /// The store.
    pub store: Arc<Store>,
    /// The master key (TOTP secrets, recordings).
    pub master: Arc<MasterKey>,
    /// `[ssh]`.
    pub config: SshConfig,
    /// `[policy]` (MFA, throttling).
    pub policy: PolicyConfig,
    /// The user CA's private key.
    pub ca: PrivateKey,
    /// This node's id (session rows name it, kill requests are read by it).
    pub node: String,
    /// The folder of recordings.
    pub recordings: PathBuf,
    /// The host name people use (in the target list).
    pub public_host: String,
    /// CAs whose host certificates vouch for targets (instead of pinning their keys).
    pub host_cas: Vec<PublicKey>,
}

impl Bastion {
    /// Puts the parts together.
    pub fn new(parts: BastionParts) -> Arc<Self> {
        Arc::new(Self {
            store: parts.store,
            master: parts.master,
            config: Arc::new(parts.config),
            policy: parts.policy,
            ca: parts.ca,
            node: parts.node,
            recordings: parts.recordings,
            public_host: parts.public_host,
            host_cas: Arc::new(parts.host_cas),
            live: Mutex::new(HashMap::new()),
            remembered: Mutex::new(HashMap::new()),
        })
    }

    fn public_port(&self) -> u16 {
        self.config
            .public_port
            .or(self.config.listen.map(|a| a.port()))
            .unwrap_or(22)
    }

    async fn audit(&self, ev: AuditEvent) {
        if let Err(e) = self.store.append_audit(&[ev]).await {
            tracing::error!(error = %e, "could not write an SSH audit record");
        }
    }
}

/// The russh server configuration: the host key, modern algorithms only, bounded waits
/// and buffers.
pub fn server_config(host_key: PrivateKey, config: &SshConfig) -> russh::server::Config {
    russh::server::Config {
        server_id: russh::SshId::Standard(Cow::Borrowed("SSH-2.0-rampart")),
        methods: MethodSet::from(&[MethodKind::PublicKey, MethodKind::KeyboardInteractive][..]),
        auth_rejection_time: Duration::from_millis(300),
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![host_key],
        window_size: WINDOW,
        maximum_packet_size: PACKET,
        channel_buffer_size: CHANNEL_BUFFER,
        event_buffer_size: 16,
        preferred: preferred(),
        max_auth_attempts: 6,
        inactivity_timeout: Some(Duration::from_secs(
            60 * u64::try_from(config.idle_minutes.get()).unwrap_or(15) + 60,
        )),
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 4,
        nodelay: true,
        ..Default::default()
    }
}

/// Accepts connections until the listener fails; each runs in its own task. Also reads the
/// kill requests for this node's sessions once a second.
pub async fn serve(
    bastion: Arc<Bastion>,
    config: Arc<russh::server::Config>,
    listener: tokio::net::TcpListener,
) -> std::io::Result<()> {
    let limit = Arc::new(tokio::sync::Semaphore::new(
        usize::try_from(bastion.config.max_connections.get()).unwrap_or(1000),
    ));
    let killer = tokio::spawn(watch_kills(bastion.clone()));
    let result = loop {
        let (socket, peer) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) if is_transient(&e) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(e) => break Err(e),
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "SSH connection refused: too many connections");
            continue;
        };
        let bastion = bastion.clone();
        let config = config.clone();
        tokio::spawn(async move {
            connection(bastion, config, socket, peer).await;
            drop(permit);
        });
    };
    killer.abort();
    result
}

fn is_transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::Interrupted
            | std::io::ErrorKind::WouldBlock
    ) || e.raw_os_error() == Some(24)
        || e.raw_os_error() == Some(23)
}

/// Every second: the kill requests for this node's sessions. Every five seconds: the
/// access decision again for every live session, so that a removed or expired grant, a
/// disabled account or a removed target ends the session.
async fn watch_kills(bastion: Arc<Bastion>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    for second in 0u64.. {
        tick.tick().await;
        if second % 5 == 4 {
            recheck(&bastion).await;
        }
        let ids = match bastion.store.ssh_kills(&bastion.node).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "could not read SSH kill requests");
                continue;
            }
        };
        if let Ok(live) = bastion.live.lock() {
            for id in ids {
                if let Some(entry) = live.get(&id) {
                    let _ = entry.stop.send(Some("ended by an administrator"));
                }
            }
        }
    }
}

async fn recheck(bastion: &Bastion) {
    let sessions: Vec<(String, String, String, String)> = match bastion.live.lock() {
        Ok(live) if !live.is_empty() => live
            .iter()
            .map(|(id, e)| {
                (
                    id.clone(),
                    e.person.clone(),
                    e.target.clone(),
                    e.login.clone(),
                )
            })
            .collect(),
        _ => return,
    };
    let facts = tokio::try_join!(
        bastion.store.roles(),
        bastion.store.bindings(None),
        bastion.store.targets(),
        bastion.store.accounts()
    );
    let Ok((roles, bindings, targets, accounts)) = facts else {
        tracing::warn!("could not re-check live SSH sessions");
        return;
    };
    let now = Timestamp::now();
    for (id, person, target_name, login) in sessions {
        let verdict = match (
            targets.iter().find(|t| t.name.as_str() == target_name),
            accounts.iter().find(|a| a.username.as_str() == person),
        ) {
            (None, _) => Err("the target was removed"),
            (_, None) => Err("the account was removed"),
            (Some(_), Some(a)) if !a.active => Err("the account was disabled"),
            (Some(target), Some(_)) => {
                let pairs: Vec<_> = bindings
                    .iter()
                    .filter(|b| b.account == person)
                    .filter_map(|b| {
                        roles
                            .iter()
                            .find(|r| r.name == b.role)
                            .map(|r| (b.clone(), r))
                    })
                    .collect();
                let who = Principal {
                    name: person.clone(),
                    active: true,
                    mfa_satisfied: true,
                };
                authorize(
                    &who,
                    &pairs,
                    Request::Target {
                        target,
                        login: &login,
                    },
                    now,
                )
                .map(|_| ())
                .map_err(|_| "the grant was removed or expired")
            }
        };
        if let Err(reason) = verdict
            && let Ok(live) = bastion.live.lock()
            && let Some(entry) = live.get(&id)
        {
            let _ = entry.stop.send(Some(reason));
        }
    }
}

/// State shared by a connection's handler and the task that ends it.
#[derive(Default)]
struct Shared {
    authed: AtomicBool,
    live: Mutex<Option<Arc<Live>>>,
}

async fn connection(
    bastion: Arc<Bastion>,
    config: Arc<russh::server::Config>,
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
) {
    let shared = Arc::new(Shared::default());
    let handler = Conn::new(bastion.clone(), peer, shared.clone());
    let grace =
        Duration::from_secs(u64::try_from(bastion.config.login_grace_seconds.get()).unwrap_or(60));
    let deadline = tokio::time::Instant::now() + grace;
    let running =
        match tokio::time::timeout(grace, russh::server::run_stream(config, socket, handler)).await
        {
            Ok(Ok(running)) => running,
            Ok(Err(e)) => {
                refused(
                    &bastion,
                    peer,
                    &format!("protocol error before key exchange: {e}"),
                )
                .await;
                return;
            }
            Err(_) => {
                refused(
                    &bastion,
                    peer,
                    "no SSH version line within the login grace time",
                )
                .await;
                return;
            }
        };
    let handle = running.handle();
    tokio::pin!(running);
    let mut grace_over = false;
    let outcome = loop {
        tokio::select! {
            r = &mut running => break r,
            _ = tokio::time::sleep_until(deadline), if !grace_over => {
                grace_over = true;
                if !shared.authed.load(Ordering::SeqCst) {
                    refused(&bastion, peer, "login grace time exceeded").await;
                    let _ = handle
                        .disconnect(russh::Disconnect::ByApplication, "login grace time exceeded".into(), "en".into())
                        .await;
                }
            }
        }
    };
    if let Err(e) = &outcome
        && !shared.authed.load(Ordering::SeqCst)
        && !grace_over
    {
        refused(&bastion, peer, &format!("handshake failed: {e}")).await;
    }
    let live = shared.live.lock().ok().and_then(|mut l| l.take());
    if let Some(live) = live {
        live.end(&bastion).await;
    }
}

async fn refused(bastion: &Bastion, peer: SocketAddr, reason: &str) {
    bastion
        .audit(
            AuditEvent::new(Actor::Anonymous, Action::SshLogin, "unknown")
                .outcome(Outcome::Denied)
                .source(Some(peer.ip()))
                .detail("reason", rampart_scrub::scrub_default(reason)),
        )
        .await;
}

/// A live session: the upstream connection, its counters, its recording, and the signal
/// that ends it.
pub(crate) struct Live {
    pub id: String,
    pub person: String,
    pub target: Target,
    pub login: String,
    pub source: Option<IpAddr>,
    pub started: std::time::Instant,
    pub upstream: russh::client::Handle<upstream::Checker>,
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
    pub exit_status: AtomicI64,
    pub last_activity: AtomicI64,
    pub recorder: Mutex<Option<Recorder>>,
    pub recording_started: AtomicBool,
    pub ended_by: Mutex<Option<&'static str>>,
    pub config: Arc<SshConfig>,
    pub master: Arc<MasterKey>,
    pub recordings: PathBuf,
    pub client: Mutex<Option<russh::server::Handle>>,
    pub store: Arc<Store>,
    /// `host:port` destinations the grant allows for `ssh -L`.
    pub forwards: Vec<String>,
}

/// A recording being written.
pub(crate) struct Recorder {
    pub cast: Cast,
    pub writer: SealedWriter,
}

impl Live {
    pub(crate) fn touch(&self) {
        self.last_activity
            .store(Timestamp::now().as_second(), Ordering::Relaxed);
    }

    /// Starts the recording with the terminal size; a recording that cannot be made stops
    /// the channel from starting (no unrecorded interactive session).
    pub(crate) fn start_recording(&self, width: u32, height: u32, term: &str) -> bool {
        let Ok(mut slot) = self.recorder.lock() else {
            return false;
        };
        if slot.is_some() {
            return true;
        }
        let mut writer = match SealedWriter::create(&self.recordings, &self.id) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, "cannot create a recording");
                return false;
            }
        };
        let header = Cast::header(width, height, Timestamp::now().as_second(), term);
        if let Err(e) = writer.write_lines(&self.master, &[header]) {
            tracing::error!(error = %e, "cannot write a recording");
            return false;
        }
        *slot = Some(Recorder {
            cast: Cast::new(),
            writer,
        });
        self.recording_started.store(true, Ordering::SeqCst);
        true
    }

    /// Feeds the recording, if one is running.
    pub(crate) fn record(&self, f: impl FnOnce(&mut Cast, f64) -> Vec<String>) {
        if !self.recording_started.load(Ordering::Relaxed) {
            return;
        }
        let t = self.started.elapsed().as_secs_f64();
        if let Ok(mut slot) = self.recorder.lock()
            && let Some(rec) = slot.as_mut()
        {
            let lines = f(&mut rec.cast, t);
            if !lines.is_empty()
                && let Err(e) = rec.writer.write_lines(&self.master, &lines)
            {
                tracing::error!(error = %e, "recording write failed; the recording stops");
                *slot = None;
            }
        }
    }

    async fn end(&self, bastion: &Bastion) {
        let t = self.started.elapsed().as_secs_f64();
        if let Ok(mut slot) = self.recorder.lock()
            && let Some(mut rec) = slot.take()
        {
            let lines = rec.cast.finish(t);
            let _ = rec.writer.write_lines(&self.master, &lines);
            if let Err(e) = rec.writer.flush() {
                tracing::error!(error = %e, "could not flush a recording");
            }
        }
        let _ = self
            .upstream
            .disconnect(russh::Disconnect::ByApplication, "session ended", "en")
            .await;
        if let Ok(mut live) = bastion.live.lock() {
            live.remove(&self.id);
        }
        let up = self.bytes_up.load(Ordering::Relaxed);
        let down = self.bytes_down.load(Ordering::Relaxed);
        let exit = self.exit_status.load(Ordering::Relaxed);
        let exit = (exit >= 0).then_some(exit);
        let why = self
            .ended_by
            .lock()
            .ok()
            .and_then(|e| *e)
            .unwrap_or("client disconnected");
        let mut ev = AuditEvent::new(
            Actor::User(self.person.clone()),
            Action::SshSessionEnd,
            self.target.name.to_string(),
        )
        .source(self.source)
        .detail("session", self.id.clone())
        .detail("login", self.login.clone())
        .detail("bytes_up", up.to_string())
        .detail("bytes_down", down.to_string())
        .detail("duration_s", format!("{:.3}", t))
        .detail("ended_by", why);
        if let Some(code) = exit {
            ev = ev.detail("exit_status", code.to_string());
        }
        if let Err(e) = bastion
            .store
            .end_ssh_session(
                &self.id,
                i64::try_from(up).unwrap_or(i64::MAX),
                i64::try_from(down).unwrap_or(i64::MAX),
                exit,
                ev,
            )
            .await
        {
            tracing::error!(error = %e, session = %self.id, "could not record the end of an SSH session");
        }
    }
}

/// What an authenticated connection may do.
#[derive(Clone)]
pub(crate) enum Mode {
    /// Show the target list, then close.
    List(String),
    /// Say why not (only "access denied" or an availability message), then close.
    Refuse(&'static str),
    /// Relay to the target.
    Relay(Arc<Live>),
}

/// The authentication states of one connection.
enum AuthState {
    /// Nothing proven yet.
    Start,
    /// The key of `account` is proven; a TOTP code is due.
    KeyOk {
        user: String,
        account: Box<Account>,
        fingerprint: String,
    },
    /// Both factors (or a remembered MFA) are proven.
    Done {
        account: Box<Account>,
        fingerprint: String,
        mfa: bool,
    },
}

/// One client connection.
pub(crate) struct Conn {
    b: Arc<Bastion>,
    peer: SocketAddr,
    shared: Arc<Shared>,
    state: AuthState,
    dest: Option<Destination>,
    bad_user: Option<BadUser>,
    audited_unknown_key: bool,
    mode: Option<Mode>,
    channels: HashMap<ChannelId, Chan>,
}

/// A session channel of this connection.
enum Chan {
    /// Waiting for the request that starts it; answered with a text.
    Explain(Channel<Msg>, String, u32, bool),
    /// Waiting for the shell, command or subsystem.
    Pending(Box<relay::Pending>),
    /// Running: the target channel's write half, for window changes, signals, close.
    Running(russh::ChannelWriteHalf<russh::client::Msg>),
}

impl Conn {
    fn new(b: Arc<Bastion>, peer: SocketAddr, shared: Arc<Shared>) -> Self {
        Self {
            b,
            peer,
            shared,
            state: AuthState::Start,
            dest: None,
            bad_user: None,
            audited_unknown_key: false,
            mode: None,
            channels: HashMap::new(),
        }
    }

    fn ip(&self) -> IpAddr {
        self.peer.ip()
    }

    /// Parses the user name once per distinct name.
    fn parse_user(&mut self, user: &str) {
        match Destination::parse(user) {
            Ok(d) => {
                self.dest = Some(d);
                self.bad_user = None;
            }
            Err(e) => {
                self.dest = None;
                self.bad_user = Some(e);
            }
        }
    }

    fn kbd_only() -> Auth {
        Auth::Reject {
            proceed_with_methods: Some(MethodSet::from(&[MethodKind::KeyboardInteractive][..])),
            partial_success: false,
        }
    }

    async fn denied(&self, subject: &str, reason: &str) {
        self.b
            .audit(
                AuditEvent::new(Actor::Anonymous, Action::SshLogin, subject)
                    .outcome(Outcome::Denied)
                    .source(Some(self.ip()))
                    .detail("reason", reason),
            )
            .await;
    }

    /// Whether the account or this address is locked out (shared with the web login).
    async fn locked(&self, account: &Account) -> bool {
        let now = Timestamp::now().as_second();
        let throttle = self.b.policy.throttle();
        for key in [
            format!("login:{}", account.username.as_str().to_lowercase()),
            format!("addr:{}", self.ip()),
            format!("mfa:{}", account.id),
        ] {
            match self.b.store.throttle(&key).await {
                Ok(s) if throttle.check(&s, now).is_err() => return true,
                Ok(_) => {}
                Err(_) => return true,
            }
        }
        false
    }

    fn mfa_needed(&self, account: &Account) -> bool {
        account.has_mfa() || (self.b.policy.mfa == MfaPolicy::Required && account.kind.needs_mfa())
    }

    fn remembered(&self, fingerprint: &str) -> bool {
        let now = Timestamp::now().as_second();
        self.b
            .remembered
            .lock()
            .ok()
            .and_then(|m| m.get(&(fingerprint.to_owned(), self.ip())).copied())
            .is_some_and(|until| until > now)
    }

    fn remember(&self, fingerprint: &str) {
        let minutes = self.b.config.mfa_remember_minutes.get();
        if minutes == 0 {
            return;
        }
        let now = Timestamp::now().as_second();
        if let Ok(mut m) = self.b.remembered.lock() {
            m.retain(|_, until| *until > now);
            if m.len() < 100_000 {
                m.insert((fingerprint.to_owned(), self.ip()), now + minutes * 60);
            }
        }
    }

    /// Checks a TOTP code and claims its step; a failure counts towards the lockout.
    async fn check_code(&self, account: &Account, code: &str) -> Result<(), &'static str> {
        let now = Timestamp::now().as_second();
        let code = code.trim();
        let secret = account
            .totp_sealed
            .as_deref()
            .and_then(|sealed| {
                self.b
                    .master
                    .open(&format!("totp:{}", account.id), sealed)
                    .ok()
            })
            .and_then(|bytes| {
                std::str::from_utf8(bytes.expose_secret())
                    .ok()
                    .and_then(TotpSecret::from_base32)
            });
        let verdict = match secret {
            None => Err("no usable TOTP secret"),
            Some(_) if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) => {
                Err("wrong code")
            }
            Some(secret) => match secret.verify(code, now, account.totp_last_step) {
                Ok(step) => match self.b.store.advance_totp_step(&account.id, step).await {
                    Ok(true) => Ok(()),
                    Ok(false) => Err("code already used"),
                    Err(_) => Err("store error"),
                },
                Err(totp::TotpError::Replayed) => Err("code already used"),
                Err(_) => Err("wrong code"),
            },
        };
        let key = format!("mfa:{}", account.id);
        match verdict {
            Ok(()) => {
                let _ = self.b.store.clear_throttle(&key).await;
                Ok(())
            }
            Err(reason) => {
                let throttle = self.b.policy.throttle();
                let subject = account.username.to_string();
                let mut events = vec![
                    AuditEvent::new(
                        Actor::User(subject.clone()),
                        Action::LoginMfa,
                        subject.clone(),
                    )
                    .outcome(Outcome::Failure)
                    .source(Some(self.ip()))
                    .detail("method", "totp")
                    .detail("via", "ssh")
                    .detail("reason", reason),
                ];
                if let Ok(state) = self.b.store.throttle(&key).await {
                    let (after, locked) = throttle.on_failure(&state, now);
                    if locked {
                        events.push(
                            AuditEvent::new(Actor::System, Action::LoginLocked, subject)
                                .outcome(Outcome::Denied)
                                .source(Some(self.ip()))
                                .detail("key", "account")
                                .detail("until", after.locked_until.to_string()),
                        );
                    }
                    if let Err(e) = self.b.store.save_throttle(&[(key, after)], &events).await {
                        tracing::error!(error = %e, "could not record a failed SSH MFA check");
                    }
                }
                Err(reason)
            }
        }
    }

    /// After authentication: decide, record the start, connect to the target.
    async fn open(&mut self, account: &Account, fingerprint: &str, mfa: bool) -> Mode {
        let Some(dest) = self.dest.clone() else {
            return Mode::Refuse("access denied");
        };
        let person = account.username.to_string();
        let now = Timestamp::now();
        let (roles, bindings, targets) = match tokio::try_join!(
            self.b.store.roles(),
            self.b.store.bindings(Some(&person)),
            self.b.store.targets()
        ) {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = %e, "cannot read grants");
                return Mode::Refuse("internal error; try again later");
            }
        };
        let pairs: Vec<_> = bindings
            .iter()
            .filter_map(|b| {
                roles
                    .iter()
                    .find(|r| r.name == b.role)
                    .map(|r| (b.clone(), r))
            })
            .collect();
        let who = Principal {
            name: person.clone(),
            active: account.active,
            mfa_satisfied: mfa || !self.mfa_needed(account),
        };
        let Some(target_name) = dest.target else {
            let reach = reach::reachable(&who, &pairs, &targets, now);
            return Mode::List(reach::target_list(
                &person,
                &self.b.public_host,
                self.b.public_port(),
                &reach,
            ));
        };
        let deny = |reason: String| {
            AuditEvent::new(
                Actor::User(person.clone()),
                Action::Authorize,
                target_name.to_string(),
            )
            .outcome(Outcome::Denied)
            .source(Some(self.peer.ip()))
            .detail("via", "ssh")
            .detail("reason", reason)
        };
        let Some(target) = targets
            .iter()
            .find(|t| t.name == target_name && t.kind == TargetKind::Ssh)
            .cloned()
        else {
            self.b.audit(deny("unknown target".into())).await;
            return Mode::Refuse("access denied");
        };
        let login = match &dest.login {
            Some(l) => l.to_string(),
            None => {
                // One login granted on this target (live or expired): use it, so that the
                // decision below names the real reason. Several: the live one, if one.
                let mut granted: Vec<String> = pairs
                    .iter()
                    .flat_map(|(_, role)| role.grants.iter())
                    .filter(|g| g.admits(&target, &g.login))
                    .map(|g| g.login.clone())
                    .collect();
                granted.sort();
                granted.dedup();
                if granted.len() > 1 {
                    granted = reach::reachable(&who, &pairs, std::slice::from_ref(&target), now)
                        .into_iter()
                        .flat_map(|r| r.logins)
                        .collect();
                }
                match granted.as_slice() {
                    [one] => one.clone(),
                    [] => {
                        self.b
                            .audit(deny("no grant for any login on this target".into()))
                            .await;
                        return Mode::Refuse("access denied");
                    }
                    _ => {
                        self.b
                            .audit(deny("several logins granted and none named".into()))
                            .await;
                        return Mode::Refuse(
                            "access denied: name the login, as PERSON:LOGIN@TARGET",
                        );
                    }
                }
            }
        };
        let permit = match authorize(
            &who,
            &pairs,
            Request::Target {
                target: &target,
                login: &login,
            },
            now,
        ) {
            Ok(p) => p,
            Err(denial) => {
                self.b
                    .audit(deny(denial.to_string()).detail("login", login))
                    .await;
                return Mode::Refuse("access denied");
            }
        };
        let id = uuid::Uuid::now_v7().to_string();
        let row = SshSession {
            id: id.clone(),
            account: person.clone(),
            target: target.name.to_string(),
            environment: target.environment.to_string(),
            login: login.clone(),
            source: self.ip().to_string(),
            node: self.b.node.clone(),
            started_us: now.as_microsecond(),
            ended_us: None,
            bytes_up: 0,
            bytes_down: 0,
            exit_status: None,
            recorded: true,
            kill_us: None,
        };
        let start = AuditEvent::new(
            Actor::User(person.clone()),
            Action::SshSessionStart,
            target.name.to_string(),
        )
        .source(Some(self.ip()))
        .detail("session", id.clone())
        .detail("login", login.clone())
        .detail("environment", target.environment.to_string())
        .detail("role", permit.role().to_string())
        .detail("key", fingerprint.to_owned())
        .detail(
            "until",
            permit
                .until()
                .map(|t| t.to_string())
                .unwrap_or_else(|| "-".into()),
        );
        if let Err(e) = self.b.store.start_ssh_session(&row, start).await {
            tracing::error!(error = %e, "cannot record an SSH session start; refusing it");
            return Mode::Refuse("internal error; try again later");
        }
        let _ = self.b.store.touch_ssh_key(fingerprint).await;
        let pinned = match self.b.store.pinned_host_key(target.name.as_str()).await {
            Ok(p) => p,
            Err(_) => {
                return self
                    .fail_start(&id, &person, &target, &login, "store error")
                    .await;
            }
        };
        // Forwarding destinations: those named by the grants of the permit's role that
        // admit this target and login.
        let forwards: Vec<String> = pairs
            .iter()
            .filter(|(_, role)| role.name == *permit.role())
            .flat_map(|(_, role)| role.grants.iter())
            .filter(|g| g.admits(&target, &login))
            .flat_map(|g| g.forward.iter().cloned())
            .collect();
        let req = CertRequest {
            login: &login,
            person: &person,
            session: &id,
            now: u64::try_from(now.as_second()).unwrap_or(0),
            valid_secs: 60 * u64::try_from(self.b.config.certificate_minutes.get()).unwrap_or(5),
            forwarding: !forwards.is_empty(),
        };
        let timeout = Duration::from_secs(
            u64::try_from(self.b.config.connect_timeout_seconds.get()).unwrap_or(10),
        );
        let fallback = match self.b.store.ssh_static_key(target.name.as_str()).await {
            Ok(Some(sealed)) => self
                .b
                .master
                .open(&static_key_context(target.name.as_str()), &sealed)
                .ok()
                .and_then(|b| String::from_utf8(b.expose_secret().clone()).ok())
                .and_then(|text| keys::private_from_text(&text).ok()),
            _ => None,
        };
        let connected = match upstream::connect(
            &target.address,
            self.b.host_cas.clone(),
            pinned,
            &self.b.ca,
            &req,
            fallback,
            timeout,
        )
        .await
        {
            Ok(c) => c,
            Err(e) => {
                if let upstream::UpstreamError::HostKeyMismatch {
                    expected,
                    presented,
                } = &e
                {
                    self.b
                        .audit(
                            AuditEvent::new(
                                Actor::System,
                                Action::SshHostKey,
                                target.name.to_string(),
                            )
                            .outcome(Outcome::Denied)
                            .detail("expected", expected.clone())
                            .detail("presented", presented.clone())
                            .detail("session", id.clone()),
                        )
                        .await;
                }
                let text = e.client_text();
                self.fail_start(&id, &person, &target, &login, &e.to_string())
                    .await;
                return Mode::Refuse(text);
            }
        };
        if connected.static_key {
            self.b
                .audit(
                    AuditEvent::new(Actor::System, Action::SshLogin, target.name.to_string())
                        .detail("session", id.clone())
                        .detail(
                            "credential",
                            "static key (the target refused the certificate)",
                        ),
                )
                .await;
        }
        if let Some((fp, line)) = connected.pin_new {
            let ev = AuditEvent::new(Actor::System, Action::SshHostKey, target.name.to_string())
                .detail("pinned", fp.clone())
                .detail("session", id.clone());
            if let Err(e) = self
                .b
                .store
                .pin_host_key(target.name.as_str(), &fp, &line, ev)
                .await
            {
                tracing::error!(error = %e, "cannot pin a host key");
            }
        }
        let (stop, stop_rx) = watch::channel(None);
        if let Ok(mut live) = self.b.live.lock() {
            live.insert(
                id.clone(),
                LiveEntry {
                    stop,
                    person: person.clone(),
                    target: target.name.to_string(),
                    login: login.clone(),
                },
            );
        }
        let live = Arc::new(Live {
            id,
            person,
            target,
            login,
            source: Some(self.ip()),
            started: std::time::Instant::now(),
            upstream: connected.handle,
            bytes_up: AtomicU64::new(0),
            bytes_down: AtomicU64::new(0),
            exit_status: AtomicI64::new(-1),
            last_activity: AtomicI64::new(now.as_second()),
            recorder: Mutex::new(None),
            recording_started: AtomicBool::new(false),
            forwards,
            ended_by: Mutex::new(None),
            config: self.b.config.clone(),
            master: self.b.master.clone(),
            recordings: self.b.recordings.clone(),
            client: Mutex::new(None),
            store: self.b.store.clone(),
        });
        if let Ok(mut slot) = self.shared.live.lock() {
            *slot = Some(live.clone());
        }
        let max = Duration::from_secs(
            3600 * u64::try_from(self.b.config.max_session_hours.get()).unwrap_or(12),
        );
        let until = permit.until();
        Mode::Relay(live).with_watch(stop_rx, until, max)
    }

    async fn fail_start(
        &self,
        id: &str,
        person: &str,
        target: &Target,
        login: &str,
        why: &str,
    ) -> Mode {
        let ev = AuditEvent::new(
            Actor::User(person.to_owned()),
            Action::SshSessionEnd,
            target.name.to_string(),
        )
        .outcome(Outcome::Failure)
        .source(Some(self.ip()))
        .detail("session", id.to_owned())
        .detail("login", login.to_owned())
        .detail("reason", rampart_scrub::scrub_default(why));
        if let Err(e) = self.b.store.end_ssh_session(id, 0, 0, None, ev).await {
            tracing::error!(error = %e, "cannot record a failed SSH session");
        }
        Mode::Refuse("the target is unreachable")
    }
}

impl Mode {
    /// For a relay: a task that ends the session when asked, at the grant's expiry, after
    /// the idle time, or at the maximum length.
    fn with_watch(
        self,
        mut stop: watch::Receiver<Option<&'static str>>,
        until: Option<Timestamp>,
        max: Duration,
    ) -> Self {
        if let Mode::Relay(live) = &self {
            let live = live.clone();
            tokio::spawn(async move {
                let idle = 60 * live.config.idle_minutes.get();
                let started = tokio::time::Instant::now();
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                let reason = loop {
                    tokio::select! {
                        changed = stop.changed() => {
                            match changed {
                                Ok(()) => if let Some(r) = *stop.borrow() { break r },
                                Err(_) => return,
                            }
                        }
                        _ = tick.tick() => {
                            let now = Timestamp::now();
                            if until.is_some_and(|u| u <= now) {
                                break "the grant expired";
                            }
                            if now.as_second() - live.last_activity.load(Ordering::Relaxed) > idle {
                                break "idle timeout";
                            }
                            if started.elapsed() >= max {
                                break "maximum session length reached";
                            }
                        }
                    }
                };
                if let Ok(mut e) = live.ended_by.lock() {
                    *e = Some(reason);
                }
                if let Some(client) = relay::client_handle(&live) {
                    let _ = client
                        .disconnect(
                            russh::Disconnect::ByApplication,
                            format!("rampart: session ended: {reason}"),
                            "en".into(),
                        )
                        .await;
                }
            });
        }
        self
    }
}

impl Handler for Conn {
    type Error = russh::Error;

    async fn auth_none(&mut self, user: &str) -> Result<Auth, Self::Error> {
        self.parse_user(user);
        if self.bad_user.is_some() {
            return Ok(Self::kbd_only());
        }
        Ok(Auth::Reject {
            proceed_with_methods: Some(MethodSet::from(&[MethodKind::PublicKey][..])),
            partial_success: false,
        })
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: russh::server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        self.parse_user(user);
        if self.bad_user.is_some() {
            return Ok(Self::kbd_only());
        }
        match self.key_owner(offer.public_key).await {
            Some(_) => Ok(Auth::Accept),
            None => Ok(Auth::reject()),
        }
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        self.parse_user(user);
        let Some(dest) = self.dest.clone() else {
            return Ok(Self::kbd_only());
        };
        let Some((account, fingerprint)) = self.key_owner(key.public_key).await else {
            return Ok(Auth::reject());
        };
        let subject = account.username.to_string();
        if !account.active {
            self.denied(&subject, "account disabled").await;
            return Ok(Auth::reject());
        }
        if self.locked(&account).await {
            self.denied(&subject, "locked").await;
            return Ok(Auth::reject());
        }
        if !self.mfa_needed(&account) || self.remembered(&fingerprint) {
            let mfa = self.remembered(&fingerprint);
            self.state = AuthState::Done {
                account: Box::new(account),
                fingerprint,
                mfa,
            };
            return Ok(Auth::Accept);
        }
        if !account.has_mfa() {
            self.denied(&subject, "MFA required and not enrolled").await;
            return Ok(Auth::reject());
        }
        let _ = dest;
        self.state = AuthState::KeyOk {
            user: user.to_owned(),
            account: Box::new(account),
            fingerprint,
        };
        Ok(Auth::Reject {
            proceed_with_methods: Some(MethodSet::from(&[MethodKind::KeyboardInteractive][..])),
            partial_success: true,
        })
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        response: Option<russh::server::Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        if let Some(bad) = self.bad_user {
            if response.is_none() {
                self.denied("unknown", &bad.to_string()).await;
                return Ok(Auth::Partial {
                    name: Cow::Borrowed("rampart"),
                    instructions: Cow::Owned(format!("rampart: {bad}.\n")),
                    prompts: Cow::Borrowed(&[]),
                });
            }
            return Ok(Auth::reject());
        }
        let AuthState::KeyOk {
            user: key_user,
            account,
            fingerprint,
        } = &self.state
        else {
            return Ok(Auth::reject());
        };
        if key_user != user {
            return Ok(Auth::reject());
        }
        let Some(mut response) = response else {
            return Ok(Auth::Partial {
                name: Cow::Borrowed("rampart"),
                instructions: Cow::Borrowed(""),
                prompts: Cow::Borrowed(&[(Cow::Borrowed("Verification code: "), false)]),
            });
        };
        let account = account.clone();
        let fingerprint = fingerprint.clone();
        if self.locked(&account).await {
            self.denied(account.username.as_str(), "locked").await;
            return Ok(Auth::reject());
        }
        let code = response
            .next()
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .chars()
                    .take(64)
                    .collect::<String>()
            })
            .unwrap_or_default();
        match self.check_code(&account, &code).await {
            Ok(()) => {
                self.remember(&fingerprint);
                self.state = AuthState::Done {
                    account,
                    fingerprint,
                    mfa: true,
                };
                Ok(Auth::Accept)
            }
            Err(_) => Ok(Auth::Reject {
                proceed_with_methods: Some(MethodSet::from(&[MethodKind::KeyboardInteractive][..])),
                partial_success: false,
            }),
        }
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        let AuthState::Done {
            account,
            fingerprint,
            mfa,
        } = &self.state
        else {
            return Err(russh::Error::NotAuthenticated);
        };
        let (account, fingerprint, mfa) = (account.clone(), fingerprint.clone(), *mfa);
        self.shared.authed.store(true, Ordering::SeqCst);
        self.b
            .audit(
                AuditEvent::new(
                    Actor::User(account.username.to_string()),
                    Action::SshLogin,
                    account.username.to_string(),
                )
                .source(Some(self.ip()))
                .detail("key", fingerprint.clone())
                .detail("mfa", if mfa { "totp" } else { "none" }),
            )
            .await;
        let mode = self.open(&account, &fingerprint, mfa).await;
        if let Mode::Relay(live) = &mode {
            relay::set_client_handle(live, session.handle());
        }
        self.mode = Some(mode);
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.channels.len() >= 16 {
            reply
                .reject(russh::ChannelOpenFailure::ResourceShortage)
                .await;
            return Ok(());
        }
        let id = channel.id();
        let chan = match self.mode.clone() {
            None => {
                reply
                    .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                    .await;
                return Ok(());
            }
            Some(Mode::List(text)) => Chan::Explain(channel, text, 0, false),
            Some(Mode::Refuse(text)) => {
                Chan::Explain(channel, format!("rampart: {text}\r\n"), 1, true)
            }
            Some(Mode::Relay(live)) => match live.upstream.channel_open_session().await {
                Ok(up) => Chan::Pending(Box::new(relay::Pending {
                    client: channel,
                    up,
                    early: Vec::new(),
                    pty: None,
                })),
                Err(e) => {
                    tracing::warn!(error = %e, "the target refused a session channel");
                    reply.reject(russh::ChannelOpenFailure::ConnectFailed).await;
                    return Ok(());
                }
            },
        };
        reply.accept().await;
        self.channels.insert(id, chan);
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        col_width: u32,
        row_height: u32,
        pix_width: u32,
        pix_height: u32,
        modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let ok = match self.channels.get_mut(&channel) {
            Some(Chan::Explain(..)) => true,
            Some(Chan::Pending(p)) => {
                let term = term.chars().take(64).collect::<String>();
                p.pty = Some((term.clone(), col_width, row_height));
                let sent =
                    p.up.request_pty(
                        true, &term, col_width, row_height, pix_width, pix_height, modes,
                    )
                    .await
                    .is_ok();
                sent && relay::wait_reply(p).await
            }
            _ => false,
        };
        reply(session, channel, ok)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        variable_name: &str,
        variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let allowed = self.b.config.env_allowed(variable_name) && variable_value.len() <= 4096;
        let ok = match self.channels.get_mut(&channel) {
            Some(Chan::Pending(p)) if allowed => {
                let (n, v) = (variable_name.to_owned(), variable_value.to_owned());
                let sent = p.up.set_env(true, n, v).await.is_ok();
                sent && relay::wait_reply(p).await
            }
            _ => false,
        };
        reply(session, channel, ok)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start(channel, Start::Shell, session).await
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start(channel, Start::Exec(data.to_vec()), session)
            .await
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start(
            channel,
            Start::Subsystem(name.chars().take(64).collect()),
            session,
        )
        .await
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        col_width: u32,
        row_height: u32,
        pix_width: u32,
        pix_height: u32,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(Chan::Running(up)) = self.channels.get(&channel) {
            let _ = up
                .window_change(col_width, row_height, pix_width, pix_height)
                .await;
            if let Some(Mode::Relay(live)) = &self.mode {
                live.record(|cast, t| cast.resize(t, col_width, row_height));
            }
        }
        Ok(())
    }

    async fn signal(
        &mut self,
        channel: ChannelId,
        signal: russh::Sig,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(Chan::Running(up)) = self.channels.get(&channel) {
            let _ = up.signal(signal).await;
        }
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(Chan::Running(up)) = self.channels.remove(&channel) {
            let _ = up.close().await;
        }
        Ok(())
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.forward_denied("x11", "-", 0).await;
        reply(session, channel, false)
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        originator_address: &str,
        originator_port: u32,
        reply: russh::server::ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(Mode::Relay(live)) = self.mode.clone() else {
            self.forward_denied("local", host_to_connect, port_to_connect)
                .await;
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        let host = host_to_connect
            .chars()
            .take(255)
            .collect::<String>()
            .to_ascii_lowercase();
        let dest = format!("{host}:{port_to_connect}");
        let named = live.forwards.iter().any(|f| f.eq_ignore_ascii_case(&dest));
        // Never into another environment: a registered target of another environment at
        // that address is refused even when a grant names it.
        let elsewhere = match self.b.store.targets().await {
            Ok(targets) => targets.iter().any(|t| {
                t.address.eq_ignore_ascii_case(&dest) && t.environment != live.target.environment
            }),
            Err(_) => true,
        };
        if !named || elsewhere {
            self.forward_denied("local", &host, port_to_connect).await;
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        let up = match live
            .upstream
            .channel_open_direct_tcpip(
                host.clone(),
                port_to_connect,
                originator_address.chars().take(64).collect::<String>(),
                originator_port,
            )
            .await
        {
            Ok(up) => up,
            Err(e) => {
                tracing::info!(error = %e, "the target could not open a forwarding");
                reply.reject(russh::ChannelOpenFailure::ConnectFailed).await;
                return Ok(());
            }
        };
        self.b
            .audit(
                AuditEvent::new(
                    Actor::User(live.person.clone()),
                    Action::SshForward,
                    "local",
                )
                .source(Some(self.ip()))
                .detail("session", live.id.clone())
                .detail("destination", dest),
            )
            .await;
        reply.accept().await;
        let pending = relay::Pending {
            client: channel,
            up,
            early: Vec::new(),
            pty: None,
        };
        let id = pending.client.id();
        let up_w = relay::run(live, pending, session.handle(), None, false);
        self.channels.insert(id, Chan::Running(up_w));
        Ok(())
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        self.forward_denied("remote", address, *port).await;
        Ok(false)
    }

    async fn agent_request(
        &mut self,
        _channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        self.forward_denied("agent", "-", 0).await;
        Ok(false)
    }
}

fn reply(session: &mut Session, channel: ChannelId, ok: bool) -> Result<(), russh::Error> {
    if ok {
        session.channel_success(channel)
    } else {
        session.channel_failure(channel)
    }
}

/// What starts a session channel.
enum Start {
    Shell,
    Exec(Vec<u8>),
    Subsystem(String),
}

impl Conn {
    /// Starts a shell, command or subsystem: audited first (no record, no start), recorded
    /// when interactive, then asked of the target; the pumps run once it agrees.
    async fn start(
        &mut self,
        channel: ChannelId,
        what: Start,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        let Some(chan) = self.channels.remove(&channel) else {
            return reply(session, channel, false);
        };
        let mut pending = match chan {
            Chan::Explain(client, text, code, stderr) => {
                reply(session, channel, true)?;
                tokio::spawn(relay::explain(client, text, code, stderr));
                return Ok(());
            }
            Chan::Running(up) => {
                self.channels.insert(channel, Chan::Running(up));
                return reply(session, channel, false);
            }
            Chan::Pending(p) => p,
        };
        let Some(Mode::Relay(live)) = self.mode.clone() else {
            return reply(session, channel, false);
        };
        let (kind, detail) = match &what {
            Start::Shell => ("shell", String::new()),
            Start::Exec(cmd) => (
                "exec",
                rampart_scrub::scrub_default(
                    &String::from_utf8_lossy(cmd)
                        .chars()
                        .take(1024)
                        .collect::<String>(),
                ),
            ),
            Start::Subsystem(name) => ("subsystem", name.clone()),
        };
        if let Start::Subsystem(name) = &what
            && name != "sftp"
        {
            return reply(session, channel, false);
        }
        let mut ev = AuditEvent::new(
            Actor::User(live.person.clone()),
            Action::SshExec,
            live.target.name.to_string(),
        )
        .source(live.source)
        .detail("session", live.id.clone())
        .detail("kind", kind)
        .detail("pty", if pending.pty.is_some() { "yes" } else { "no" });
        if !detail.is_empty() {
            ev = ev.detail("command", detail);
        }
        if let Err(e) = self.b.store.append_audit(&[ev]).await {
            tracing::error!(error = %e, "cannot audit an SSH command; refusing it");
            return reply(session, channel, false);
        }
        let interactive = matches!(what, Start::Shell) || pending.pty.is_some();
        if interactive {
            let (term, w, h) = pending
                .pty
                .clone()
                .unwrap_or_else(|| ("unknown".into(), 80, 24));
            if !live.start_recording(w, h, &term) {
                return reply(session, channel, false);
            }
        }
        let sftp = matches!(&what, Start::Subsystem(_))
            .then(|| Arc::new(Mutex::new(crate::sftp::Watcher::default())));
        let sent = match what {
            Start::Shell => pending.up.request_shell(true).await,
            Start::Exec(cmd) => pending.up.exec(true, cmd).await,
            Start::Subsystem(name) => pending.up.request_subsystem(true, name).await,
        };
        let ok = sent.is_ok() && relay::wait_reply(&mut pending).await;
        if !ok {
            return reply(session, channel, false);
        }
        reply(session, channel, true)?;
        let up_w = relay::run(live.clone(), *pending, session.handle(), sftp, true);
        self.channels.insert(channel, Chan::Running(up_w));
        Ok(())
    }

    /// The account a key is registered to, when that account is the one the user name names.
    async fn key_owner(&mut self, key: &PublicKey) -> Option<(Account, String)> {
        let dest = self.dest.as_ref()?;
        let fingerprint = keys::fingerprint(key);
        let row = self.b.store.ssh_key(&fingerprint).await.ok().flatten();
        let Some(row) = row else {
            if !self.audited_unknown_key {
                self.audited_unknown_key = true;
                self.denied("unknown", "key not registered").await;
            }
            return None;
        };
        if !row.username.eq_ignore_ascii_case(&dest.person) {
            self.denied(&row.username, "key registered to another account")
                .await;
            return None;
        }
        let account = self
            .b
            .store
            .account_by_id(&row.account_id)
            .await
            .ok()
            .flatten()?;
        Some((account, fingerprint))
    }

    async fn forward_denied(&self, kind: &str, host: &str, port: u32) {
        let person = match &self.state {
            AuthState::Done { account, .. } => account.username.to_string(),
            _ => "unknown".into(),
        };
        self.b
            .audit(
                AuditEvent::new(Actor::User(person), Action::SshForward, kind)
                    .outcome(Outcome::Denied)
                    .source(Some(self.ip()))
                    .detail(
                        "destination",
                        format!("{}:{port}", host.chars().take(255).collect::<String>()),
                    )
                    .detail("reason", "not granted"),
            )
            .await;
    }
}
