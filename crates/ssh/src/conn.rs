//! One client connection: authentication in states (public key, then TOTP by
//! keyboard-interactive), and its channels.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use rampart_audit::{Action, Actor, AuditEvent, Outcome};
use rampart_identity::policy::MfaPolicy;
use rampart_identity::totp::{self, TotpSecret};
use rampart_store::Account;
use russh::keys::PublicKey;
use russh::server::{Auth, Handler, Msg, Session};
use russh::{Channel, ChannelId, MethodKind, MethodSet};

use crate::keys::{self};
use crate::relay;
use crate::server::{Bastion, Shared};
use crate::session::Mode;
use crate::user::{BadUser, Destination};

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
    pub(crate) b: Arc<Bastion>,
    pub(crate) peer: SocketAddr,
    pub(crate) shared: Arc<Shared>,
    state: AuthState,
    pub(crate) dest: Option<Destination>,
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
    pub(crate) fn new(b: Arc<Bastion>, peer: SocketAddr, shared: Arc<Shared>) -> Self {
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

    pub(crate) fn ip(&self) -> IpAddr {
        self.peer.ip()
    }

    /// Parses the user name (each attempt may name another).
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

    pub(crate) fn mfa_needed(&self, account: &Account) -> bool {
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
        if self.dest.is_none() {
            return Ok(Self::kbd_only());
        }
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
