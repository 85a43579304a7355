//! What every response gets: the HTTP→HTTPS redirect, security headers, CSRF checks.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// HSTS for two years, subdomains included (ENC-2).
pub const HSTS: &str = "max-age=63072000; includeSubDomains";

/// No scripts at all, no framing, forms only to ourselves.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The HTTP listener's only answer: 308 to the same path and query on the configured
/// public host. The client's Host header is ignored, so this is never an open redirect.
pub async fn redirect_to_https(State(state): State<AppState>, request: Request) -> Response {
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    let mut location = String::with_capacity(state.public_origin().len() + path_and_query.len());
    location.push_str(state.public_origin());
    location.push_str(path_and_query);
    match HeaderValue::from_str(&location) {
        Ok(value) => (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, value)]).into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

/// Adds HSTS and the other security headers to every HTTPS response.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static(HSTS),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
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
    response
}

/// Refuses state-changing requests that a browser marks as cross-site: `Sec-Fetch-Site`,
/// when sent, must be `same-origin` or `none`; otherwise `Origin`, when sent, must be the
/// origin the request was made to. Clients that send neither (curl, scripts) are not browsers and
/// carry no ambient cookie risk. Session cookies are also `SameSite=Strict`.
pub async fn csrf(request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    // HTTP/2 carries the host in the :authority pseudo-header (the URI), not in Host.
    let authority = request
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
        .unwrap_or_default();
    if same_origin(request.headers(), &authority) {
        return next.run(request).await;
    }
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
