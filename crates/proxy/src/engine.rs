//! The reverse proxy: HTTP/1.1 connections to each app kept per front-door thread (`conns`;
//! rustls for https upstreams), header hygiene (hop-by-hop, identity and forwarding headers,
//! rampart's cookies), streaming bodies with limits counted while they pass, WebSocket and
//! other upgrades, timeouts, and error pages that name nothing of the upstream.

use std::cell::Cell;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;

use crate::config::{App, AppConfigError, Scheme};

/// Errors inside bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type the proxy sends and returns.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// The identity headers rampart sets; incoming copies are removed.
pub const USER_HEADER: &str = "x-rampart-user";
/// The person's email.
pub const EMAIL_HEADER: &str = "x-rampart-email";
/// The signed assertion (JWT).
pub const ASSERTION_HEADER: &str = "x-rampart-assertion";

/// The prefix of rampart's own cookies, never forwarded.
pub const COOKIE_PREFIX: &str = "__Host-rampart";

thread_local! {
    /// Which front-door thread this is (see [`pin_front_door_thread`]); 0 on any other.
    static FRONT_DOOR_THREAD: Cell<usize> = const { Cell::new(0) };
}

/// Marks the calling thread as front-door thread `n` (below the `pools` its upstreams were
/// made with): the requests it proxies take upstream connections from a pool of its own,
/// which its own runtime drives, so a request and its upstream connection never wake
/// another thread.
pub fn pin_front_door_thread(n: usize) {
    FRONT_DOOR_THREAD.with(|t| t.set(n));
}

mod conns;

use conns::{Conns, Lease};

/// One app's upstream: its settings and its connections, kept per front-door thread.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// The app.
    pub app: App,
    /// The connections of front-door thread 0 (and of every other thread).
    first: Arc<Conns>,
    /// The connections of front-door threads 1, 2, …
    more: Vec<Arc<Conns>>,
    /// The `Host` header sent upstream (the upstream URL's authority).
    host: Option<HeaderValue>,
}

impl Upstream {
    /// Sets up `pools` sets of connections (one per front-door thread, at least one); reads
    /// the CA and client certificate files.
    pub fn new(app: App, pools: usize) -> Result<Self, AppConfigError> {
        let name = app.name.to_string();
        let err = |what: String| AppConfigError(format!("apps {name}: {what}"));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        if app.scheme == Scheme::Https {
            match &app.ca_file {
                Some(path) => {
                    for cert in read_certs(path).map_err(err)? {
                        roots
                            .add(cert)
                            .map_err(|e| err(format!("{}: {e}", path.display())))?;
                    }
                }
                None => {
                    for cert in rustls_native_certs::load_native_certs().certs {
                        let _ = roots.add(cert);
                    }
                }
            }
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| err(e.to_string()))?
            .with_root_certificates(roots);
        let tls = match &app.client_identity {
            Some((cert, key)) => {
                let chain = read_certs(cert).map_err(err)?;
                let key = read_key(key).map_err(err)?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| err(format!("client certificate: {e}")))?
            }
            None => builder.with_no_client_auth(),
        };
        // ALPN (http/1.1) is set by the connector builder below.
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(app.connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let origin = Uri::builder()
            .scheme(match app.scheme {
                Scheme::Http => http::uri::Scheme::HTTP,
                Scheme::Https => http::uri::Scheme::HTTPS,
            })
            .authority(app.authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|e| err(e.to_string()))?;
        let pool = || Conns::new(https.clone(), origin.clone());
        Ok(Self {
            host: HeaderValue::from_str(app.authority.as_str()).ok(),
            first: pool(),
            more: (1..pools).map(|_| pool()).collect(),
            app,
        })
    }

    /// The connections of the calling front-door thread.
    fn pool(&self) -> &Arc<Conns> {
        match FRONT_DOOR_THREAD.with(Cell::get) {
            0 => &self.first,
            n => self.more.get(n - 1).unwrap_or(&self.first),
        }
    }
}

fn read_certs(
    path: &std::path::Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut pem.as_slice()).collect();
    let certs = certs.map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate", path.display()));
    }
    Ok(certs)
}

fn read_key(path: &std::path::Path) -> Result<rustls::pki_types::PrivateKeyDer<'static>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| format!("{}: {e}", path.display()))?
        .ok_or_else(|| format!("{}: no PEM private key", path.display()))
}

/// What the audit record of a request needs once it is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    /// Status sent to the client (0 if none was).
    pub status: u16,
    /// Request body bytes read from the client.
    pub bytes_in: u64,
    /// Response body bytes read from the upstream.
    pub bytes_out: u64,
}

/// Called once when the request is over (response body done or dropped, tunnel closed).
pub type OnFinish = Box<dyn FnOnce(Finished) + Send>;

/// Shared by the request body, the response body and an upgrade's tunnel: counts bytes and
/// calls its [`OnFinish`] when the last of them is dropped.
pub struct Tracker {
    status: AtomicU16,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    too_large: AtomicBool,
    on_finish: Mutex<Option<OnFinish>>,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("status", &self.status)
            .field("bytes_in", &self.bytes_in)
            .field("bytes_out", &self.bytes_out)
            .finish_non_exhaustive()
    }
}

impl Tracker {
    /// A tracker that calls `on_finish` when the request is over.
    pub fn new(on_finish: OnFinish) -> Arc<Self> {
        Arc::new(Self {
            status: AtomicU16::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            too_large: AtomicBool::new(false),
            on_finish: Mutex::new(Some(on_finish)),
        })
    }

    /// Records the status sent to the client.
    pub fn set_status(&self, status: StatusCode) {
        self.status.store(status.as_u16(), Ordering::Relaxed);
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let f = match self.on_finish.get_mut() {
            Ok(slot) => slot.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(f) = f {
            f(Finished {
                status: *self.status.get_mut(),
                bytes_in: *self.bytes_in.get_mut(),
                bytes_out: *self.bytes_out.get_mut(),
            });
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Direction {
    In,
    Out,
}

pin_project_lite::pin_project! {
    /// A body that counts what passes and fails once it passes `limit`.
    pub struct Metered<B> {
        #[pin]
        inner: B,
        tracker: Arc<Tracker>,
        direction: Direction,
        limit: u64,
        seen: u64,
    }
}

impl<B> std::fmt::Debug for Metered<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metered").field("seen", &self.seen).finish()
    }
}

/// A body grew past its limit.
#[derive(Debug, thiserror::Error)]
#[error("body larger than the app's limit")]
pub struct TooLarge;

impl<B> Body for Metered<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    *this.seen = this.seen.saturating_add(n);
                    let counter = match this.direction {
                        Direction::In => &this.tracker.bytes_in,
                        Direction::Out => &this.tracker.bytes_out,
                    };
                    counter.fetch_add(n, Ordering::Relaxed);
                    if *this.seen > *this.limit {
                        this.tracker.too_large.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(Box::new(TooLarge))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Who the request is forwarded for.
#[derive(Debug, Clone)]
pub struct Forward {
    /// The person's (or service account's) user name, as a header value (none when it
    /// cannot be one; the header is then left out).
    pub username: Option<HeaderValue>,
    /// Their email, likewise.
    pub email: Option<HeaderValue>,
    /// The signed assertion.
    pub assertion: HeaderValue,
    /// The client's address.
    pub client_ip: Option<IpAddr>,
    /// The host (and port) the client asked for, when it is a valid header value.
    pub public_host: Option<HeaderValue>,
    /// Remove `Authorization` (it carried rampart's bearer token).
    pub strip_authorization: bool,
}

/// An address as a header value, formatted on the stack.
fn ip_value(ip: IpAddr) -> HeaderValue {
    use std::io::Write as _;
    // The longest address (IPv6 with an embedded IPv4) is 45 characters.
    let mut buf = [0_u8; 64];
    let room = buf.len();
    let mut out = &mut buf[..];
    let written = match write!(out, "{ip}") {
        Ok(()) => room - out.len(),
        Err(_) => 0,
    };
    buf.get(..written)
        .and_then(|text| HeaderValue::from_bytes(text).ok())
        .unwrap_or_else(|| HeaderValue::from_static("unknown"))
}

/// Whether a path (after the prefix was taken off) is safe to forward: absolute, no `.` or
/// `..` segment even percent-encoded, no backslash, no encoded slash, no control bytes.
pub fn safe_path(path: &str) -> bool {
    if !path.starts_with('/') || path.len() > 8192 {
        return false;
    }
    // Segment by segment, decoding as it goes, without a copy of the path: an encoded
    // slash is refused, so the literal slashes are the only boundaries.
    path.split('/').all(safe_segment)
}

/// One segment of [`safe_path`]: every byte allowed, every `%XX` valid and allowed, and
/// not `.` or `..` once decoded.
fn safe_segment(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    let (mut decoded, mut dots, mut i) = (0_usize, 0_usize, 0_usize);
    while let Some(&b) = bytes.get(i) {
        let v = if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(v) if !matches!(v, b'/' | b'\\') && v >= 0x20 && v != 0x7f => {
                    i += 3;
                    v
                }
                _ => return false,
            }
        } else {
            if b == b'\\' || b < 0x20 || b == 0x7f {
                return false;
            }
            i += 1;
            b
        };
        decoded += 1;
        dots += usize::from(v == b'.');
    }
    !(matches!(decoded, 1 | 2) && dots == decoded)
}

/// Removes the hop-by-hop headers (RFC 9110 §7.6.1) and `Proxy-*`; keeps `Upgrade` when
/// `upgrade` is set (and says so in `Connection`).
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // `close` names no header and `keep-alive` one removed below: skipping them spares the
    // name's allocation on nearly every response (`Connection: keep-alive`).
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.eq_ignore_ascii_case("close") && !t.eq_ignore_ascii_case("keep-alive"))
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for name in named {
        if upgrade && name == header::UPGRADE {
            continue;
        }
        headers.remove(&name);
    }
    for name in [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        HeaderName::from_static("keep-alive"),
    ] {
        headers.remove(&name);
    }
    if !upgrade {
        headers.remove(header::UPGRADE);
    }
    let proxy: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in proxy {
        headers.remove(&name);
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Removes every header a client could use to pass as someone (rampart's identity headers,
/// forwarding headers), so that only rampart sets them.
pub fn strip_identity(headers: &mut HeaderMap) {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|k| {
            let k = k.as_str();
            k.starts_with("x-rampart-")
                || k.starts_with("x-forwarded-")
                || k == "forwarded"
                || k == "x-real-ip"
        })
        .cloned()
        .collect();
    for name in names {
        headers.remove(&name);
    }
}

/// Rewrites `Cookie` without rampart's own cookies (the app's cookies stay).
pub fn strip_rampart_cookies(headers: &mut HeaderMap) {
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|kv| !kv.is_empty() && !kv.starts_with(COOKIE_PREFIX))
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if !kept.is_empty()
        && let Ok(v) = HeaderValue::from_str(&kept.join("; "))
    {
        headers.insert(header::COOKIE, v);
    }
}

/// Whether the request asks for a protocol upgrade (WebSocket).
pub fn wants_upgrade<B>(request: &Request<B>) -> bool {
    request.headers().contains_key(header::UPGRADE)
        && request
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// A page for a refusal or failure; names nothing of the upstream.
pub fn page(status: StatusCode, text: &str) -> Response<ProxyBody> {
    let title = status.canonical_reason().unwrap_or("Error");
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} {title}</title></head><body><h1>{} {title}</h1><p>{text}</p></body></html>\n",
        status.as_u16(),
        status.as_u16()
    );
    let mut response = Response::new(full(html));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn full(text: String) -> ProxyBody {
    http_body_util::Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Completes when the person's access ends (grant removed or expired, session revoked):
/// a tunnel (WebSocket) open at that moment is cut.
pub type Ended = Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

pin_project_lite::pin_project! {
    /// A tunnel half that counts the bytes read from it.
    struct Counted<T> {
        #[pin]
        inner: T,
        tracker: Arc<Tracker>,
        direction: Direction,
    }
}

impl<T: tokio::io::AsyncRead> tokio::io::AsyncRead for Counted<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.inner.poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before) as u64;
        let counter = match this.direction {
            Direction::In => &this.tracker.bytes_in,
            Direction::Out => &this.tracker.bytes_out,
        };
        counter.fetch_add(n, Ordering::Relaxed);
        polled
    }
}

impl<T: tokio::io::AsyncWrite> tokio::io::AsyncWrite for Counted<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

/// Forwards `request` to the app. `rest` is the path and query to ask the upstream for
/// (the prefix already taken off, checked with [`safe_path`]). The tracker records the
/// status and the bytes, and reports when the request is over.
pub async fn forward<B>(
    upstream: &Upstream,
    mut request: Request<B>,
    rest: &str,
    who: &Forward,
    tracker: Arc<Tracker>,
    ended: Option<Ended>,
) -> Response<ProxyBody>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let app = &upstream.app;
    // hyper reads such a request as chunked; forwarding the Content-Length with the
    // re-framed body would desynchronize the upstream. Refused outright (RFC 9112 §6.3).
    if request.headers().contains_key(header::TRANSFER_ENCODING)
        && request.headers().contains_key(header::CONTENT_LENGTH)
    {
        return done(
            &tracker,
            page(
                StatusCode::BAD_REQUEST,
                "The request has both Content-Length and Transfer-Encoding.",
            ),
        );
    }
    let upgrade = wants_upgrade(&request);
    if let Some(length) = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && length > app.max_request_body
    {
        return done(
            &tracker,
            page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The request body is larger than this application accepts.",
            ),
        );
    }
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    let (mut parts, body) = request.into_parts();
    // Origin form (the connection is already to the upstream), passed from its own buffer.
    let mut path = String::with_capacity(app.base_path.len() + rest.len());
    path.push_str(&app.base_path);
    path.push_str(rest);
    let Ok(uri) = Uri::from_maybe_shared(Bytes::from(path)) else {
        return done(
            &tracker,
            page(StatusCode::BAD_REQUEST, "The request's path is not valid."),
        );
    };
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    let h = &mut parts.headers;
    strip_hop_by_hop(h, upgrade);
    strip_identity(h);
    strip_rampart_cookies(h);
    if who.strip_authorization {
        h.remove(header::AUTHORIZATION);
    }
    if let Some(host) = &upstream.host {
        h.insert(header::HOST, host.clone());
    }
    if let Some(user) = &who.username {
        h.insert(HeaderName::from_static(USER_HEADER), user.clone());
    }
    if let Some(email) = &who.email {
        h.insert(HeaderName::from_static(EMAIL_HEADER), email.clone());
    }
    h.insert(
        HeaderName::from_static(ASSERTION_HEADER),
        who.assertion.clone(),
    );
    if let Some(ip) = who.client_ip {
        h.insert(HeaderName::from_static("x-forwarded-for"), ip_value(ip));
    }
    h.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static("https"),
    );
    if let Some(host) = &who.public_host {
        h.insert(HeaderName::from_static("x-forwarded-host"), host.clone());
    }
    let body = Metered {
        inner: body,
        tracker: tracker.clone(),
        direction: Direction::In,
        limit: app.max_request_body,
        seen: 0,
    }
    .boxed_unsync();
    let outgoing = Request::from_parts(parts, body);
    let sent = tokio::time::timeout(app.response_timeout, upstream.pool().send(outgoing)).await;
    let (mut response, lease) = match sent {
        Err(_) => {
            tracing::warn!(app = %app.name, "upstream response timed out");
            return done(
                &tracker,
                page(
                    StatusCode::GATEWAY_TIMEOUT,
                    "The application did not answer in time.",
                ),
            );
        }
        Ok(Err(e)) => {
            if tracker.too_large.load(Ordering::Relaxed) {
                return done(
                    &tracker,
                    page(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "The request body is larger than this application accepts.",
                    ),
                );
            }
            tracing::warn!(app = %app.name, error = %e, "upstream request failed");
            return done(
                &tracker,
                page(
                    StatusCode::BAD_GATEWAY,
                    "The application is not reachable right now.",
                ),
            );
        }
        Ok(Ok(r)) => r,
    };
    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    strip_hop_by_hop(response.headers_mut(), switching && upgrade);
    strip_rampart_set_cookies(response.headers_mut());
    tracker.set_status(response.status());
    if switching {
        let Some(client_upgrade) = client_upgrade else {
            return done(
                &tracker,
                page(
                    StatusCode::BAD_GATEWAY,
                    "The application answered with an upgrade that was not asked for.",
                ),
            );
        };
        let server_upgrade = hyper::upgrade::on(&mut response);
        let t = tracker.clone();
        tokio::spawn(async move {
            let (c, s) = tokio::join!(client_upgrade, server_upgrade);
            if let (Ok(c), Ok(s)) = (c, s) {
                let mut c = Counted {
                    inner: TokioIo::new(c),
                    tracker: t.clone(),
                    direction: Direction::In,
                };
                let mut s = Counted {
                    inner: TokioIo::new(s),
                    tracker: t,
                    direction: Direction::Out,
                };
                let relay = tokio::io::copy_bidirectional(&mut c, &mut s);
                match ended {
                    // Access ended (grant removed, session revoked): the tunnel is cut.
                    Some(ended) => {
                        tokio::select! {
                            _ = relay => {}
                            () = ended => {}
                        }
                    }
                    None => {
                        let _ = relay.await;
                    }
                }
            }
        });
        let (parts, _) = response.into_parts();
        return Response::from_parts(
            parts,
            http_body_util::Empty::new()
                .map_err(|never| match never {})
                .boxed_unsync(),
        );
    }
    let (parts, body) = response.into_parts();
    let body = Metered {
        inner: Leased::new(body, lease),
        tracker,
        direction: Direction::Out,
        limit: app.max_response_body,
        seen: 0,
    }
    .boxed_unsync();
    Response::from_parts(parts, body)
}

pin_project_lite::pin_project! {
    /// An upstream response body holding its connection's [`Lease`], which goes back to
    /// the idle list once the body is read to its end (dropped before that, it closes the
    /// connection: what was left unread would be taken for the next response).
    struct Leased<B> {
        #[pin]
        inner: B,
        lease: Option<Lease>,
    }
}

impl<B: Body> Leased<B> {
    /// A body known to be empty (HEAD, 204, 304) may never be read: its connection goes
    /// back at once.
    fn new(inner: B, lease: Lease) -> Self {
        let lease = if inner.is_end_stream() {
            lease.release();
            None
        } else {
            Some(lease)
        };
        Self { inner, lease }
    }
}

impl<B: Body> Body for Leased<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        // Ended, or all read (a length-delimited body ends with its last frame, and hyper
        // then stops polling it).
        let ended = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => this.inner.is_end_stream(),
            _ => false,
        };
        if ended && let Some(lease) = this.lease.take() {
            lease.release();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn done(tracker: &Tracker, response: Response<ProxyBody>) -> Response<ProxyBody> {
    tracker.set_status(response.status());
    response
}

/// Removes `Set-Cookie` headers that would set one of rampart's own cookies (an app on a
/// prefix of the main host must not replace the session cookie).
pub fn strip_rampart_set_cookies(headers: &mut HeaderMap) {
    let kept: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter(|v| {
            !v.to_str()
                .map(|s| s.trim_start().starts_with(COOKIE_PREFIX))
                .unwrap_or(false)
        })
        .cloned()
        .collect();
    if headers.contains_key(header::SET_COOKIE) {
        headers.remove(header::SET_COOKIE);
        for v in kept {
            headers.append(header::SET_COOKIE, v);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;

    /// Each front-door thread takes upstream connections from a pool of its own; any other
    /// thread, and a number past the pools, takes them from the first.
    #[test]
    fn each_front_door_thread_has_a_pool_of_its_own() {
        let config =
            crate::config::test_app("grafana", None, Some("/grafana"), "http://127.0.0.1:3000");
        let app = crate::config::validate(&[config], "gw.example.com")
            .unwrap()
            .remove(0);
        let up = Upstream::new(app, 3).unwrap();
        assert_eq!(up.more.len(), 2);
        let pool_on = |pin: Option<usize>| {
            std::thread::scope(|s| {
                s.spawn(|| {
                    if let Some(n) = pin {
                        pin_front_door_thread(n);
                    }
                    Arc::as_ptr(up.pool()) as usize
                })
                .join()
                .unwrap()
            })
        };
        let first = Arc::as_ptr(&up.first) as usize;
        assert_eq!(pool_on(None), first);
        assert_eq!(pool_on(Some(0)), first);
        assert_eq!(pool_on(Some(99)), first);
        for n in 1..3 {
            assert_eq!(pool_on(Some(n)), Arc::as_ptr(&up.more[n - 1]) as usize);
        }
    }

    /// The check as it was first written: decode the whole path into a copy, then look at
    /// its segments.
    fn judged_by_a_decoded_copy(path: &str) -> bool {
        if !path.starts_with('/') || path.len() > 8192 {
            return false;
        }
        let bytes = path.as_bytes();
        let mut decoded = Vec::new();
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            if b == b'%' {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) if !matches!(v, b'/' | b'\\') && v >= 0x20 && v != 0x7f => {
                        decoded.push(v);
                        i += 3;
                    }
                    _ => return false,
                }
            } else {
                if b == b'\\' || b < 0x20 || b == 0x7f {
                    return false;
                }
                decoded.push(b);
                i += 1;
            }
        }
        !decoded
            .split(|&b| b == b'/')
            .any(|seg| seg == b"." || seg == b"..")
    }

    #[test]
    fn addresses_become_header_values() {
        for ip in [
            "127.0.0.1",
            "::1",
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
            "2001:db8::42",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_value(ip).to_str().unwrap(), ip.to_string());
        }
    }

    #[test]
    fn traversal_is_refused_even_encoded() {
        assert!(safe_path("/"));
        assert!(safe_path("/a/b.c/d?x=../y"));
        assert!(safe_path("/a%20b"));
        for bad in [
            "/../admin",
            "/a/..",
            "/./x",
            "/%2e%2e/admin",
            "/%2E%2e/admin",
            "/.%2e/x",
            "/a%2fb",
            "/a\\..\\b",
            "/a%5c..",
            "/a%zz",
            "/a%0a",
            "relative",
        ] {
            assert!(!safe_path(bad), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn no_accepted_path_climbs_out_of_its_prefix(raw in "[/a-z.%2eEfF5cC\\\\]{0,40}") {
            if safe_path(&raw) {
                let decoded = crate::percent_decoded(&raw);
                proptest::prop_assert!(!decoded.split(['/', '\\']).any(|s| s == ".." || s == "."));
            }
        }

        #[test]
        fn paths_are_judged_as_by_a_decoded_copy(raw in "/[/a-z.%2eEfF5cC\\\\+\u{1}]{0,40}") {
            proptest::prop_assert_eq!(safe_path(&raw), judged_by_a_decoded_copy(&raw), "{}", raw);
        }

        #[test]
        fn any_text_is_judged_without_panic(raw in "\\PC{0,200}") {
            let _ = safe_path(&raw);
            let _ = crate::percent_decoded(&raw);
        }
    }

    #[test]
    fn hop_by_hop_and_identity_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("Keep-Alive, x-secret, close"),
        );
        h.append("connection", HeaderValue::from_static("x-other"));
        h.insert("x-other", HeaderValue::from_static("2"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("proxy-authorization", HeaderValue::from_static("x"));
        h.insert("x-rampart-user", HeaderValue::from_static("root"));
        h.insert("X-Forwarded-For", HeaderValue::from_static("1.2.3.4"));
        h.insert("forwarded", HeaderValue::from_static("for=1.2.3.4"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut h, false);
        strip_identity(&mut h);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["accept"]);
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("Upgrade"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
    }

    #[test]
    fn only_rampart_cookies_are_removed() {
        let mut h = HeaderMap::new();
        h.append(
            "cookie",
            HeaderValue::from_static("a=1; __Host-rampart=abc"),
        );
        h.append(
            "cookie",
            HeaderValue::from_static("__Host-rampart-next=x; grafana_session=z"),
        );
        strip_rampart_cookies(&mut h);
        assert_eq!(h["cookie"], "a=1; grafana_session=z");
        let mut h = HeaderMap::new();
        h.append("cookie", HeaderValue::from_static("__Host-rampart=abc"));
        strip_rampart_cookies(&mut h);
        assert!(!h.contains_key("cookie"));
        let mut h = HeaderMap::new();
        h.append(
            "set-cookie",
            HeaderValue::from_static("__Host-rampart=evil; Path=/"),
        );
        h.append("set-cookie", HeaderValue::from_static("app=1"));
        strip_rampart_set_cookies(&mut h);
        assert_eq!(h.get_all("set-cookie").iter().count(), 1);
        assert_eq!(h["set-cookie"], "app=1");
    }
}
