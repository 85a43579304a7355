//! The `[policy]` section of `rampart.toml`: MFA, sessions and lockout.

use rampart_core::Bounded;
use serde::Deserialize;

use crate::session::SessionPolicy;
use crate::throttle::ThrottlePolicy;

/// Whether a second factor is demanded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MfaPolicy {
    /// People and third parties must enroll and use a second factor (ACC-2).
    #[default]
    Required,
    /// A second factor is offered, not demanded. The report shows ACC-2 as failing.
    Optional,
}

/// What happens to a grant whose review is still open at the campaign's deadline (ACC-7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ReviewMissed {
    /// The grant is removed (default): nobody vouched for it.
    #[default]
    Revoke,
    /// The grant stays and the item is flagged in the campaign and the report.
    Flag,
}

impl ReviewMissed {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Revoke => "revoke",
            Self::Flag => "flag",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "revoke" => Some(Self::Revoke),
            "flag" => Some(Self::Flag),
            _ => None,
        }
    }
}

/// Authentication policy.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// `required` (default) or `optional`.
    pub mfa: MfaPolicy,
    /// Minutes without a request after which a session ends (5–240).
    pub session_idle_minutes: Bounded<5, 240>,
    /// Hours after login after which a session ends whatever happens (1–24).
    pub session_absolute_hours: Bounded<1, 24>,
    /// Failed checks before an account or address is locked (3–20).
    pub lockout_failures: Bounded<3, 20>,
    /// Length of the first lock in seconds; each further failure doubles it (10–3600).
    pub lockout_seconds: Bounded<10, 3600>,
    /// Longest grant a third-party account may hold, in hours (1–168). A third party never
    /// holds a standing grant: one without expiry is refused (EXT-1).
    pub third_party_grant_hours: Bounded<1, 168>,
    /// Longest grant an access request may ask for, in hours (1–168).
    pub request_max_hours: Bounded<1, 168>,
    /// Approvals, by people other than the requester, that grant a request (1–3).
    pub request_approvals: Bounded<1, 3>,
    /// Hours a request waits for approvals before it lapses (1–168).
    pub request_pending_hours: Bounded<1, 168>,
    /// Days between access review campaigns (1–365, ACC-7).
    pub review_interval_days: Bounded<1, 365>,
    /// Days a campaign stays open for decisions (1–90).
    pub review_days: Bounded<1, 90>,
    /// What happens to a grant still undecided at the deadline: `revoke` (default) or `flag`.
    pub review_missed: ReviewMissed,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            mfa: MfaPolicy::Required,
            session_idle_minutes: Bounded::clamped(30),
            session_absolute_hours: Bounded::clamped(12),
            lockout_failures: Bounded::clamped(5),
            lockout_seconds: Bounded::clamped(60),
            third_party_grant_hours: Bounded::clamped(8),
            request_max_hours: Bounded::clamped(8),
            request_approvals: Bounded::clamped(1),
            request_pending_hours: Bounded::clamped(24),
            review_interval_days: Bounded::clamped(30),
            review_days: Bounded::clamped(7),
            review_missed: ReviewMissed::Revoke,
        }
    }
}

impl PolicyConfig {
    /// Session lifetimes.
    pub fn sessions(&self) -> SessionPolicy {
        SessionPolicy {
            idle_secs: self.session_idle_minutes.get() * 60,
            absolute_secs: self.session_absolute_hours.get() * 3600,
        }
    }

    /// Lockout rules.
    pub fn throttle(&self) -> ThrottlePolicy {
        ThrottlePolicy {
            max_failures: u32::try_from(self.lockout_failures.get()).unwrap_or(5),
            base_lock_secs: self.lockout_seconds.get(),
            ..ThrottlePolicy::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let p = PolicyConfig::default();
        assert_eq!(p.mfa, MfaPolicy::Required);
        assert_eq!(p.sessions(), SessionPolicy::default());
        assert_eq!(p.throttle(), ThrottlePolicy::default());
    }
}
