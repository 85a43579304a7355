//! The `[logs]` section of `rampart.toml`.

use std::net::SocketAddr;
use std::path::PathBuf;

use rampart_core::Bounded;
use serde::{Deserialize, Deserializer};

/// Days application logs are kept: the security page's bound (LOG-5), in the type.
pub type RetentionDays = Bounded<15, 30>;

/// The `[logs]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    /// Days a stored day of logs is kept before it is purged (15 to 30, LOG-5).
    #[serde(deserialize_with = "retention")]
    pub retention_days: RetentionDays,
    /// Folder of the day files; absent: `logs/` in the data directory.
    pub dir: Option<PathBuf>,
    /// Longest message kept, in bytes; longer ones are cut and marked (1 KiB to 1 MiB).
    pub max_line_bytes: Bounded<1024, 1_048_576>,
    /// Lines per second one source may send on average (100 to 10,000,000).
    pub rate_lines_per_second: Bounded<100, 10_000_000>,
    /// Lines one source may send at once above its rate (1,000 to 100,000,000).
    pub rate_burst_lines: Bounded<1000, 100_000_000>,
    /// Minutes a line's own timestamp may differ from the time it was received before it is
    /// clamped to the receive time and flagged (1 to 1440).
    pub clock_skew_minutes: Bounded<1, 1440>,
    /// Largest ingest request body, in KiB (64 KiB to 64 MiB).
    pub max_body_kib: Bounded<64, 65_536>,
    /// Address of the syslog-over-TLS listener (RFC 5425); absent: no listener.
    pub syslog_listen: Option<SocketAddr>,
    /// Alert rules and where their notifications go.
    pub alerts: crate::alert::AlertsConfig,
}

impl Default for LogsConfig {
    fn default() -> Self {
        Self {
            retention_days: RetentionDays::clamped(30),
            dir: None,
            max_line_bytes: Bounded::clamped(64 * 1024),
            rate_lines_per_second: Bounded::clamped(200_000),
            rate_burst_lines: Bounded::clamped(1_000_000),
            clock_skew_minutes: Bounded::clamped(60),
            max_body_kib: Bounded::clamped(16 * 1024),
            syslog_listen: None,
            alerts: crate::alert::AlertsConfig::default(),
        }
    }
}

impl LogsConfig {
    /// The clamp window in microseconds.
    pub fn skew_us(&self) -> i64 {
        self.clock_skew_minutes.get().saturating_mul(60_000_000)
    }
}

/// Retention outside 15..=30 is refused with a sentence naming the page's bound.
fn retention<'de, D: Deserializer<'de>>(d: D) -> Result<RetentionDays, D::Error> {
    let value = i64::deserialize(d)?;
    RetentionDays::new(value).map_err(|e| {
        serde::de::Error::custom(format!(
            "logs.retention_days = {} is not allowed: the security page keeps application logs from {} to {} days (LOG-5)",
            e.value, e.lo, e.hi
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct File {
        logs: LogsConfig,
    }

    fn parse(text: &str) -> Result<LogsConfig, String> {
        toml_like(text)
    }

    // The crate does not depend on toml: JSON has the same serde shape for these tests.
    fn toml_like(json: &str) -> Result<LogsConfig, String> {
        serde_json::from_str::<File>(json)
            .map(|f| f.logs)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn retention_of_14_or_31_days_is_refused_naming_the_bound() {
        for days in [14, 31, 0, -1, 365] {
            let err = parse(&format!(r#"{{"logs": {{"retention_days": {days}}}}}"#))
                .err()
                .unwrap_or_default();
            assert!(err.contains("from 15 to 30 days (LOG-5)"), "{days}: {err}");
        }
        for days in [15, 21, 30] {
            let config = parse(&format!(r#"{{"logs": {{"retention_days": {days}}}}}"#));
            assert_eq!(config.map(|c| c.retention_days.get()), Ok(days));
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(parse(r#"{"logs": {"retention": 20}}"#).is_err());
    }
}
