//! The batched audit writer of proxied requests.
//!
//! What is guaranteed: a request reaches an app only after it holds a slot in a bounded
//! queue *and* the writer's last commit succeeded. Its record goes into that slot when the
//! request is over (the slot cannot be lost to a full queue). The writer commits up to
//! [`BATCH`] records per transaction, at most one transaction per [`WINDOW`] unless a full
//! batch is waiting; a failed commit is retried, with the same records,
//! until it succeeds, and meanwhile no new request passes: each waits at most the
//! configured bound for the log to take writes again, then gets 503. Records of requests
//! in flight when the log fails are kept in memory and written once it recovers; they are
//! lost only if the process dies before that (as are those of the last [`WINDOW`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rampart_audit::AuditRecord;
use rampart_store::Store;
use tokio::sync::{mpsc, watch};

/// Most records per commit: one multi-row `INSERT`, which the store runs inline.
pub const BATCH: usize = 64;
/// The shortest time between two commits that are not full batches. Records wait at most
/// this long (the requests they describe are already answered). Under load a commit then
/// takes tens of records instead of a handful, and much of a commit's cost is per commit:
/// the same few index leaves written again. `bench/apps.sh` (35,000 requests/s): without
/// it about 6 records per commit, 1.9 WAL writes and 31 µs of CPU per request; with it
/// 0.7 writes and 26 µs. A 10 ms window with 512-record commits saved no more CPU and
/// raised the p99 latency.
pub const WINDOW: Duration = Duration::from_millis(2);
/// Records waiting at most (each in-flight request holds one slot).
pub const CAPACITY: usize = 65_536;

/// A reserved place for one request's record.
#[derive(Debug)]
pub struct Slot(mpsc::OwnedPermit<AuditRecord>);

impl Slot {
    /// Puts the record (unsealed, see [`crate::request_record`]) in the queue.
    pub fn send(self, record: AuditRecord) {
        let _ = self.0.send(record);
    }
}

/// The audit log does not take writes (or the queue is full) and the wait ran out.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the audit log is not taking writes")]
pub struct Refused;

/// The sending side: hands out slots.
#[derive(Debug, Clone)]
pub struct AuditQueue {
    tx: mpsc::Sender<AuditRecord>,
    healthy: watch::Receiver<bool>,
    wait: Duration,
    busy: Arc<AtomicBool>,
}

impl AuditQueue {
    /// Starts the writer; requests wait at most `wait` for a slot.
    pub fn spawn(store: Arc<Store>, wait: Duration) -> (Self, tokio::task::JoinHandle<()>) {
        Self::spawn_with_window(store, wait, WINDOW)
    }

    fn spawn_with_window(
        store: Arc<Store>,
        wait: Duration,
        window: Duration,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(CAPACITY);
        let (health_tx, healthy) = watch::channel(true);
        let busy = Arc::new(AtomicBool::new(false));
        // Beside the store's group committer: a batch's commit then wakes no other thread.
        let runtime = store.committer_runtime().clone();
        let task = runtime.spawn(write_loop(store, rx, health_tx, busy.clone(), window));
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
    mut rx: mpsc::Receiver<AuditRecord>,
    healthy: watch::Sender<bool>,
    busy: Arc<AtomicBool>,
    window: Duration,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut last: Option<tokio::time::Instant> = None;
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        // Busy from here: the records have left the queue, so the queue alone would look
        // idle to a shutdown while they wait for the window.
        busy.store(true, Ordering::Release);
        if let Some(last) = last
            && batch.len() < BATCH
            && last.elapsed() < window
        {
            tokio::time::sleep_until(last + window).await;
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(record) => batch.push(record),
                    Err(_) => break,
                }
            }
        }
        last = Some(tokio::time::Instant::now());
        let mut delay = Duration::from_millis(100);
        loop {
            match store.append_records(std::mem::take(&mut batch)).await {
                Ok(mut sealed) => {
                    healthy.send_if_modified(|h| !std::mem::replace(h, true));
                    // The vector comes back: the next batch reuses it.
                    sealed.clear();
                    batch = sealed;
                    break;
                }
                Err((e, records)) => {
                    // Retried with the same records (sealed again at the next try).
                    batch = records;
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

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_audit::{Action, Actor, AuditEvent};

    fn event(n: usize) -> AuditEvent {
        AuditEvent::new(Actor::User("alice".into()), Action::AppRequest, "app")
            .detail("n", n.to_string())
    }

    fn record(n: usize) -> AuditRecord {
        AuditRecord::unsealed(&event(n))
    }

    /// A store on a file (the direct path needs one) whose chain head is already known.
    async fn store(dir: &tempfile::TempDir) -> Arc<Store> {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
        let store = Arc::new(Store::open(&url).await.unwrap());
        store.append_audit(&[event(0)]).await.unwrap();
        store
    }

    async fn idle(queue: &AuditQueue) {
        for _ in 0..2000 {
            if queue.is_idle() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the writer never went idle");
    }

    async fn written(store: &Store) -> u64 {
        store.audit_head().await.unwrap().map_or(0, |r| r.seq)
    }

    #[tokio::test]
    async fn records_within_a_window_share_one_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let window = Duration::from_millis(200);
        let (queue, _task) =
            AuditQueue::spawn_with_window(store.clone(), Duration::from_secs(5), window);
        queue.slot().await.unwrap().send(record(1));
        idle(&queue).await;
        assert_eq!(written(&store).await, 2);
        let before = store.direct_audit_commits().await;
        let started = std::time::Instant::now();
        for n in 2..52 {
            queue.slot().await.unwrap().send(record(n));
            // The writer runs between two records (one thread): without the window each
            // would be a commit of its own.
            tokio::task::yield_now().await;
        }
        let sending = started.elapsed();
        idle(&queue).await;
        assert_eq!(written(&store).await, 52, "every record is written");
        let commits = store.direct_audit_commits().await - before;
        // One commit per window the sending spanned, and one more for the edge.
        let bound = 2 + (sending.as_millis() / window.as_millis().max(1)) as u64;
        assert!(
            commits <= bound,
            "{commits} commits for 50 records sent in {sending:?} (at most {bound})"
        );
    }

    #[tokio::test]
    async fn records_waiting_for_the_window_keep_the_writer_busy() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let (queue, _task) = AuditQueue::spawn_with_window(
            store.clone(),
            Duration::from_secs(5),
            Duration::from_secs(3600),
        );
        queue.slot().await.unwrap().send(record(1));
        idle(&queue).await;
        queue.slot().await.unwrap().send(record(2));
        while queue.tx.capacity() < queue.tx.max_capacity() {
            tokio::task::yield_now().await;
        }
        // The record has left the queue and waits for the window: a shutdown that saw
        // the writer idle now would lose it.
        assert!(!queue.is_idle());
        assert_eq!(written(&store).await, 2);
    }
}
