//! A session after authentication: the decision, the start record, the connection to
//! the target, the recording, the watch that ends it, and the end record.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use rampart_access::{Principal, Request, Target, TargetKind, authorize};
use rampart_audit::{Action, Actor, AuditEvent, Outcome};
use rampart_identity::sealed::MasterKey;
use rampart_store::{Account, SshSession, Store};
use tokio::sync::watch;

use crate::config::SshConfig;
use crate::conn::Conn;
use crate::keys::{self, CertRequest};
use crate::recording::{Cast, SealedWriter};
use crate::server::{Bastion, LiveEntry, static_key_context};
use crate::{reach, relay, upstream};

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

    pub(crate) async fn end(&self, bastion: &Bastion) {
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

impl Mode {
    /// For a relay: a task that ends the session when asked, at the grant's expiry, after
    /// the idle time, or at the maximum length.
    pub(crate) fn with_watch(
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

impl Conn {
    /// After authentication: decide, record the start, connect to the target.
    pub(crate) async fn open(&mut self, account: &Account, fingerprint: &str, mfa: bool) -> Mode {
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

    pub(crate) async fn fail_start(
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
