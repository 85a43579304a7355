//! What every response gets: the HTTP→HTTPS redirect, security headers, CSRF checks.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// HSTS for two years, subdomains included (ENC-2).
pub const HSTS: &str = "max-age=63072000; includeSubDomains";

/// No scripts at all, no framing, forms only to ourselves.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The policy of the pages that run one of rampart's own scripts (`webauthn.js` on the
/// account and second-factor pages, `logs-tail.js` on the logs page with live tail on): the
/// front door's, plus scripts and fetches from rampart itself. No inline script, no other
/// origin.
pub(crate) const SCRIPT_CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Sets [`SCRIPT_CSP`] on a page.
pub(crate) fn with_script_policy(mut page: Response) -> Response {
    page.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(SCRIPT_CSP),
    );
    page
}

/// The layer every HTTPS request passes: counts it, refuses cross-site state changes
/// ([`csrf_allows`]), and adds HSTS and the other security headers to the response.
/// Hand-written rather than three `from_fn` middlewares: those box a future and clone
/// the inner service per request each (`clone_box` showed in profiles of the front door).
#[derive(Debug, Clone)]
pub(crate) struct FrontDoorLayer(pub(crate) AppState);

impl<S> tower::Layer<S> for FrontDoorLayer {
    type Service = FrontDoor<S>;
    fn layer(&self, inner: S) -> FrontDoor<S> {
        FrontDoor {
            inner,
            state: self.0.clone(),
        }
    }
}

/// See [`FrontDoorLayer`]. Around the whole router ([`crate::https_router`]), so that a
/// request to an app goes to the proxy before any routing: the router's path lookup, its
/// per-request clones of the route's boxed services and its extensions cost about six
/// allocations per app request, for a route the app never takes.
#[derive(Debug, Clone)]
pub struct FrontDoor<S> {
    inner: S,
    state: AppState,
}

impl<S, B> tower::Service<axum::http::Request<B>> for FrontDoor<S>
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible>,
    S::Future: Send + 'static,
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = Guarded<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        // As the router would (a `Body` passed in stays as it is). Over HTTP/2, a body left
        // unread is read to its end rather than dropped (see `crate::early`).
        let request = if request.version() == axum::http::Version::HTTP_2 {
            request.map(|body| crate::early::discarding(Body::new(body)))
        } else {
            request.map(Body::new)
        };
        self.state
            .metrics
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if csrf_allows(&request) {
            match crate::apps::route(&self.state, &request) {
                Some(route) => Guarded::Proxied {
                    proxied: crate::apps::serve_route(&self.state, route, request),
                },
                None => Guarded::Inner {
                    inner: self.inner.call(request),
                },
            }
        } else {
            Guarded::Refused {
                refusal: Box::pin(refuse_cross_site(request)),
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The response of [`FrontDoor`]: the inner one, the CSRF refusal or an app's, with
    /// headers added.
    #[project = GuardedProj]
    pub enum Guarded<F> {
        Inner { #[pin] inner: F },
        Refused { refusal: std::pin::Pin<Box<dyn Future<Output = Response> + Send>> },
        Proxied { proxied: std::pin::Pin<Box<dyn Future<Output = Response> + Send>> },
    }
}

impl<F> Future for Guarded<F>
where
    F: Future<Output = Result<Response, std::convert::Infallible>>,
{
    type Output = Result<Response, std::convert::Infallible>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let mut response = match self.project() {
            GuardedProj::Inner { inner } => match inner.poll(cx) {
                std::task::Poll::Ready(Ok(response)) => response,
                std::task::Poll::Ready(Err(never)) => match never {},
                std::task::Poll::Pending => return std::task::Poll::Pending,
            },
            GuardedProj::Refused { refusal } => match refusal.as_mut().poll(cx) {
                std::task::Poll::Ready(response) => response,
                std::task::Poll::Pending => return std::task::Poll::Pending,
            },
            GuardedProj::Proxied { proxied } => match proxied.as_mut().poll(cx) {
                // An app's page keeps its own policy (CSP, framing, caching); HSTS is
                // always added: the app is reached over rampart's HTTPS only.
                std::task::Poll::Ready(mut response) => {
                    response.headers_mut().insert(
                        header::STRICT_TRANSPORT_SECURITY,
                        HeaderValue::from_static(HSTS),
                    );
                    return std::task::Poll::Ready(Ok(response));
                }
                std::task::Poll::Pending => return std::task::Poll::Pending,
            },
        };
        add_security_headers(response.headers_mut());
        std::task::Poll::Ready(Ok(response))
    }
}

/// Adds HSTS and the other security headers to an HTTPS response.
fn add_security_headers(h: &mut HeaderMap) {
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static(HSTS),
    );
    // A handler may have set its page's own policy (the SSH recording player's).
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(CSP));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
}

/// Refuses state-changing requests that a browser marks as cross-site: `Sec-Fetch-Site`,
/// when sent, must be `same-origin` or `none`; otherwise `Origin`, when sent, must be the
/// origin the request was made to. Clients that send neither (curl, scripts) are not browsers and
/// carry no ambient cookie risk. Session cookies are also `SameSite=Strict`.
fn csrf_allows(request: &Request) -> bool {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return true;
    }
    same_origin(request.headers(), &authority(request).unwrap_or_default())
}

/// The host and port a request was made to, as the client wrote it: HTTP/2 carries it in
/// the `:authority` pseudo-header (the URI), HTTP/1.1 in `Host`.
pub(crate) fn authority(request: &Request) -> Option<String> {
    request
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
}

async fn refuse_cross_site(request: Request) -> Response {
    // Read (and drop) the body first, so the refusal is not a reset of an unread stream.
    let _ = axum::body::to_bytes(request.into_body(), 64 * 1024).await;
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from("cross-site request refused\n"),
    )
        .into_response()
}

fn same_origin(headers: &HeaderMap, authority: &str) -> bool {
    // Browsers that send Sec-Fetch-Site say exactly where a request came from; with our
    // `Referrer-Policy: no-referrer` they send `Origin: null` even for our own forms.
    if let Some(site) = headers.get("sec-fetch-site") {
        return matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    match headers
        .get(header::ORIGIN)
        .map(|o| o.to_str().unwrap_or("null"))
    {
        None => true,
        Some(origin) => origin.strip_prefix("https://") == Some(authority),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn cross_site_posts_are_refused_and_same_origin_ones_pass() {
        assert!(same_origin(
            &headers(&[("origin", "https://gw:8443")]),
            "gw:8443"
        ));
        assert!(same_origin(
            &headers(&[("sec-fetch-site", "same-origin")]),
            "gw"
        ));
        assert!(same_origin(&headers(&[]), "gw"));
        assert!(!same_origin(
            &headers(&[("origin", "https://evil.example")]),
            "gw:8443"
        ));
        assert!(!same_origin(
            &headers(&[("origin", "http://gw:8443")]),
            "gw:8443"
        ));
        assert!(!same_origin(
            &headers(&[("sec-fetch-site", "cross-site")]),
            "gw"
        ));
        assert!(!same_origin(
            &headers(&[("sec-fetch-site", "same-site")]),
            "gw"
        ));
    }
}
