//! The HTTPS front door of rampart (ENC-1, ENC-2): the HTTP listener that only redirects,
//! the HTTPS listener with security headers on every response, login with password and
//! TOTP or a WebAuthn key, enrollment, and the server-rendered admin UI.
//!
//! Invariants: the HTTP listener never serves content and never echoes the client's Host;
//! every HTTPS response carries HSTS; every state-changing request passes the CSRF check;
//! every admin page checks its permission with `rampart_access::authorize`; every login
//! step, session and admin change is audited in the same transaction as the change.

mod access;
pub mod access_hooks;
pub mod acme;
mod admin;
pub mod anomalies;
pub mod apps;
mod auth;
pub mod backups;
mod databases;
mod early;
pub mod evidence;
pub mod front;
mod guard;
pub mod linger;
pub mod logs;
pub mod network;
pub mod ops;
mod pages;
pub mod probe;
pub mod redirect;
pub mod reviews;
mod sensitive;
pub mod ssh;
pub mod tls;
pub mod webauthn;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use rampart_identity::password::Cost;
use rampart_identity::policy::PolicyConfig;
use rampart_identity::sealed::MasterKey;
use rampart_store::Store;
use serde::Deserialize;

pub use admin::parse_target;
pub use guard::HSTS;

/// The `[web]` section of `rampart.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// The host name people use; redirects and links point here, never at a client's Host.
    pub public_host: String,
    /// The HTTPS port people use, when it differs from the listener's (behind a port map).
    pub public_https_port: Option<u16>,
    /// Address of the HTTPS listener.
    pub https_listen: SocketAddr,
    /// Address of the HTTP listener, which only redirects.
    pub http_listen: SocketAddr,
    /// Address of the Prometheus `/metrics` listener (loopback by default).
    pub metrics_listen: SocketAddr,
    /// Largest request body accepted, in KiB (larger: 413).
    pub max_body_kib: u32,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            public_host: "localhost".into(),
            public_https_port: None,
            https_listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
            http_listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            max_body_kib: 64,
        }
    }
}

impl WebConfig {
    /// `https://host[:port]` as people reach it.
    pub fn public_origin(&self) -> String {
        let port = self.public_https_port.unwrap_or(self.https_listen.port());
        if port == 443 {
            format!("https://{}", self.public_host)
        } else {
            format!("https://{}:{port}", self.public_host)
        }
    }
}

/// Counters exported at `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// HTTPS requests served.
    pub requests: AtomicU64,
    /// Complete logins.
    pub logins: AtomicU64,
    /// Failed credential checks.
    pub login_failures: AtomicU64,
    /// Requests refused for lack of permission.
    pub denials: AtomicU64,
}

/// Everything a handler needs. One `Arc`: the state is cloned for every request (the
/// router's `State`, the front door's layer), so a clone is one atomic increment.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Whole>);

/// The parts, with what is computed from them once.
#[derive(Debug)]
struct Whole {
    inner: Inner,
    origin: Box<str>,
    relying_party: Option<Arc<::webauthn_rs::Webauthn>>,
    chain: Arc<evidence::ChainCheck>,
}

/// The parts of [`AppState`].
#[derive(Debug)]
pub struct Inner {
    /// The database.
    pub store: Arc<Store>,
    /// Key for secrets at rest.
    pub master: Arc<MasterKey>,
    /// Front door settings.
    pub web: WebConfig,
    /// Authentication policy.
    pub policy: PolicyConfig,
    /// Argon2id cost.
    pub cost: Cost,
    /// A hash to check unknown users against, so they cost the same time.
    pub decoy_hash: String,
    /// Limits concurrent Argon2 computations (memory and CPU).
    pub hashing: tokio::sync::Semaphore,
    /// Counters.
    pub metrics: Metrics,
    /// The served certificate's DER, so the probe can pin it (replaced on reload).
    pub leaf_der: std::sync::RwLock<Vec<u8>>,
    /// Pending ACME HTTP-01 answers, served on the HTTP listener.
    pub challenges: acme::Challenges,
    /// The latest network check.
    pub network: network::SharedNetwork,
    /// Application logs, when enabled.
    pub logs: logs::SharedLogs,
    /// Database backups: configuration and paths.
    pub backup: backups::BackupSite,
    /// Recordings and key parsing of the SSH bastion (provided by the binary).
    pub ssh: Option<ssh::SshHooks>,
    /// The PostgreSQL gateway's listener, when it is on (for the connection strings shown).
    pub db_gateway: Option<std::net::SocketAddr>,
    /// Apps behind the front door (`[[apps]]`), when any are configured.
    pub apps: Option<Arc<apps::Apps>>,
    /// The signed webhook of `[logs.alerts]`, for access request notices, when one is set.
    pub access_webhook: Option<Arc<logs::alerts::Webhook>>,
    /// Set when the server starts stopping: long-lived answers (live log tails) end then,
    /// so that draining does not wait for them.
    pub stopping: tokio::sync::watch::Sender<bool>,
}

impl AppState {
    /// Wraps the parts.
    pub fn new(inner: Inner) -> Self {
        let origin: Box<str> = Box::from(inner.web.public_origin());
        let relying_party = webauthn::relying_party(&inner.web.public_host, &origin);
        let chain = Arc::new(evidence::ChainCheck::new(inner.store.clone()));
        Self(Arc::new(Whole {
            inner,
            origin,
            relying_party,
            chain,
        }))
    }

    /// `https://host[:port]`, computed once: every redirect uses it.
    pub fn public_origin(&self) -> &str {
        &self.0.origin
    }

    /// The last verification of the audit chain, shared by the pages that show it.
    pub(crate) fn chain(&self) -> &Arc<evidence::ChainCheck> {
        &self.0.chain
    }

    /// The WebAuthn relying party (`web.public_host`, the public origin); `None` when the
    /// host is not a domain name WebAuthn accepts.
    pub(crate) fn webauthn(&self) -> Option<Arc<::webauthn_rs::Webauthn>> {
        self.0.relying_party.clone()
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0.inner
    }
}

/// The HTTPS application: the front door ([`guard::FrontDoor`]: security headers, CSRF,
/// apps) around the router of rampart's own pages.
pub type HttpsApp = guard::FrontDoor<Router>;

/// The HTTPS application.
pub fn https_router(state: AppState) -> HttpsApp {
    let limit = usize::try_from(state.web.max_body_kib).unwrap_or(64) * 1024;
    // Log pushes carry batches: their own, larger limit (`logs.max_body_kib`).
    let ingest_limit = state.logs.as_ref().map_or(limit, |l| {
        usize::try_from(l.config().max_body_kib.get()).unwrap_or(64) * 1024
    });
    let router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/static/app.css", get(pages::stylesheet))
        .merge(auth::routes())
        .merge(webauthn::routes())
        .merge(admin::routes())
        .merge(access::routes())
        .merge(reviews::routes())
        .merge(anomalies::routes())
        .merge(databases::routes())
        .merge(logs::page_routes())
        .merge(backups::routes())
        .merge(ssh::routes())
        .merge(apps::routes())
        .layer(DefaultBodyLimit::max(limit))
        // Answers 413 before any handler runs when Content-Length is too large.
        .layer(tower_http::limit::RequestBodyLimitLayer::new(limit))
        .merge(
            logs::ingest_routes()
                .layer(DefaultBodyLimit::max(ingest_limit))
                .layer(tower_http::limit::RequestBodyLimitLayer::new(ingest_limit)),
        )
        .with_state(state.clone());
    tower::Layer::layer(&guard::FrontDoorLayer(state), router)
}

/// What the HTTP listener answers with (see [`redirect`]).
pub fn http_redirect(state: &AppState) -> redirect::Redirect {
    redirect::Redirect {
        origin: std::sync::Arc::from(state.public_origin()),
        challenges: state.challenges.clone(),
    }
}

/// The metrics application.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state)
}

/// How long a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

async fn metrics(axum::extract::State(state): axum::extract::State<AppState>) -> String {
    let m = &state.metrics;
    let line = |name: &str, help: &str, v: &AtomicU64| {
        format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
            v.load(Ordering::Relaxed)
        )
    };
    [
        line(
            "rampart_https_requests_total",
            "HTTPS requests served.",
            &m.requests,
        ),
        line("rampart_logins_total", "Complete logins.", &m.logins),
        line(
            "rampart_login_failures_total",
            "Failed credential checks.",
            &m.login_failures,
        ),
        line(
            "rampart_denials_total",
            "Requests refused for lack of permission.",
            &m.denials,
        ),
    ]
    .concat()
}

/// Text that came from outside (a CA's error, a parser's message quoting a file) passes the
/// scrubber before it is stored in the audit log (LOG-2).
pub fn scrubbed(text: &str) -> String {
    rampart_scrub::scrub_default(text)
}

#[cfg(test)]
mod tests {
    #[test]
    fn outside_text_is_scrubbed_before_it_is_audited() {
        let text = super::scrubbed("urn:acme:error: contact mailto:alice@example.com rejected");
        assert!(!text.contains("alice@example.com"), "{text}");
        assert!(text.contains("[EMAIL]"), "{text}");
    }
}
