//! The SSH bastion (ENC-3, ACC-5, ACC-6, LOG-3): the stock OpenSSH client connects as
//! `person:target` (or `person#target`, `person:login@target`), proves a registered public
//! key and then a TOTP code by keyboard-interactive, and is relayed to the target, to which
//! rampart connects as an SSH client with a certificate its user CA signed for this session
//! only (principal = the login, key id = `rampart:PERSON:SESSION`).
//!
//! Invariants:
//! - A session starts only with a [`rampart_access::Permit`] and only after its start record
//!   is in the audit log (fail closed); the permit's expiry ends it.
//! - Clients learn nothing beyond "access denied"; the audit log gets the reason.
//! - Terminal output and input pass through the scrubber before a recording line is written,
//!   and each line is sealed under the master key.
//! - Every size and every wait is bounded: the user name, the handshake, the auth attempts,
//!   the channel windows and buffers, the idle time and the session length.

pub mod config;
mod conn;
pub mod keys;
pub mod reach;
pub mod recording;
mod relay;
pub mod server;
mod session;
pub mod sftp;
mod upstream;
pub mod user;

pub use config::SshConfig;
pub use russh::keys::PrivateKey;
pub use server::{Bastion, BastionParts, serve, server_config};
pub use upstream::UpstreamError;
