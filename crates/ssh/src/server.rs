//! The listener: accepting connections within limits, the login grace time, kill
//! requests and the re-check of live sessions.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use rampart_access::{Principal, Request, authorize};
use rampart_audit::{Action, Actor, AuditEvent, Outcome};
use rampart_identity::policy::PolicyConfig;
use rampart_identity::sealed::MasterKey;
use rampart_store::Store;
use russh::keys::{PrivateKey, PublicKey};
use russh::{MethodKind, MethodSet};
use tokio::sync::watch;

use crate::config::SshConfig;
use crate::conn::Conn;
use crate::session::Live;

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
    pub(crate) live: Mutex<HashMap<String, LiveEntry>>,
    pub(crate) remembered: Mutex<HashMap<(String, IpAddr), i64>>,
}

/// What the bastion keeps of a live session to end it and to decide again.
pub(crate) struct LiveEntry {
    pub(crate) stop: watch::Sender<Option<&'static str>>,
    pub(crate) person: String,
    pub(crate) target: String,
    pub(crate) login: String,
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

    pub(crate) fn public_port(&self) -> u16 {
        self.config
            .public_port
            .or(self.config.listen.map(|a| a.port()))
            .unwrap_or(22)
    }

    pub(crate) async fn audit(&self, ev: AuditEvent) {
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
pub(crate) struct Shared {
    pub(crate) authed: AtomicBool,
    pub(crate) live: Mutex<Option<Arc<Live>>>,
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
