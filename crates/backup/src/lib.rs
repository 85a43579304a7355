//! Database backups (BAK-1..5): the page's four tiers, encrypted, verified, access audited.
//!
//! - [`config`]: the `[backup]` section; the page's bounds are in its types.
//! - [`plan`]: the pure retention planner, `plan(backups, policy, now) -> Plan`.
//!
//! Invariants: rampart holds only age public keys, so nothing it stores can decrypt a
//! backup; a catalog row exists only for an object that is complete and whose SHA-256 is
//! recorded; pruning deletes only what the plan says; the planner never deletes a pinned
//! backup, the newest good or verified backup of a source, or one a tier still needs.

pub mod config;
pub mod plan;

pub use config::{BackupConfig, BackupConfigError, RetentionPolicy, Rule};
pub use plan::{Backup, Decision, Plan, Reason, Status, Verdict, Verification, plan};
