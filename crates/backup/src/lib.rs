//! Database backups (BAK-1..5): the page's four tiers, encrypted, verified, access audited.
//!
//! - [`config`]: the `[backup]` section; the page's bounds are in its types.
//! - [`plan`]: the pure retention planner, `plan(backups, policy, now) -> Plan`.
//! - [`source`]: `pg_dump` at an exported snapshot with row counts, SQLite, commands.
//! - [`pipeline`]: the streaming dump → zstd → age → SHA-256 → storage path, and back.
//! - [`storage`]: a directory or an S3-compatible bucket.
//! - [`jobs`]: run, list, plan, prune, pin, verify, restore, each audited.
//! - [`drill`]: restore the newest backup into a throwaway cluster and compare row counts.
//! - [`schedule`]: the base backup every interval in `rampart serve`, once per cluster.
//!
//! Invariants: rampart holds only age public keys, so nothing it stores can decrypt a
//! backup; a catalog row exists only for an object that is complete and whose SHA-256 is
//! recorded; pruning deletes only what the plan says; the planner never deletes a pinned
//! backup, the newest good or verified backup of a source, or one a tier still needs.

pub mod chart;
pub mod config;
pub mod drill;
pub mod jobs;
pub mod keys;
pub mod pgarchive;
pub mod pipeline;
pub mod plan;
pub mod schedule;
pub mod source;
pub mod storage;

pub use config::{BackupConfig, BackupConfigError, RetentionPolicy, Rule};
pub use jobs::{Backups, RestoreTarget, RunResult};
pub use plan::{Backup, Decision, Plan, Reason, Status, Verdict, Verification, plan};

/// A failure of a backup operation, as one sentence.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackupError {
    /// No age recipient is configured.
    #[error(
        "backup.recipients is empty: run `rampart backup keygen`, keep the identity file offline, and add the public key it prints to backup.recipients"
    )]
    NoRecipients,
    /// The source (pg_dump, the SQLite copy, the command) failed.
    #[error("the source failed: {0}")]
    Source(String),
    /// The storage could not be reached or refused the object.
    #[error("the backup storage failed: {0}")]
    Storage(String),
    /// A catalogued object is missing from storage.
    #[error("MISSING: {0}")]
    Missing(String),
    /// The object does not match the SHA-256 recorded when it was written.
    #[error(
        "ALTERED: the object {key} does not match its catalogued SHA-256 (expected {expected}, found {found})"
    )]
    HashMismatch {
        /// The object.
        key: String,
        /// Catalogued.
        expected: String,
        /// Read back.
        found: String,
    },
    /// The object does not decrypt or decompress.
    #[error("the backup cannot be read: {0}")]
    Corrupt(String),
    /// None of the given identities is a recipient of the backup.
    #[error(
        "the identity file does not hold a key this backup was encrypted to: use the identity whose public key is in backup.recipients"
    )]
    WrongIdentity,
    /// The restore target failed.
    #[error("the restore target failed: {0}")]
    Sink(String),
    /// No such backup or source.
    #[error("{0}")]
    NotFound(String),
    /// The catalog could not be read or written.
    #[error("the catalog failed: {0}")]
    Store(String),
    /// A bug or a lost task.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<rampart_store::StoreError> for BackupError {
    fn from(e: rampart_store::StoreError) -> Self {
        match e {
            rampart_store::StoreError::NotFound(what) => {
                Self::NotFound(format!("{what} not found"))
            }
            other => Self::Store(other.to_string()),
        }
    }
}

/// Text from outside (a program's stderr) scrubbed before it reaches the audit log.
pub(crate) fn scrubbed(text: &str) -> String {
    rampart_scrub::scrub_default(text)
}
