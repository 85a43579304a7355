//! The batched audit writer of proxied requests.
//!
//! What is guaranteed: a request reaches an app only after it holds a slot in a bounded
//! queue *and* the writer's last commit succeeded. Its record goes into that slot when the
//! request is over (the slot cannot be lost to a full queue). The writer commits up to
//! [`BATCH`] records per transaction; a failed commit is retried, with the same records,
//! until it succeeds, and meanwhile no new request passes: each waits at most the
//! configured bound for the log to take writes again, then gets 503. Records of requests
//! in flight when the log fails are kept in memory and written once it recovers; they are
//! lost only if the process dies before that (as are those of the last few milliseconds).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rampart_audit::AuditEvent;
use rampart_store::Store;
use tokio::sync::{mpsc, watch};

/// Most records per transaction.
pub const BATCH: usize = 512;
/// Records waiting at most (each in-flight request holds one slot).
pub const CAPACITY: usize = 65_536;

/// A reserved place for one request's record.
#[derive(Debug)]
pub struct Slot(mpsc::OwnedPermit<AuditEvent>);

impl Slot {
    /// Puts the record in the queue.
    pub fn send(self, event: AuditEvent) {
        let _ = self.0.send(event);
    }
}

/// The audit log does not take writes (or the queue is full) and the wait ran out.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the audit log is not taking writes")]
pub struct Refused;

/// The sending side: hands out slots.
#[derive(Debug, Clone)]
pub struct AuditQueue {
    tx: mpsc::Sender<AuditEvent>,
    healthy: watch::Receiver<bool>,
    wait: Duration,
    busy: Arc<AtomicBool>,
}

impl AuditQueue {
    /// Starts the writer; requests wait at most `wait` for a slot.
    pub fn spawn(store: Arc<Store>, wait: Duration) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(CAPACITY);
        let (health_tx, healthy) = watch::channel(true);
        let busy = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(write_loop(store, rx, health_tx, busy.clone()));
        (
            Self {
                tx,
                healthy,
                wait,
                busy,
            },
            task,
        )
    }

    /// A slot, once the writer is healthy and the queue has room, within the wait.
    pub async fn slot(&self) -> Result<Slot, Refused> {
        if *self.healthy.borrow() {
            // Fast path: most requests find room at once.
            if let Ok(permit) = self.tx.clone().try_reserve_owned() {
                return Ok(Slot(permit));
            }
        }
        let mut healthy = self.healthy.clone();
        let tx = self.tx.clone();
        tokio::time::timeout(self.wait, async move {
            healthy.wait_for(|ok| *ok).await.map_err(|_| Refused)?;
            tx.reserve_owned().await.map(Slot).map_err(|_| Refused)
        })
        .await
        .map_err(|_| Refused)?
    }

    /// Whether nothing is queued or being written (for a clean shutdown).
    pub fn is_idle(&self) -> bool {
        self.tx.capacity() == self.tx.max_capacity() && !self.busy.load(Ordering::Acquire)
    }

    /// Whether the last commit succeeded.
    pub fn is_healthy(&self) -> bool {
        *self.healthy.borrow()
    }
}

async fn write_loop(
    store: Arc<Store>,
    mut rx: mpsc::Receiver<AuditEvent>,
    healthy: watch::Sender<bool>,
    busy: Arc<AtomicBool>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        busy.store(true, Ordering::Release);
        let mut delay = Duration::from_millis(100);
        loop {
            match store.append_audit(&batch).await {
                Ok(_) => {
                    healthy.send_if_modified(|h| !std::mem::replace(h, true));
                    break;
                }
                Err(e) => {
                    if healthy.send_if_modified(|h| std::mem::replace(h, false)) {
                        tracing::error!(error = %e, "the audit log refuses app request records; new app requests are refused until it recovers");
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
        batch.clear();
        busy.store(false, Ordering::Release);
    }
}
