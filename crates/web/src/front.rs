//! The HTTPS front door on threads of its own: one per core (at most 8), each with a
//! single-threaded runtime that accepts from the shared socket and keeps its connections,
//! as nginx's workers do and as the HTTP redirect does ([`crate::redirect`]). A request's
//! TLS, its handler and, for an app, its pooled upstream connection
//! ([`rampart_proxy::engine::pin_front_door_thread`]) then all run on the thread that
//! accepted the connection. On the multi-thread runtime the connection's task and its
//! upstream connection's task were often woken on different cores: in A/B runs of the
//! `bench/apps.sh` setup, these threads served 7–9 % more app requests per second.
//!
//! Each connection closes with a lingering close and has Nagle's algorithm off
//! ([`crate::linger`]).
//!
//! Background work (the audit writers, the group committer, the schedules) stays on the
//! main runtime; handlers reach it through channels and the store.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

use axum::ServiceExt;
use axum_server::Handle;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};

/// How many threads serve the front door (HTTPS and the HTTP redirect): one per core, at
/// most 8 (nginx's `worker_processes auto`).
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 8))
}

/// Serves `app` over TLS on `listener` until `handle` shuts the servers down. Returns
/// once every thread has ended, or with the first error of one.
pub async fn serve_https(
    listener: std::net::TcpListener,
    rustls: RustlsConfig,
    handle: Handle,
    app: crate::HttpsApp,
    max_buf_size: usize,
) -> io::Result<()> {
    let mut starts: Vec<Start> = Vec::new();
    for n in 0..threads() {
        let listener = listener.try_clone()?;
        let (rustls, handle, app) = (rustls.clone(), handle.clone(), app.clone());
        starts.push(Box::new(move || {
            rampart_proxy::engine::pin_front_door_thread(n);
            Box::pin(async move {
                let tls = RustlsAcceptor::new(rustls).acceptor(crate::linger::LingerAcceptor);
                let mut server = axum_server::from_tcp(listener)
                    .acceptor(tls)
                    .handle(handle);
                server.http_builder().http1().max_buf_size(max_buf_size);
                server
                    .serve(
                        <crate::HttpsApp as ServiceExt<axum::extract::Request>>::into_make_service_with_connect_info::<SocketAddr>(app),
                    )
                    .await
            })
        }));
    }
    on_own_threads("rampart-https", starts).await
}

/// What one thread of [`on_own_threads`] runs: called on the thread, it makes the future
/// that thread's runtime serves until it ends.
pub(crate) type Start = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = io::Result<()>>>> + Send>;

/// Runs each start on a thread of its own (`{name}-{n}`), each with a single-threaded
/// runtime. Returns once every thread has ended, or with the first error of one (a thread
/// that could not start, or a future that ended with an error).
pub(crate) async fn on_own_threads(name: &str, starts: Vec<Start>) -> io::Result<()> {
    let (done, mut ended) = tokio::sync::mpsc::channel::<io::Result<()>>(starts.len().max(1));
    for (n, start) in starts.into_iter().enumerate() {
        let done = done.clone();
        std::thread::Builder::new()
            .name(format!("{name}-{n}"))
            .spawn(move || {
                let served = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .and_then(|runtime| runtime.block_on(start()));
                let _ = done.blocking_send(served);
            })?;
    }
    drop(done);
    let mut outcome = Ok(());
    while let Some(served) = ended.recv().await {
        if served.is_err() {
            outcome = served;
            break;
        }
    }
    outcome
}
