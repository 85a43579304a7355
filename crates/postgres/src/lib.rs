//! The PostgreSQL gateway (ACC-5, LOG-3, LOG-4, LOG-2): any libpq client connects with TLS
//! as `person#target` and a short-lived database token; rampart authorizes the person for
//! the target and the database role the token names, logs in upstream with that role's
//! credentials (sealed at rest), and relays the protocol unchanged.
//!
//! Every statement (a simple query's statements, or an extended-protocol Execute) becomes
//! an audit record holding its normalized text ([`sql::normalize`]: literals become `$n`,
//! so no value is stored; Bind values are never read), class, fingerprint, command tag,
//! row count, duration and SQLSTATE. Writes, DDL and privilege changes are `db.change`
//! records (LOG-4), everything else `db.statement`.
//!
//! Invariants: a client never receives `ReadyForQuery` for a statement before that
//! statement's audit record is committed (fail closed: if the audit log cannot be written,
//! the connection ends with an error instead); nothing the client or upstream sends can
//! make the gateway panic or buffer without bound (every message has a size limit, and a
//! result is streamed message by message, with the client's reading pace as backpressure).

pub mod codec;
#[cfg(feature = "gateway")]
pub mod config;
#[cfg(feature = "gateway")]
pub mod credential;
#[cfg(feature = "gateway")]
pub mod gateway;
#[cfg(feature = "gateway")]
pub mod relay;
pub mod sql;
#[cfg(feature = "gateway")]
pub mod token;
#[cfg(feature = "gateway")]
pub mod upstream;

#[cfg(feature = "gateway")]
pub use config::PostgresConfig;
#[cfg(feature = "gateway")]
pub use gateway::Gateway;
