//! A front-door thread's HTTP/1.1 connections to one upstream, kept open between requests.
//!
//! hyper-util's pooled client did this before, at a cost per request that showed in
//! profiles of the front door: a task spawned to watch each connection come idle again,
//! the connection's details inserted into every response's extensions (three allocations),
//! the pool key cloned and hashed, the client and its connector cloned. Here a request
//! takes the most recently used idle connection of its own thread (one uncontended lock),
//! and its response body hands the connection back when it ends ([`Lease`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service;

use super::ProxyBody;

/// Idle connections kept per thread and upstream, at most.
const IDLE_MAX: usize = 256;
/// How long a connection stays idle before it is closed rather than used.
const IDLE_FOR: Duration = Duration::from_secs(60);

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The connection failed before the response's head arrived.
    #[error("{0}")]
    Http(#[from] hyper::Error),
    /// No connection could be made (refused, timed out, TLS).
    #[error("cannot connect: {0}")]
    Connector(Box<dyn std::error::Error + Send + Sync>),
}

/// One front-door thread's connections to one upstream.
pub(crate) struct Conns {
    connector: HttpsConnector<HttpConnector>,
    /// `scheme://authority/` of the upstream: what the connector dials.
    origin: Uri,
    idle: Mutex<Vec<(SendRequest<ProxyBody>, Instant)>>,
}

impl std::fmt::Debug for Conns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conns")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Conns {
    pub(crate) fn new(connector: HttpsConnector<HttpConnector>, origin: Uri) -> Arc<Self> {
        Arc::new(Self {
            connector,
            origin,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Sends `request` (origin-form URI, `Host` set) on an idle connection, or a new one
    /// when none is left. A request that an idle connection could not take (it closed
    /// meanwhile; nothing was written) goes to the next one.
    pub(crate) async fn send(
        self: &Arc<Self>,
        mut request: Request<ProxyBody>,
    ) -> Result<(Response<Incoming>, Lease), SendError> {
        while let Some(mut sender) = self.take_idle() {
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(request).await {
                Ok(response) => return Ok((response, self.lease(sender))),
                Err(mut e) => match e.take_message() {
                    Some(back) => request = back,
                    None => return Err(SendError::Http(e.into_error())),
                },
            }
        }
        let mut sender = self.connect().await?;
        let response = sender.send_request(request).await?;
        Ok((response, self.lease(sender)))
    }

    fn lease(self: &Arc<Self>, sender: SendRequest<ProxyBody>) -> Lease {
        Lease {
            sender: Some(sender),
            conns: self.clone(),
        }
    }

    /// The most recently used idle connection ready for a request. Closed and stale ones
    /// are dropped from the old end; one still finishing its last exchange (an upload the
    /// upstream answered early) stays for later rather than make this request wait.
    fn take_idle(&self) -> Option<SendRequest<ProxyBody>> {
        let mut idle = self.idle.lock().ok()?;
        let now = Instant::now();
        while idle
            .first()
            .is_some_and(|(s, since)| s.is_closed() || now.duration_since(*since) >= IDLE_FOR)
        {
            idle.remove(0);
        }
        let ready = idle.iter().rposition(|(s, _)| s.is_ready())?;
        Some(idle.swap_remove(ready).0)
    }

    fn put(&self, sender: SendRequest<ProxyBody>) {
        if sender.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() >= IDLE_MAX {
                idle.remove(0);
            }
            idle.push((sender, Instant::now()));
        }
    }

    /// A new connection, driven by a task on the calling thread's runtime (with upgrades,
    /// for WebSockets).
    async fn connect(&self) -> Result<SendRequest<ProxyBody>, SendError> {
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(SendError::Connector)?;
        let io = connector
            .call(self.origin.clone())
            .await
            .map_err(SendError::Connector)?;
        let (sender, connection) = hyper::client::conn::http1::Builder::new()
            .handshake(io)
            .await?;
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        });
        Ok(sender)
    }
}

/// A connection lent to one request: given back to its thread's idle list when the
/// response body has ended ([`Lease::release`]), closed when dropped before that.
pub(crate) struct Lease {
    sender: Option<SendRequest<ProxyBody>>,
    conns: Arc<Conns>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").finish_non_exhaustive()
    }
}

impl Lease {
    /// The response is over: the connection may take the next request.
    pub(crate) fn release(mut self) {
        if let Some(sender) = self.sender.take() {
            self.conns.put(sender);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A plain HTTP/1.1 upstream on loopback that answers every request with `body`,
    /// keeping the connection unless `close_after` is set (it then says `Connection:
    /// close` and closes it). Counts the connections it accepts.
    async fn upstream(body: &'static [u8], close_after: bool) -> (Uri, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buf = [0_u8; 4096];
                    while let Ok(n) = stream.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        seen.extend_from_slice(&buf[..n]);
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            let close = if close_after {
                                "connection: close\r\n"
                            } else {
                                ""
                            };
                            let head = format!(
                                "HTTP/1.1 200 OK\r\n{close}content-length: {}\r\n\r\n",
                                body.len()
                            );
                            stream.write_all(head.as_bytes()).await.unwrap();
                            stream.write_all(body).await.unwrap();
                            if close_after {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (
            format!("http://127.0.0.1:{port}/").parse().unwrap(),
            accepted,
        )
    }

    fn conns(origin: Uri) -> Arc<Conns> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Conns::new(https, origin)
    }

    fn get(origin: &Uri) -> Request<ProxyBody> {
        Request::builder()
            .uri("/x")
            .header(http::header::HOST, origin.authority().unwrap().as_str())
            .body(
                http_body_util::Empty::new()
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )
            .unwrap()
    }

    /// Sends a request and reads its body to the end, as the front door does.
    async fn fetch(conns: &Arc<Conns>, origin: &Uri) -> Vec<u8> {
        let (response, lease) = conns.send(get(origin)).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        lease.release();
        body.to_vec()
    }

    #[tokio::test]
    async fn a_connection_is_used_again_once_its_response_is_read() {
        let (origin, accepted) = upstream(b"hello", false).await;
        let conns = conns(origin.clone());
        for _ in 0..5 {
            assert_eq!(fetch(&conns, &origin).await, b"hello");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_response_left_unread_closes_its_connection() {
        let (origin, accepted) = upstream(b"hello", false).await;
        let conns = conns(origin.clone());
        let (response, lease) = conns.send(get(&origin)).await.unwrap();
        // Dropped before its end: the connection goes with it.
        drop((response, lease));
        assert_eq!(fetch(&conns, &origin).await, b"hello");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_not_used_again() {
        let (origin, accepted) = upstream(b"bye", true).await;
        let conns = conns(origin.clone());
        for _ in 0..3 {
            // Handed back at the end of its response, it never becomes ready again.
            assert_eq!(fetch(&conns, &origin).await, b"bye");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }
}
