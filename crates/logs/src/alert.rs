//! Alert rules on application logs (LOG-1: "monitored … to prevent and understand
//! failures"): an error rate above a threshold for a source over a window, a source silent
//! for N minutes, a pattern seen. Rules are config; deciding is pure ([`decide`]); the
//! serving side measures, keeps the firing state in the store (de-duplication), audits each
//! change and sends signed webhooks for firing and resolved.

use std::path::PathBuf;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::record::SourceName;

/// The `[logs.alerts]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Seconds between evaluations (1 to 3600).
    pub every_seconds: rampart_core::Bounded<1, 3600>,
    /// URL that receives a JSON POST for each alert firing or resolved.
    pub webhook_url: Option<String>,
    /// File holding the HMAC-SHA-256 key of the `X-Rampart-Signature` header.
    pub webhook_secret_file: Option<PathBuf>,
    /// The rules.
    pub rules: Vec<Rule>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            every_seconds: rampart_core::Bounded::clamped(30),
            webhook_url: None,
            webhook_secret_file: None,
            rules: Vec::new(),
        }
    }
}

/// One rule, checked at load.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawRule")]
pub struct Rule {
    /// Unique name, shown and sent.
    pub name: String,
    /// The source watched; `None`: each source separately.
    pub source: Option<SourceName>,
    /// What is watched.
    pub kind: RuleKind,
}

/// What a rule watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleKind {
    /// At least `threshold` lines of level error or worse within `window_minutes`.
    ErrorRate {
        /// Lines.
        threshold: i64,
        /// Minutes.
        window_minutes: i64,
    },
    /// No line received for `minutes`.
    Silence {
        /// Minutes.
        minutes: i64,
    },
    /// Lines holding every word of `pattern` within `window_minutes`.
    Pattern {
        /// Words.
        pattern: String,
        /// Minutes.
        window_minutes: i64,
    },
}

impl RuleKind {
    /// The kind's name in config and payloads.
    pub fn as_str(&self) -> &'static str {
        match self {
            RuleKind::ErrorRate { .. } => "error_rate",
            RuleKind::Silence { .. } => "silence",
            RuleKind::Pattern { .. } => "pattern",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    kind: String,
    source: Option<String>,
    threshold: Option<i64>,
    window_minutes: Option<i64>,
    minutes: Option<i64>,
    pattern: Option<String>,
}

impl TryFrom<RawRule> for Rule {
    type Error = String;

    fn try_from(raw: RawRule) -> Result<Self, String> {
        let name = raw.name;
        if name.is_empty() || name.len() > 64 {
            return Err("an alert rule name is 1 to 64 characters".into());
        }
        let source = raw
            .source
            .map(|s| SourceName::parse(&s))
            .transpose()
            .map_err(|e| format!("alert rule {name}: {e}"))?;
        let minutes = |value: Option<i64>, key: &str| -> Result<i64, String> {
            match value {
                Some(m) if (1..=1440).contains(&m) => Ok(m),
                Some(m) => Err(format!(
                    "alert rule {name}: {key} = {m} is not allowed: use 1 to 1440"
                )),
                None => Err(format!("alert rule {name} needs {key}")),
            }
        };
        let kind = match raw.kind.as_str() {
            "error_rate" => RuleKind::ErrorRate {
                threshold: match raw.threshold {
                    Some(t) if t >= 1 => t,
                    _ => return Err(format!("alert rule {name} needs threshold >= 1")),
                },
                window_minutes: minutes(raw.window_minutes, "window_minutes")?,
            },
            "silence" => {
                if source.is_none() {
                    return Err(format!("alert rule {name}: a silence rule needs a source"));
                }
                RuleKind::Silence {
                    minutes: minutes(raw.minutes, "minutes")?,
                }
            }
            "pattern" => RuleKind::Pattern {
                pattern: raw
                    .pattern
                    .filter(|p| !p.trim().is_empty() && p.len() <= 256)
                    .ok_or_else(|| {
                        format!("alert rule {name} needs a pattern of 1 to 256 characters")
                    })?,
                window_minutes: minutes(raw.window_minutes, "window_minutes")?,
            },
            other => {
                return Err(format!(
                    "alert rule {name}: kind {other:?} is not one of error_rate, silence, pattern"
                ));
            }
        };
        Ok(Rule { name, source, kind })
    }
}

/// What was measured for one rule and source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Matching lines in the window.
    Count(i64),
    /// Receive time (µs) of the source's last line, if it ever sent one.
    LastSeen(Option<i64>),
}

/// Whether the rule fires on this measure at `now_us`.
pub fn decide(kind: &RuleKind, measure: Measure, now_us: i64) -> bool {
    match (kind, measure) {
        (RuleKind::ErrorRate { threshold, .. }, Measure::Count(n)) => n >= *threshold,
        (RuleKind::Pattern { .. }, Measure::Count(n)) => n >= 1,
        (RuleKind::Silence { minutes }, Measure::LastSeen(last)) => {
            let quiet_since = now_us.saturating_sub(minutes.saturating_mul(60_000_000));
            last.is_none_or(|t| t < quiet_since)
        }
        _ => false,
    }
}

/// The signature header value for a body: `sha256=` and the hex HMAC-SHA-256.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this arm is unreachable in practice.
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: &str) -> Result<Rule, String> {
        serde_json::from_str::<Rule>(json).map_err(|e| e.to_string())
    }

    #[test]
    fn rules_are_checked_at_load() {
        assert!(
            rule(r#"{"name":"e","kind":"error_rate","threshold":5,"window_minutes":5}"#).is_ok()
        );
        assert!(
            rule(r#"{"name":"s","kind":"silence","minutes":10}"#)
                .unwrap_err()
                .contains("needs a source")
        );
        assert!(rule(r#"{"name":"p","kind":"pattern","window_minutes":5}"#).is_err());
        assert!(rule(r#"{"name":"x","kind":"bogus"}"#).is_err());
        assert!(
            rule(r#"{"name":"e","kind":"error_rate","threshold":5,"window_minutes":0}"#).is_err()
        );
    }

    #[test]
    fn decisions() {
        let rate = RuleKind::ErrorRate {
            threshold: 3,
            window_minutes: 5,
        };
        assert!(decide(&rate, Measure::Count(3), 0));
        assert!(!decide(&rate, Measure::Count(2), 0));
        let quiet = RuleKind::Silence { minutes: 10 };
        let now = 100 * 60_000_000;
        assert!(decide(&quiet, Measure::LastSeen(None), now));
        assert!(decide(
            &quiet,
            Measure::LastSeen(Some(now - 11 * 60_000_000)),
            now
        ));
        assert!(!decide(
            &quiet,
            Measure::LastSeen(Some(now - 60_000_000)),
            now
        ));
    }

    #[test]
    fn signature_is_the_hex_hmac_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
