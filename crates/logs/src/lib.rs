//! Application logs (LOG-1, LOG-2, LOG-5): rampart as the place where a company's
//! services send their logs.
//!
//! Data path: a request body goes to a pure parser ([`parse`]: NDJSON, Loki push JSON and
//! protobuf, syslog RFC 5424/3164 with RFC 5425 framing), which returns the entries it
//! could read and a per-line error for the others; [`record::prepare`] cuts long messages,
//! clamps far timestamps to the receive time and scrubs every message and field; the
//! [`LogStore`] writes a batch in one transaction per UTC day file, with its word index
//! ([`index`]: a Bloom filter per chunk of lines, each candidate line checked exactly).
//! [`alert`] holds the alert rules and their pure decision, [`chart`] the histogram SVG.
//!
//! Invariants:
//! - nothing reaches the disk unscrubbed: [`Ingest`], the one way in for every transport,
//!   builds each stored line with [`record::prepare`], which scrubs message and fields;
//! - parsers are pure and never panic; a bad line never rejects its neighbours;
//! - retention is a `Bounded<15, 30>`: a config outside the page's bound does not load, and
//!   [`store::plan_purge`] never removes a day younger than 15 days;
//! - time comes in as an argument or from a [`rampart_core::Clock`], never from `now()`.

pub mod alert;
pub mod chart;
pub mod config;
pub mod index;
pub mod ingest;
pub mod parse;
pub mod record;
pub mod store;

pub use config::{LogsConfig, RetentionDays};
pub use ingest::{Ingest, IngestError, Report};
pub use record::{BadSourceName, Entry, Level, Line, LineError, Parsed, SourceName};
pub use store::{LogError, LogStore, PurgePlan, Query, StoredLine, plan_purge};
