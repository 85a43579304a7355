//! Apps behind the front door (issue #10): which requests go to the proxy, who may pass,
//! the session handoff to an app's own host, the JWKS, and the `/apps` page.
//!
//! A request whose Host is an app's host, or whose path is under an app's prefix, goes to
//! [`serve`] before the admin router. It passes with a complete (MFA done) rampart session
//! or an app bearer token (`Authorization: Bearer rat_…`, held by a service account), and
//! only if `rampart_access::authorize` grants the app's `http` target. Decisions are cached
//! for [`DECISION_TTL`] per credential and app: a revoked session, disabled account or
//! removed grant stops passing within that time.
//!
//! Session cookies on an app's own host: the login cookie is host-only (`__Host-`), so an
//! app host gets its own session through a one-time handoff. The app host sends the browser
//! to `/apps/handoff` on the main host; there, with a complete session and a grant, rampart
//! sends the browser back with a one-time code (60 s; its SHA-256 in the store, so any node
//! takes it, once) that `/.rampart/handoff` on the app host exchanges for a new session of
//! the same person (audited `session.start`, `via = handoff`) in a host-only cookie. That
//! session is the child of the main-host one: signing out there signs out here too. No
//! cookie is ever scoped to a parent domain, so a tool on a sibling host cannot read
//! rampart's cookie.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rampart_access::{Binding, Permission, Principal, Role, authorize};
use rampart_audit::{Action, Actor, AuditEvent, Outcome};
use rampart_identity::session::Stage;
use rampart_identity::{random_token, token_digest, token_hash};
use rampart_proxy::assertion::Signer;
use rampart_proxy::audit::AuditQueue;
use rampart_proxy::engine::{self, Tracker};
use rampart_proxy::{App, Mount, Upstream};
use rampart_store::{SessionRow, Store};
use serde::Deserialize;

use crate::AppState;
use crate::auth::{Viewer, internal};
use crate::pages::render;

/// How long an access decision is reused for one credential and app.
pub const DECISION_TTL: Duration = Duration::from_secs(5);
/// How long a handoff code is valid.
const HANDOFF_TTL_US: i64 = 60_000_000;
/// The path on an app host that exchanges a handoff code for a cookie.
pub const HANDOFF_PATH: &str = "/.rampart/handoff";
/// Most cached decisions.
const CACHE_MAX: usize = 50_000;
/// App bearer tokens start with this.
pub const TOKEN_PREFIX: &str = "rat_";

/// Who a credential belongs to, as a request forwarded for it needs it.
#[derive(Debug)]
struct Known {
    username: String,
    email: String,
    /// `t:` or `s:` and the credential's SHA-256 in hex: the assertion cache's key, and
    /// what an open tunnel is decided again by.
    key: String,
    username_header: Option<HeaderValue>,
    email_header: Option<HeaderValue>,
}

impl Known {
    fn new(username: String, email: String, key: String) -> Arc<Self> {
        Arc::new(Self {
            username_header: HeaderValue::from_str(&username).ok(),
            email_header: HeaderValue::from_str(&email).ok(),
            username,
            email,
            key,
        })
    }
}

#[derive(Debug, Clone)]
struct Decision {
    known: Arc<Known>,
    until: Instant,
}

/// A credential (the SHA-256 of a bearer token or of a session cookie) and an app.
type DecisionKey = (Credential, [u8; 32], usize);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Credential {
    Token,
    Session,
}

/// The configured apps and what serving them needs.
#[derive(Debug)]
pub struct Apps {
    /// One per app, in configuration order.
    pub upstreams: Vec<Upstream>,
    /// Signs identity assertions.
    pub signer: Signer,
    /// The batched request audit.
    pub audit: AuditQueue,
    decisions: Mutex<HashMap<DecisionKey, Decision>>,
}

impl Apps {
    /// Builds the clients, opens (or makes) the signing key and starts the audit writer.
    pub async fn start(
        apps: Vec<App>,
        store: Arc<Store>,
        master: &rampart_identity::sealed::MasterKey,
        origin: &str,
        audit_wait: Duration,
    ) -> Result<(Self, tokio::task::JoinHandle<()>), String> {
        let upstreams = apps
            .into_iter()
            .map(|app| Upstream::new(app, crate::front::threads()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let signer = Signer::load_or_create(&store, master, origin)
            .await
            .map_err(|e| e.to_string())?;
        let (audit, task) = AuditQueue::spawn(store, audit_wait);
        Ok((
            Self {
                upstreams,
                signer,
                audit,
                decisions: Mutex::new(HashMap::new()),
            },
            task,
        ))
    }

    fn cached(&self, key: &DecisionKey) -> Option<Arc<Known>> {
        let now = Instant::now();
        self.decisions
            .lock()
            .ok()?
            .get(key)
            .filter(|d| d.until > now)
            .map(|d| d.known.clone())
    }

    fn remember(&self, key: DecisionKey, known: Arc<Known>) {
        if let Ok(mut d) = self.decisions.lock() {
            if d.len() >= CACHE_MAX {
                let now = Instant::now();
                d.retain(|_, v| v.until > now);
                if d.len() >= CACHE_MAX {
                    d.clear();
                }
            }
            d.insert(
                key,
                Decision {
                    known,
                    until: Instant::now() + DECISION_TTL,
                },
            );
        }
    }

    fn by_name(&self, name: &str) -> Option<(usize, &Upstream)> {
        self.upstreams
            .iter()
            .enumerate()
            .find(|(_, u)| u.app.name.as_str() == name)
    }
}

/// Registers every app as an `http` target (audited when it is new or changed).
pub async fn register_targets(
    store: &Store,
    apps: &[App],
) -> Result<(), rampart_store::StoreError> {
    let existing = store.targets().await?;
    for app in apps {
        let target = app.target();
        if existing.contains(&target) {
            continue;
        }
        let ev = AuditEvent::new(Actor::System, Action::TargetAdd, target.name.to_string())
            .detail("kind", "http")
            .detail("via", "config");
        store.put_target(&target, ev).await?;
    }
    Ok(())
}

type BoxResponse = std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send>>;

/// The host a request was made to: `:authority` (HTTP/2) or `Host`, lower case, no port.
/// `Err` when a Host is present but not a host name.
fn request_host(request: &Request) -> Result<Option<String>, ()> {
    let raw = match request.uri().authority() {
        Some(a) => a.as_str().to_owned(),
        None => match request.headers().get(header::HOST) {
            Some(h) => h.to_str().map_err(|_| ())?.to_owned(),
            None => return Ok(None),
        },
    };
    let host = if let Some(rest) = raw.strip_prefix('[') {
        let end = rest.find(']').ok_or(())?;
        let (ip, after) = rest.split_at(end);
        if ip.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(());
        }
        check_port(after.get(1..).unwrap_or(""))?;
        return Ok(Some(format!("[{ip}]")));
    } else {
        match raw.rsplit_once(':') {
            Some((h, port)) => {
                check_port(&format!(":{port}"))?;
                h
            }
            None => raw.as_str(),
        }
    };
    if !rampart_proxy::config::valid_host_name(host) {
        return Err(());
    }
    Ok(Some(host.to_ascii_lowercase()))
}

fn check_port(after: &str) -> Result<(), ()> {
    match after.strip_prefix(':') {
        None if after.is_empty() => Ok(()),
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        _ => Err(()),
    }
}

/// Where an app request goes (see [`route`]).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Route {
    /// The Host header is not a host name.
    BadHost,
    /// App number `index`; the first `cut` bytes of the path are its prefix.
    App { index: usize, cut: usize },
}

/// Whether a request is for an app (or has a Host no app request may have).
pub(crate) fn route(state: &AppState, request: &Request) -> Option<Route> {
    let apps = state.apps.as_ref()?;
    let Ok(host) = request_host(request) else {
        return Some(Route::BadHost);
    };
    let path = request.uri().path();
    let on_app_host = |h: &String| host.as_deref() == Some(h.as_str());
    if let Some(index) = apps
        .upstreams
        .iter()
        .position(|u| matches!(&u.app.mount, Mount::Host(h) if on_app_host(h)))
    {
        return Some(Route::App { index, cut: 0 });
    }
    apps.upstreams
        .iter()
        .enumerate()
        .find_map(|(index, u)| match &u.app.mount {
            Mount::Prefix(p)
                if path.starts_with(p.as_str())
                    && matches!(path.as_bytes().get(p.len()), None | Some(b'/')) =>
            {
                Some(Route::App {
                    index,
                    cut: p.len(),
                })
            }
            _ => None,
        })
}

/// Serves a request [`route`] sent to an app.
pub(crate) fn serve_route(state: &AppState, route: Route, request: Request) -> BoxResponse {
    match route {
        Route::BadHost => Box::pin(std::future::ready(page(
            StatusCode::BAD_REQUEST,
            "The Host header is not valid.",
        ))),
        Route::App { index, cut } => Box::pin(serve(state.clone(), index, cut, request)),
    }
}

/// The host the client asked for, as the upstream's `X-Forwarded-Host`: the request's
/// authority (HTTP/2, or an absolute URI), else its `Host` header (shared with the request,
/// not copied), else the public host.
fn forwarded_host(request: &Request, public_host: &str) -> Option<HeaderValue> {
    match request.uri().authority() {
        Some(authority) => HeaderValue::from_str(authority.as_str()).ok(),
        None => request
            .headers()
            .get(header::HOST)
            .filter(|h| h.to_str().is_ok())
            .cloned()
            .or_else(|| HeaderValue::from_str(public_host).ok()),
    }
}

fn page(status: StatusCode, text: &str) -> Response {
    engine::page(status, text).map(Body::new)
}

async fn serve(state: AppState, index: usize, cut: usize, request: Request) -> Response {
    let started = Instant::now();
    let Some(apps) = state.apps.clone() else {
        return page(StatusCode::NOT_FOUND, "No such application.");
    };
    let Some(upstream) = apps.upstreams.get(index) else {
        return page(StatusCode::NOT_FOUND, "No such application.");
    };
    let app = &upstream.app;
    let path = request.uri().path();
    if matches!(app.mount, Mount::Host(_)) && path == HANDOFF_PATH {
        let source = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(a)| a.ip());
        return redeem(
            &state,
            &app.name.to_string(),
            request.uri().query().unwrap_or(""),
            source,
        )
        .await;
    }
    let rest_path = match path.get(cut..) {
        Some("") | None => "/",
        Some(r) => r,
    };
    if !engine::safe_path(rest_path) {
        return page(StatusCode::BAD_REQUEST, "The request's path is not valid.");
    }
    let rest = match request.uri().query() {
        Some(q) => format!("{rest_path}?{q}"),
        None => rest_path.to_owned(),
    };
    let original = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let source = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip());
    let ident = match authenticate(
        &state,
        &apps,
        index,
        request.headers(),
        request.method(),
        &original,
        source,
    )
    .await
    {
        Ok(i) => i,
        Err(response) => return response,
    };
    let Ok(slot) = apps.audit.slot().await else {
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Requests to applications are paused because the audit log is not taking records. Try again shortly.",
        );
    };
    let now = jiff::Timestamp::now().as_second();
    let known = &ident.known;
    let assertion = apps.signer.assertion(
        &known.key,
        app.name.as_str(),
        &known.username,
        &known.email,
        now,
    );
    let method = request.method().clone();
    let public_host = forwarded_host(&request, &state.web.public_host);
    let (who, via, named) = (known.clone(), ident.via, apps.clone());
    let tracker = Tracker::new(Box::new(move |finished| {
        let app_name = named.upstreams.get(index).map(|u| u.app.name.as_str());
        slot.send(rampart_proxy::request_record(
            app_name.unwrap_or_default(),
            &who.username,
            source,
            method.as_str(),
            &original,
            via,
            finished,
            started.elapsed().as_millis(),
        ));
    }));
    let forward = rampart_proxy::Forward {
        username: known.username_header.clone(),
        email: known.email_header.clone(),
        assertion,
        client_ip: source,
        public_host,
        strip_authorization: ident.via == "token",
    };
    let ended = engine::wants_upgrade(&request).then(|| {
        let ended: engine::Ended = Box::pin(watch_access(
            state.clone(),
            index,
            known.key.clone(),
            known.username.clone(),
            source,
        ));
        ended
    });
    engine::forward(upstream, request, &rest, &forward, tracker, ended)
        .await
        .map(Body::new)
}

/// How often an open tunnel's access is decided again.
const RECHECK: Duration = Duration::from_secs(5);

/// Completes when the credential behind an open tunnel stops granting the app: session
/// revoked or expired, token revoked, account disabled, grant removed or expired (checked
/// every [`RECHECK`]; a store error counts as an end: fail closed). Audited once.
async fn watch_access(
    state: AppState,
    index: usize,
    key: String,
    username: String,
    source: Option<std::net::IpAddr>,
) {
    let Some(app) = state
        .apps
        .as_ref()
        .and_then(|a| a.upstreams.get(index))
        .map(|u| u.app.clone())
    else {
        return;
    };
    loop {
        tokio::time::sleep(RECHECK).await;
        match still_allowed(&state, &app, &key, &username).await {
            Ok(Ok(())) => continue,
            Ok(Err(reason)) => {
                let _ = deny(
                    &state,
                    &username,
                    &app,
                    source,
                    &format!("connection cut: {reason}"),
                )
                .await;
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot decide an open app connection again; it is cut");
                return;
            }
        }
    }
}

async fn still_allowed(
    state: &AppState,
    app: &App,
    key: &str,
    username: &str,
) -> Result<Result<(), String>, rampart_store::StoreError> {
    let now = jiff::Timestamp::now();
    let active = if let Some(hash) = key.strip_prefix("t:") {
        match state
            .store
            .app_token_holder(app.name.as_str(), hash)
            .await?
        {
            Some(_) => true,
            None => return Ok(Err("the app token was revoked".into())),
        }
    } else {
        let hash = key.strip_prefix("s:").unwrap_or(key);
        let Some(session) = state.store.session(hash).await? else {
            return Ok(Err("the session ended".into()));
        };
        if session.revoked
            || !state.policy.sessions().is_live(
                session.stage,
                session.created_s,
                session.last_seen_s,
                now.as_second(),
            )
        {
            return Ok(Err("the session ended".into()));
        }
        match state.store.account_by_id(&session.account_id).await? {
            Some(a) => a.active,
            None => false,
        }
    };
    let pairs = crate::ops::bindings_with_roles(&state.store, username).await?;
    let refs: Vec<(Binding, &Role)> = pairs.iter().map(|(b, r)| (b.clone(), r)).collect();
    let who = Principal {
        name: username.to_owned(),
        active,
        mfa_satisfied: true,
    };
    let target = app.target();
    Ok(authorize(
        &who,
        &refs,
        rampart_access::Request::Target {
            target: &target,
            login: "*",
        },
        now,
    )
    .map(|_| ())
    .map_err(|d| d.to_string()))
}

struct Ident {
    known: Arc<Known>,
    via: &'static str,
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let token = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))?;
    token.trim().starts_with(TOKEN_PREFIX).then(|| token.trim())
}

async fn authenticate(
    state: &AppState,
    apps: &Apps,
    index: usize,
    headers: &HeaderMap,
    method: &axum::http::Method,
    original: &str,
    source: Option<std::net::IpAddr>,
) -> Result<Ident, Response> {
    let Some(upstream) = apps.upstreams.get(index) else {
        return Err(page(StatusCode::NOT_FOUND, "No such application."));
    };
    let app = &upstream.app;
    if let Some(token) = bearer(headers) {
        let digest = token_digest(token);
        let key = (Credential::Token, digest, index);
        if let Some(known) = apps.cached(&key) {
            return Ok(Ident {
                known,
                via: "token",
            });
        }
        let hash = rampart_core::hex(&digest);
        let holder = state
            .store
            .app_token_holder(app.name.as_str(), &hash)
            .await
            .map_err(internal)?;
        let Some((username, email)) = holder else {
            deny(
                state,
                "unknown",
                app,
                source,
                "unknown or revoked app token",
            )
            .await?;
            return Err(unauthorized());
        };
        decide(state, app, &username, true, true, source).await?;
        let known = Known::new(username, email, format!("t:{hash}"));
        apps.remember(key, known.clone());
        return Ok(Ident {
            known,
            via: "token",
        });
    }
    let to_login = || login_redirect(state, app, original, method);
    let Some(cookie) = crate::auth::cookie(headers) else {
        return Err(to_login());
    };
    let digest = token_digest(&cookie);
    let key = (Credential::Session, digest, index);
    if let Some(known) = apps.cached(&key) {
        return Ok(Ident {
            known,
            via: "session",
        });
    }
    let Some((account, session)) = crate::auth::session_for(state, headers).await? else {
        return Err(to_login());
    };
    if session.stage != Stage::Complete {
        return Err(to_login());
    }
    let username = account.username.to_string();
    let email = account.email.as_str().to_owned();
    decide(state, app, &username, account.active, true, source).await?;
    let known = Known::new(username, email, format!("s:{}", rampart_core::hex(&digest)));
    apps.remember(key, known.clone());
    Ok(Ident {
        known,
        via: "session",
    })
}

/// `authorize` for the app's target; a denial is audited and answered with 403.
async fn decide(
    state: &AppState,
    app: &App,
    username: &str,
    active: bool,
    mfa_satisfied: bool,
    source: Option<std::net::IpAddr>,
) -> Result<(), Response> {
    let pairs = crate::ops::bindings_with_roles(&state.store, username)
        .await
        .map_err(internal)?;
    let refs: Vec<(Binding, &Role)> = pairs.iter().map(|(b, r)| (b.clone(), r)).collect();
    let who = Principal {
        name: username.to_owned(),
        active,
        mfa_satisfied,
    };
    let target = app.target();
    match authorize(
        &who,
        &refs,
        rampart_access::Request::Target {
            target: &target,
            login: "*",
        },
        jiff::Timestamp::now(),
    ) {
        Ok(_) => Ok(()),
        Err(denial) => {
            deny(state, username, app, source, &denial.to_string()).await?;
            Err(page(
                StatusCode::FORBIDDEN,
                "You have no grant for this application. Ask for access on rampart's Access requests page.",
            ))
        }
    }
}

async fn deny(
    state: &AppState,
    username: &str,
    app: &App,
    source: Option<std::net::IpAddr>,
    reason: &str,
) -> Result<(), Response> {
    state
        .metrics
        .denials
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let actor = if username == "unknown" {
        Actor::Anonymous
    } else {
        Actor::User(username.to_owned())
    };
    let ev = AuditEvent::new(actor, Action::Authorize, app.name.to_string())
        .outcome(Outcome::Denied)
        .source(source)
        .detail("via", "app")
        .detail("reason", reason);
    state.store.append_audit(&[ev]).await.map_err(internal)?;
    Ok(())
}

fn unauthorized() -> Response {
    let mut r = page(StatusCode::UNAUTHORIZED, "A valid token is needed.");
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

fn login_redirect(
    state: &AppState,
    app: &App,
    original: &str,
    method: &axum::http::Method,
) -> Response {
    if !matches!(*method, axum::http::Method::GET | axum::http::Method::HEAD) {
        return page(
            StatusCode::UNAUTHORIZED,
            "Log in to rampart first (or use an app token).",
        );
    }
    let location = match &app.mount {
        Mount::Prefix(_) => format!(
            "{}/login?{}",
            state.public_origin(),
            query(&[("next", original)])
        ),
        Mount::Host(_) => format!(
            "{}/apps/handoff?{}",
            state.public_origin(),
            query(&[("app", app.name.as_str()), ("next", original)])
        ),
    };
    see_other(&location)
}

fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => (StatusCode::SEE_OTHER, [(header::LOCATION, v)]).into_response(),
        Err(_) => page(StatusCode::BAD_REQUEST, "The request's path is not valid."),
    }
}

fn query(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// A local path the browser may be sent back to after login: under an app's prefix, or the
/// handoff to a configured app host. Anything else (another site, `//host`) is refused.
pub(crate) fn acceptable_next(state: &AppState, next: &str) -> bool {
    let Some(apps) = state.apps.as_ref() else {
        return false;
    };
    if next.len() > 2048 || !next.starts_with('/') || next.starts_with("//") {
        return false;
    }
    let path = next.split_once('?').map_or(next, |(p, _)| p);
    if !engine::safe_path(path) {
        return false;
    }
    if path == "/apps/handoff" {
        return true;
    }
    apps.upstreams.iter().any(|u| match &u.app.mount {
        Mount::Prefix(p) => {
            path.starts_with(p.as_str())
                && matches!(path.as_bytes().get(p.len()), None | Some(b'/'))
        }
        Mount::Host(_) => false,
    })
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/apps/handoff", get(handoff))
        .route("/apps", get(apps_page))
}

async fn jwks(State(state): State<AppState>) -> Response {
    match state.apps.as_ref() {
        Some(apps) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "public, max-age=300"),
            ],
            apps.signer.jwks().to_owned(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[derive(Deserialize)]
struct HandoffQuery {
    app: String,
    next: String,
}

/// On the main host: with a complete session and a grant, records a handoff and sends the
/// browser to the app host with its one-time code.
async fn handoff(State(state): State<AppState>, parts: axum::http::request::Parts) -> Response {
    let Some(apps) = state.apps.clone() else {
        return page(StatusCode::NOT_FOUND, "No such application.");
    };
    let Ok(q) = serde_urlencoded::from_str::<HandoffQuery>(parts.uri.query().unwrap_or("")) else {
        return page(StatusCode::BAD_REQUEST, "The link is incomplete.");
    };
    let headers = &parts.headers;
    let Some((_, upstream)) = apps.by_name(&q.app) else {
        return page(StatusCode::NOT_FOUND, "No such application.");
    };
    let Mount::Host(host) = &upstream.app.mount else {
        return page(StatusCode::NOT_FOUND, "No such application.");
    };
    let next_path = q.next.split_once('?').map_or(q.next.as_str(), |(p, _)| p);
    if q.next.len() > 2048 || q.next.starts_with("//") || !engine::safe_path(next_path) {
        return page(StatusCode::BAD_REQUEST, "The link is not valid.");
    }
    let source = crate::auth::client_ip(&parts);
    let here = format!(
        "/apps/handoff?{}",
        query(&[("app", &q.app), ("next", &q.next)])
    );
    let session = match crate::auth::session_for(&state, headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some((account, session)) = session.filter(|(_, s)| s.stage == Stage::Complete) else {
        return see_other(&format!("/login?{}", query(&[("next", &here)])));
    };
    let username = account.username.to_string();
    if let Err(r) = decide(
        &state,
        &upstream.app,
        &username,
        account.active,
        true,
        source,
    )
    .await
    {
        return r;
    }
    let Ok(code) = random_token() else {
        return internal("random generator failed");
    };
    // The app host's session is opened when the code comes back (on any node): it is the
    // child of this one.
    let handoff = rampart_store::AppHandoff {
        app: upstream.app.name.to_string(),
        account_id: account.id.clone(),
        parent_hash: session.id_hash.clone(),
        source: source.map(|ip| ip.to_string()).unwrap_or_default(),
    };
    let expires_us = jiff::Timestamp::now().as_microsecond() + HANDOFF_TTL_US;
    if let Err(e) = state
        .store
        .put_app_handoff(&token_hash(&code), &handoff, expires_us)
        .await
    {
        return internal(e);
    }
    let port = state
        .web
        .public_https_port
        .unwrap_or(state.web.https_listen.port());
    let authority = if port == 443 {
        host.clone()
    } else {
        format!("{host}:{port}")
    };
    see_other(&format!(
        "https://{authority}{HANDOFF_PATH}?{}",
        query(&[("code", &code), ("next", &q.next)])
    ))
}

#[derive(Deserialize)]
struct RedeemQuery {
    code: String,
    next: String,
}

/// On an app host: exchanges a one-time code for a host-only session cookie. The session,
/// a child of the main-host one the code was made from, is opened and audited
/// (`session.start`, `via = handoff`) only now; the code works once, on any node.
async fn redeem(
    state: &AppState,
    app: &str,
    raw_query: &str,
    source: Option<std::net::IpAddr>,
) -> Response {
    let Ok(q) = serde_urlencoded::from_str::<RedeemQuery>(raw_query) else {
        return page(StatusCode::BAD_REQUEST, "The link is incomplete.");
    };
    let next_path = q.next.split_once('?').map_or(q.next.as_str(), |(p, _)| p);
    if q.next.len() > 2048 || q.next.starts_with("//") || !engine::safe_path(next_path) {
        return page(StatusCode::BAD_REQUEST, "The link is not valid.");
    }
    let Ok(token) = random_token() else {
        return internal("random generator failed");
    };
    let now = jiff::Timestamp::now();
    let row = SessionRow {
        id_hash: token_hash(&token),
        account_id: String::new(),
        stage: Stage::Complete,
        created_s: now.as_second(),
        last_seen_s: now.as_second(),
        source: source.map(|ip| ip.to_string()).unwrap_or_default(),
        revoked: false,
    };
    // The person is known once the code is taken, in the same transaction.
    let record = |username: &str, handoff: &rampart_store::AppHandoff| {
        vec![
            AuditEvent::new(
                Actor::User(username.to_owned()),
                Action::SessionStart,
                username,
            )
            .source(source)
            .detail("via", "handoff")
            .detail("app", app.to_owned())
            .detail(
                "from_session",
                handoff.parent_hash.get(..12).unwrap_or_default(),
            ),
        ]
    };
    match state
        .store
        .redeem_app_handoff(
            &token_hash(&q.code),
            app,
            &row,
            now.as_microsecond(),
            record,
        )
        .await
    {
        Ok(rampart_store::Redeemed::Opened) => {}
        Ok(_) => return used_or_expired(),
        Err(e) => return internal(e),
    }
    let cookie = format!(
        "{}={}; Path=/; Secure; HttpOnly; SameSite=Lax",
        crate::auth::COOKIE,
        token
    );
    let mut r = see_other(&q.next);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

fn used_or_expired() -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "This sign-in link was used already or has expired. Open the application again.",
    )
}

#[derive(Template)]
#[template(path = "apps.html")]
struct AppsPage {
    nav: Option<String>,
    flash: Option<String>,
    apps: Vec<AppRow>,
    people: Vec<PersonRow>,
    chart_svg: String,
}

struct AppRow {
    name: String,
    mount: String,
    upstream: String,
    environment: String,
    day: i64,
    month: i64,
}

struct PersonRow {
    app: String,
    person: String,
    day: i64,
    month: i64,
}

async fn apps_page(State(state): State<AppState>, viewer: Viewer) -> Response {
    if let Err(r) = crate::admin::require(&state, &viewer, Permission::ViewReport).await {
        return r;
    }
    let now = jiff::Timestamp::now().as_microsecond();
    let day_us = 86_400 * 1_000_000;
    let action = Action::AppRequest.as_str();
    let (day, month) = match (
        state.store.app_request_counts(action, now - day_us).await,
        state
            .store
            .app_request_counts(action, now - 30 * day_us)
            .await,
    ) {
        (Ok(d), Ok(m)) => (d, m),
        (Err(e), _) | (_, Err(e)) => return internal(e),
    };
    let sum = |rows: &[rampart_store::AppRequestCount], app: &str| -> i64 {
        rows.iter()
            .filter(|r| r.app == app)
            .map(|r| r.requests)
            .sum()
    };
    let apps: Vec<AppRow> = state
        .apps
        .as_ref()
        .map(|a| {
            a.upstreams
                .iter()
                .map(|u| AppRow {
                    name: u.app.name.to_string(),
                    mount: match &u.app.mount {
                        Mount::Host(h) => format!("https://{h}/"),
                        Mount::Prefix(p) => format!("{p}/ on the main host"),
                    },
                    upstream: u.app.upstream.clone(),
                    environment: u.app.environment.to_string(),
                    day: sum(&day, u.app.name.as_str()),
                    month: sum(&month, u.app.name.as_str()),
                })
                .collect()
        })
        .unwrap_or_default();
    let people = month
        .iter()
        .map(|m| PersonRow {
            app: m.app.clone(),
            person: m.actor.strip_prefix("user:").unwrap_or(&m.actor).to_owned(),
            day: day
                .iter()
                .find(|d| d.app == m.app && d.actor == m.actor)
                .map_or(0, |d| d.requests),
            month: m.requests,
        })
        .collect();
    let chart_svg = bar_chart(
        &apps
            .iter()
            .map(|a| (a.name.as_str(), a.month))
            .collect::<Vec<_>>(),
    );
    render(
        StatusCode::OK,
        &AppsPage {
            nav: Some(viewer.account.username.to_string()),
            flash: None,
            apps,
            people,
            chart_svg,
        },
    )
}

/// A horizontal bar per app (requests in the last 30 days), server-rendered SVG.
fn bar_chart(bars: &[(&str, i64)]) -> String {
    if bars.is_empty() {
        return String::new();
    }
    let max = bars.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let (row, label_w, bar_w) = (24, 160, 400);
    let height = row * bars.len() + 8;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" role=\"img\" aria-label=\"Requests per app, last 30 days\">",
        label_w + bar_w + 80
    );
    for (i, (name, n)) in bars.iter().enumerate() {
        let y = i * row + 4;
        let w = usize::try_from(*n * bar_w as i64 / max).unwrap_or(0);
        svg.push_str(&format!(
            "<text x=\"0\" y=\"{}\" font-size=\"13\">{}</text><rect x=\"{label_w}\" y=\"{y}\" width=\"{w}\" height=\"16\" fill=\"#4a6fa5\"/><text x=\"{}\" y=\"{}\" font-size=\"12\">{n}</text>",
            y + 13,
            escape(name),
            label_w + w + 6,
            y + 13
        ));
    }
    svg.push_str("</svg>");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Whether an address is only reachable from inside: loopback, private (RFC 1918, ULA),
/// link-local or CGNAT.
fn internal_address(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || (a == 100 && (64..128).contains(&b))
        }
        std::net::IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// What the report says about apps: ACC-1 (every request to an app is tied to a named
/// account: who used each one in the last 30 days) and ACC-4 (each app's upstream is on
/// an internal address, so it is reached only through rampart's front door).
pub(crate) async fn evidence(
    store: &Store,
    findings: &mut Vec<rampart_report::Finding>,
) -> Result<(), rampart_store::StoreError> {
    use rampart_core::ControlId;
    use rampart_report::{Finding, Status};
    let apps: Vec<rampart_access::Target> = store
        .targets()
        .await?
        .into_iter()
        .filter(|t| t.kind == rampart_access::TargetKind::Http)
        .collect();
    if apps.is_empty() {
        return Ok(());
    }
    let since = jiff::Timestamp::now().as_microsecond() - 30 * 86_400 * 1_000_000;
    let counts = store
        .app_request_counts(Action::AppRequest.as_str(), since)
        .await?;
    let mut acc1 = Vec::new();
    let mut acc4 = Vec::new();
    let mut internal_only = true;
    for app in &apps {
        let users: Vec<String> = counts
            .iter()
            .filter(|c| c.app == app.name.as_str())
            .map(|c| {
                format!(
                    "{} ({})",
                    c.actor.strip_prefix("user:").unwrap_or(&c.actor),
                    c.requests
                )
            })
            .collect();
        let total: i64 = counts
            .iter()
            .filter(|c| c.app == app.name.as_str())
            .map(|c| c.requests)
            .sum();
        acc1.push(if users.is_empty() {
            format!("app {}: no requests in the last 30 days", app.name)
        } else {
            format!(
                "app {}: {total} requests in the last 30 days, each by a named account (a session with MFA or a service account's token): {}",
                app.name,
                users.join(", ")
            )
        });
        let uri: Option<axum::http::Uri> = app.address.parse().ok();
        let host = uri
            .as_ref()
            .and_then(|u| u.host())
            .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned());
        let port = uri.as_ref().and_then(|u| u.port_u16()).unwrap_or(
            if app.address.starts_with("https") {
                443
            } else {
                80
            },
        );
        let Some(host) = host else {
            internal_only = false;
            acc4.push(format!(
                "app {}: the upstream {:?} has no host",
                app.name, app.address
            ));
            continue;
        };
        let addrs: Vec<std::net::IpAddr> = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => tokio::time::timeout(
                Duration::from_secs(2),
                tokio::net::lookup_host((host.as_str(), port)),
            )
            .await
            .ok()
            .and_then(Result::ok)
            .map(|a| a.map(|s| s.ip()).collect())
            .unwrap_or_default(),
        };
        if addrs.is_empty() {
            internal_only = false;
            acc4.push(format!(
                "app {}: the upstream host {host} could not be resolved, so it is not shown to be internal",
                app.name
            ));
        } else if addrs.iter().all(|ip| internal_address(*ip)) {
            acc4.push(format!(
                "app {}: upstream {host} is on an internal address ({}); people reach it only through rampart's front door",
                app.name,
                addrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            ));
        } else {
            internal_only = false;
            acc4.push(format!(
                "app {}: upstream {host} has a public address ({}): it may be reachable without rampart",
                app.name,
                addrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    if let Some(f) = findings.iter_mut().find(|f| f.control == ControlId::Acc1) {
        f.evidence.extend(acc1);
    }
    match findings.iter_mut().find(|f| f.control == ControlId::Acc4) {
        Some(f) => {
            f.evidence.extend(acc4);
            if !internal_only {
                f.status = Status::Fail;
                f.summary = format!("{} Some internal tools behind rampart have upstreams that are not shown to be internal.", f.summary);
            }
        }
        None => findings.push(Finding::new(
            ControlId::Acc4,
            internal_only,
            if internal_only {
                "Every internal tool behind rampart has an internal upstream address and is reached only through the front door."
            } else {
                "Some internal tools behind rampart have upstreams that are not shown to be internal."
            },
            acc4,
        )),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn req(host: &str) -> Request {
        axum::http::Request::builder()
            .uri("/x")
            .header(header::HOST, host)
            .body(Body::empty())
            .unwrap()
    }

    #[test]
    fn hosts_are_parsed_or_refused() {
        assert_eq!(
            request_host(&req("App.Test:8443")).unwrap().as_deref(),
            Some("app.test")
        );
        assert_eq!(
            request_host(&req("app.test")).unwrap().as_deref(),
            Some("app.test")
        );
        assert_eq!(
            request_host(&req("[::1]:8443")).unwrap().as_deref(),
            Some("[::1]")
        );
        for bad in [
            "app.test:x",
            "a b",
            "app.test/evil",
            "user@app.test",
            "app.test:",
            "[zz]:1",
            "..",
        ] {
            assert!(request_host(&req(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_chart_has_one_bar_per_app() {
        let svg = bar_chart(&[("grafana", 10), ("<x>", 5)]);
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("&lt;x&gt;"));
    }

    #[test]
    fn internal_addresses_are_told_apart_from_public_ones() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
        ] {
            assert!(internal_address(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "100.128.0.1", "2001:db8::1", "172.32.0.1"] {
            assert!(!internal_address(ip.parse().unwrap()), "{ip}");
        }
    }
}
