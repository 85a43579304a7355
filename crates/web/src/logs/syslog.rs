//! The syslog-over-TLS listener (RFC 5425) on its own port (`logs.syslog_listen`), with the
//! front door's certificate (reloads included).
//!
//! Client authentication: every message carries its source's token in the structured data
//! element `[rampart@32473 token="…"]` (RFC 5424 §6.3; rsyslog and syslog-ng add it with a
//! template). A source named by configuration alone would let anyone who can connect write
//! as it, so there is no such mode. A message without a valid token is dropped, audited
//! once per connection, and the connection is closed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rampart_logs::Parsed;
use rampart_logs::ingest::IngestError;
use rampart_logs::parse::syslog::{Framer, parse};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::{Refusal, authenticate, refusal_event};
use crate::AppState;

/// How long a connection may stay silent.
const IDLE: Duration = Duration::from_secs(300);
/// Most messages stored in one batch.
const BATCH: usize = 1000;
/// Most connections served at once.
const MAX_CONNECTIONS: usize = 512;

/// Where the listener takes its current TLS configuration from (the front door's, so a
/// reloaded certificate is used by the next connection).
pub type CurrentConfig = Arc<dyn Fn() -> Arc<rustls::ServerConfig> + Send + Sync>;

/// Accepts connections until the task is aborted.
pub async fn serve(listener: TcpListener, config: CurrentConfig, state: AppState) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let acceptor = TlsAcceptor::from(config());
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(why) = connection(stream, peer, acceptor, state).await {
                tracing::info!(peer = %peer, why, "syslog connection closed");
            }
            drop(slot);
        });
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    state: AppState,
) -> Result<(), &'static str> {
    let Some(ingest) = state.logs.clone() else {
        return Err("application logs are not enabled");
    };
    let mut tls = tokio::time::timeout(crate::HANDSHAKE_TIMEOUT, acceptor.accept(stream))
        .await
        .map_err(|_| "TLS handshake timed out")?
        .map_err(|_| "TLS handshake failed")?;
    let max = usize::try_from(ingest.config().max_line_bytes.get())
        .unwrap_or(65_536)
        .saturating_add(16 * 1024);
    let mut framer = Framer::new(max);
    let mut buffer = vec![0u8; 64 * 1024];
    // Tokens already checked on this connection: hash → source.
    let mut known: HashMap<String, String> = HashMap::new();
    loop {
        let n = tokio::time::timeout(IDLE, tls.read(&mut buffer))
            .await
            .map_err(|_| "idle")?
            .map_err(|_| "read failed")?;
        let mut frames = Vec::new();
        if n == 0 {
            if let Some(last) = std::mem::replace(&mut framer, Framer::new(max)).finish() {
                frames.push(last);
            }
        } else {
            framer.push(buffer.get(..n).unwrap_or_default());
        }
        while let Some(frame) = framer.next_frame() {
            frames.push(frame.map_err(|_| "bad frame")?);
        }
        let received = ingest.clock().now();
        let mut batches: HashMap<String, Parsed> = HashMap::new();
        for frame in frames {
            let message = parse(&frame, received);
            let hash = message.token.as_deref().map(super::token_hash);
            let source = match hash.as_ref().and_then(|h| known.get(h)) {
                Some(source) => source.clone(),
                None => match authenticate(&state, message.token.as_deref()).await {
                    Ok(Ok(source)) => {
                        if let Some(h) = hash {
                            known.insert(h, source.clone());
                        }
                        source
                    }
                    Ok(Err(refusal)) => {
                        audit_refusal(&state, &refusal, peer).await;
                        return Err("a message without a valid token");
                    }
                    Err(_) => return Err("the store failed"),
                },
            };
            let batch = batches.entry(source).or_default();
            batch.entries.push(message.entry);
            if batch.entries.len() >= BATCH {
                flush(&ingest, &mut batches).await?;
            }
        }
        flush(&ingest, &mut batches).await?;
        if n == 0 {
            return Ok(());
        }
    }
}

async fn flush(
    ingest: &rampart_logs::Ingest,
    batches: &mut HashMap<String, Parsed>,
) -> Result<(), &'static str> {
    for (source, batch) in batches.drain() {
        match ingest.ingest(&source, batch).await {
            Ok(_) => {}
            // Syslog has no answer channel: closing the connection makes the sender queue
            // and retry (rsyslog and syslog-ng both do).
            Err(IngestError::RateLimited { .. }) => return Err("source over its rate limit"),
            Err(IngestError::DiskFull) => return Err("log store full"),
            Err(e) => {
                tracing::error!(error = %e, "syslog batch could not be stored");
                return Err("store failed");
            }
        }
    }
    Ok(())
}

async fn audit_refusal(state: &AppState, refusal: &Refusal, peer: SocketAddr) {
    let event = refusal_event(refusal, "syslog", Some(peer.ip()));
    if let Err(e) = state.store.append_audit(&[event]).await {
        tracing::error!(error = %e, "could not audit a refused syslog connection");
    }
}
