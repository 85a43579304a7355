//! Channels between the client and the target (RFC 4254 §6). Requests are answered in the
//! handler, in order, with the target's own answer; once a shell, command or subsystem
//! runs, two pumps move data, one per direction, each waiting for the other side's window
//! (so a slow reader slows its writer and nothing is buffered without bound).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use russh::server::{Handle, Msg};
use russh::{Channel, ChannelId, ChannelMsg, ChannelReadHalf, ChannelWriteHalf, client};
use tokio::io::AsyncWriteExt;

use crate::session::Live;
use crate::sftp::{Op, Side, Watcher};

/// The SFTP watcher of a channel, shared by its two pumps.
pub(crate) type SharedWatcher = Arc<std::sync::Mutex<Watcher>>;

/// Longest wait for a target's answer to a channel request.
const REPLY_WAIT: Duration = Duration::from_secs(15);

/// Sets the handle used to end the client's connection.
pub(crate) fn set_client_handle(live: &Live, handle: Handle) {
    if let Ok(mut slot) = live.client.lock() {
        *slot = Some(handle);
    }
}

/// The handle to the client's connection, once authenticated.
pub(crate) fn client_handle(live: &Live) -> Option<Handle> {
    live.client.lock().ok().and_then(|h| h.clone())
}

/// A client channel and its target channel before the shell, command or subsystem starts.
pub(crate) struct Pending {
    pub client: Channel<Msg>,
    pub up: Channel<client::Msg>,
    /// What the target sent before answering a request (replayed to the client).
    pub early: Vec<ChannelMsg>,
    /// Terminal type and size, when a PTY was asked for.
    pub pty: Option<(String, u32, u32)>,
}

/// Waits for the target's answer to the request just sent.
pub(crate) async fn wait_reply(pending: &mut Pending) -> bool {
    let wait = async {
        loop {
            match pending.up.wait().await {
                Some(ChannelMsg::Success) => return true,
                Some(ChannelMsg::Failure) | None => return false,
                Some(ChannelMsg::Close) => {
                    pending.early.push(ChannelMsg::Close);
                    return false;
                }
                Some(other) => {
                    if pending.early.len() < 64 {
                        pending.early.push(other);
                    }
                }
            }
        }
    };
    tokio::time::timeout(REPLY_WAIT, wait)
        .await
        .unwrap_or(false)
}

/// Starts the two pumps; returns the target channel's write half for later requests
/// (window changes, signals, close).
pub(crate) fn run(
    live: Arc<Live>,
    pending: Pending,
    client: Handle,
    sftp: Option<SharedWatcher>,
    record: bool,
) -> ChannelWriteHalf<client::Msg> {
    let Pending {
        client: client_ch,
        up,
        early,
        ..
    } = pending;
    let id = client_ch.id();
    let (client_r, client_w) = client_ch.split();
    let (up_r, up_w) = up.split();
    let up_tx = up_w.make_writer();
    tokio::spawn(upward(
        live.clone(),
        client_r,
        up_tx,
        Tap {
            sftp: sftp.clone(),
            record,
        },
    ));
    let tap = Tap { sftp, record };
    tokio::spawn(downward(live, up_r, client_w, early, (client, id), tap));
    up_w
}

async fn upward(
    live: Arc<Live>,
    mut client_r: ChannelReadHalf,
    mut up_tx: impl tokio::io::AsyncWrite + Unpin,
    Tap { sftp, record }: Tap,
) {
    while let Some(msg) = client_r.wait().await {
        match msg {
            ChannelMsg::Data { data } => {
                live.bytes_up
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                live.touch();
                if record {
                    live.record(|cast, t| cast.input(t, &data));
                }
                watch(&live, sftp.as_ref(), Side::Request, &data);
                if up_tx.write_all(&data).await.is_err() {
                    break;
                }
            }
            ChannelMsg::Eof => {
                let _ = up_tx.shutdown().await;
            }
            ChannelMsg::Close => break,
            _ => {}
        }
    }
}

/// What watches a channel's data: the SFTP watcher, and whether the recording sees it.
struct Tap {
    sftp: Option<SharedWatcher>,
    record: bool,
}

// The data arms move their bytes into the write, which a guard cannot.
#[allow(clippy::collapsible_match)]
async fn downward(
    live: Arc<Live>,
    mut up_r: ChannelReadHalf,
    client_w: ChannelWriteHalf<Msg>,
    early: Vec<ChannelMsg>,
    (client, id): (Handle, ChannelId),
    Tap { sftp, record }: Tap,
) {
    let mut out = client_w.make_writer();
    let mut err = client_w.make_writer_ext(Some(1));
    let mut early = early.into_iter();
    loop {
        let msg = match early.next() {
            Some(m) => m,
            None => match up_r.wait().await {
                Some(m) => m,
                None => break,
            },
        };
        match msg {
            ChannelMsg::Data { data } => {
                watch(&live, sftp.as_ref(), Side::Reply, &data);
                if down(&live, &mut out, data, record).await.is_err() {
                    break;
                }
            }
            ChannelMsg::ExtendedData { data, .. } => {
                if down(&live, &mut err, data, record).await.is_err() {
                    break;
                }
            }
            ChannelMsg::Eof => {
                let _ = out.flush().await;
                let _ = client_w.eof().await;
            }
            ChannelMsg::ExitStatus { exit_status } => {
                live.exit_status
                    .store(i64::from(exit_status), Ordering::Relaxed);
                let _ = client_w.exit_status(exit_status).await;
            }
            ChannelMsg::ExitSignal {
                signal_name,
                core_dumped,
                error_message,
                lang_tag,
            } => {
                let _ = client
                    .exit_signal_request(id, signal_name, core_dumped, error_message, lang_tag)
                    .await;
            }
            ChannelMsg::Close => break,
            _ => {}
        }
    }
    let _ = client_w.close().await;
}

async fn down(
    live: &Live,
    w: &mut (impl tokio::io::AsyncWrite + Unpin),
    data: Bytes,
    record: bool,
) -> std::io::Result<()> {
    live.bytes_down
        .fetch_add(data.len() as u64, Ordering::Relaxed);
    live.touch();
    if record {
        live.record(|cast, t| cast.output(t, &data));
    }
    w.write_all(&data).await
}

/// Feeds an SFTP watcher and audits the operations it completes (in the background: the
/// operation has happened on the target already; the transfer does not wait for the log).
fn watch(live: &Arc<Live>, sftp: Option<&SharedWatcher>, side: Side, data: &[u8]) {
    let Some(sftp) = sftp else {
        return;
    };
    let ops = match sftp.lock() {
        Ok(mut w) => w.feed(side, data),
        Err(_) => return,
    };
    for op in ops {
        let ev = rampart_audit::AuditEvent::new(
            rampart_audit::Actor::User(live.person.clone()),
            rampart_audit::Action::SshExec,
            live.target.name.to_string(),
        )
        .source(live.source)
        .detail("session", live.id.clone())
        .detail("kind", "sftp");
        let ev = match op {
            Op::File {
                path,
                direction,
                bytes,
            } => ev
                .detail("path", rampart_scrub::scrub_default(&path))
                .detail("direction", direction)
                .detail("bytes", bytes.to_string()),
            Op::Path { what, path } => ev
                .detail("operation", what)
                .detail("path", rampart_scrub::scrub_default(&path)),
            Op::Lost => ev.detail(
                "operation",
                "unreadable SFTP stream: no further file operations audited",
            ),
        };
        let store = live.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.append_audit(&[ev]).await {
                tracing::error!(error = %e, "could not audit an SFTP operation");
            }
        });
    }
}

/// Answers a channel that may not reach a target: the text, an exit status, close.
pub(crate) async fn explain(client: Channel<Msg>, text: String, code: u32, stderr: bool) {
    let bytes = text.into_bytes();
    let written = if stderr {
        client.extended_data(1, &bytes[..]).await
    } else {
        client.data(&bytes[..]).await
    };
    if written.is_ok() {
        let _ = client.exit_status(code).await;
        let _ = client.eof().await;
    }
    let _ = client.close().await;
}
