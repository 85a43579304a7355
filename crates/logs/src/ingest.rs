//! The ingest pipeline shared by every way logs arrive (HTTP, syslog, the CLI): rate
//! limit per source, limits and scrubbing ([`prepare`]), one batched write.

use std::collections::HashMap;
use std::sync::Arc;

use rampart_core::Clock;
use rampart_scrub::{Counts, Scrubber};

use crate::config::LogsConfig;
use crate::record::{Limits, LineError, Parsed, flags, prepare};
use crate::store::{LogError, LogStore};

/// What happened to a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Lines stored.
    pub stored: usize,
    /// Lines whose timestamp was clamped to the receive time.
    pub clamped: usize,
    /// Lines cut at `logs.max_line_bytes`.
    pub truncated: usize,
    /// Personal data and secrets removed before storing.
    pub scrubbed: u64,
    /// Lines that could not be read, by position.
    pub errors: Vec<ReportedError>,
}

/// A per-line error as reported to the sender.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReportedError {
    /// 1-based position.
    pub line: u64,
    /// Why.
    pub reason: &'static str,
}

impl From<LineError> for ReportedError {
    fn from(e: LineError) -> Self {
        Self {
            line: e.line,
            reason: e.reason,
        }
    }
}

/// Why a batch was refused whole (nothing of it stored).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The source sent more than its rate allows.
    #[error("source {name} is over its rate limit")]
    RateLimited {
        /// The source.
        name: String,
        /// Seconds after which the batch would fit.
        retry_after_s: u64,
    },
    /// The disk is full.
    #[error("the disk holding the logs is full")]
    DiskFull,
    /// The store failed.
    #[error(transparent)]
    Store(LogError),
    /// The scrubbing worker failed.
    #[error("the scrubbing worker failed")]
    Worker,
}

impl From<LogError> for IngestError {
    fn from(e: LogError) -> Self {
        match e {
            LogError::DiskFull => IngestError::DiskFull,
            other => IngestError::Store(other),
        }
    }
}

/// The shared pipeline.
#[derive(Debug)]
pub struct Ingest {
    store: LogStore,
    scrubber: Arc<Scrubber>,
    config: LogsConfig,
    clock: Arc<dyn Clock>,
    buckets: std::sync::Mutex<HashMap<String, Bucket>>,
    /// Batches being scrubbed or written at once ([`busy_limit`]); more wait their turn
    /// without holding a thread.
    busy: tokio::sync::Semaphore,
}

/// How many batches may be scrubbed or written at once: twice the cores, at least 8. Both
/// steps run on blocking threads and keep per-thread scrubber caches, so without a bound a
/// crowd of shippers would make a thread (and its caches) each; the work is CPU-bound, so
/// more at once would not go faster.
pub fn busy_limit() -> usize {
    std::thread::available_parallelism().map_or(8, |n| n.get().saturating_mul(2).max(8))
}

impl Ingest {
    /// Wires the pipeline.
    pub fn new(
        store: LogStore,
        scrubber: Arc<Scrubber>,
        config: LogsConfig,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            scrubber,
            config,
            clock,
            buckets: std::sync::Mutex::new(HashMap::new()),
            busy: tokio::sync::Semaphore::new(busy_limit()),
        }
    }

    /// The store, for search and purge.
    pub fn store(&self) -> &LogStore {
        &self.store
    }

    /// The configuration.
    pub fn config(&self) -> &LogsConfig {
        &self.config
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Checks the rate, scrubs and stores the readable entries of a batch from `source`.
    pub async fn ingest(&self, source: &str, parsed: Parsed) -> Result<Report, IngestError> {
        let now = self.clock.now();
        let n = parsed.entries.len();
        if n > 0 {
            let rate = self.config.rate_lines_per_second.get();
            let burst = self.config.rate_burst_lines.get();
            let mut buckets = self.buckets.lock().map_err(|_| IngestError::Worker)?;
            let bucket = buckets
                .entry(source.to_owned())
                .or_insert_with(|| Bucket::full(burst, now.as_microsecond()));
            if let Err(retry_after_s) = bucket.take(
                i64::try_from(n).unwrap_or(i64::MAX),
                now.as_microsecond(),
                rate,
                burst,
            ) {
                return Err(IngestError::RateLimited {
                    name: source.to_owned(),
                    retry_after_s,
                });
            }
        }
        let limits = Limits {
            max_line_bytes: usize::try_from(self.config.max_line_bytes.get()).unwrap_or(65_536),
            skew_us: self.config.skew_us(),
        };
        let _busy = self.busy.acquire().await.map_err(|_| IngestError::Worker)?;
        let scrubber = self.scrubber.clone();
        let owned_source = source.to_owned();
        let entries = parsed.entries;
        // Scrubbing is CPU work: off the async workers.
        let (lines, counts) = tokio::task::spawn_blocking(move || {
            let mut counts = Counts::new();
            let lines: Vec<_> = entries
                .into_iter()
                .map(|e| prepare(e, &owned_source, now, limits, &scrubber, &mut counts))
                .collect();
            (lines, counts)
        })
        .await
        .map_err(|_| IngestError::Worker)?;
        let report = Report {
            stored: lines.len(),
            clamped: lines
                .iter()
                .filter(|l| l.flags & flags::CLAMPED != 0)
                .count(),
            truncated: lines
                .iter()
                .filter(|l| l.flags & flags::TRUNCATED != 0)
                .count(),
            scrubbed: counts.total(),
            errors: parsed.errors.into_iter().map(ReportedError::from).collect(),
        };
        self.store
            .append(lines, vec![(source.to_owned(), counts)])
            .await?;
        Ok(report)
    }
}

/// A token bucket in lines: refills at `rate` per second up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    tokens: f64,
    at_us: i64,
}

impl Bucket {
    /// A full bucket at `now_us`.
    #[allow(clippy::cast_precision_loss)] // counts of lines, far below 2^52
    pub fn full(burst: i64, now_us: i64) -> Self {
        Self {
            tokens: burst as f64,
            at_us: now_us,
        }
    }

    /// Takes `n` lines at `now_us`, or says after how many seconds they would fit.
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )] // bounded values: rates and bursts are config-bounded, times are µs
    pub fn take(&mut self, n: i64, now_us: i64, rate: i64, burst: i64) -> Result<(), u64> {
        let elapsed = (now_us.saturating_sub(self.at_us)).max(0) as f64 / 1e6;
        self.tokens = (self.tokens + elapsed * rate as f64).min(burst as f64);
        self.at_us = self.at_us.max(now_us);
        let n = n as f64;
        if n <= self.tokens {
            self.tokens -= n;
            Ok(())
        } else {
            let missing = (n - self.tokens).min(burst as f64);
            Err((missing / rate.max(1) as f64).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Entry;

    #[tokio::test]
    async fn a_batch_waits_while_every_busy_slot_is_taken_then_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).await.unwrap();
        let scrubber = Scrubber::new(&rampart_scrub::ScrubConfig::default(), None).unwrap();
        let ingest = Arc::new(Ingest::new(
            store,
            Arc::new(scrubber),
            LogsConfig::default(),
            Arc::new(rampart_core::SystemClock),
        ));
        let all = u32::try_from(busy_limit()).unwrap();
        let held = ingest.busy.acquire_many(all).await.unwrap();
        let batch = || Parsed {
            entries: vec![Entry::message("mail ann@example.com")],
            errors: Vec::new(),
        };
        let waiting = tokio::spawn({
            let ingest = ingest.clone();
            async move { ingest.ingest("api", batch()).await }
        });
        // Unheld, the batch is stored in a few milliseconds; held, it waits for good.
        for _ in 0..100 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            assert!(!waiting.is_finished(), "a batch ran with no busy slot free");
        }
        drop(held);
        let report = waiting.await.unwrap().unwrap();
        assert_eq!((report.stored, report.scrubbed), (1, 1));
        ingest.store().close().await;
    }

    #[test]
    fn a_flooding_source_is_refused_then_refilled() {
        let mut bucket = Bucket::full(1000, 0);
        assert_eq!(bucket.take(800, 0, 100, 1000), Ok(()));
        assert_eq!(bucket.take(300, 0, 100, 1000), Err(1));
        // One second later 100 lines came back.
        assert_eq!(bucket.take(300, 1_000_000, 100, 1000), Ok(()));
        assert_eq!(bucket.take(1, 1_000_000, 100, 1000), Err(1));
        // A clock going backwards refills nothing.
        assert!(bucket.take(50, 0, 100, 1000).is_err());
    }
}
