//! Server-side sessions: lifetimes and what a session may do.

/// How long sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Ended after this long without a request.
    pub idle_secs: i64,
    /// Ended this long after login, whatever happens.
    pub absolute_secs: i64,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle_secs: 30 * 60,
            absolute_secs: 12 * 3600,
        }
    }
}

/// How far a login has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The password was right; a second factor is due.
    PasswordOk,
    /// The account has no second factor yet and must enroll one before anything else.
    MustEnroll,
    /// The login is complete.
    Complete,
}

impl Stage {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PasswordOk => "password_ok",
            Self::MustEnroll => "must_enroll",
            Self::Complete => "complete",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "password_ok" => Some(Self::PasswordOk),
            "must_enroll" => Some(Self::MustEnroll),
            "complete" => Some(Self::Complete),
            _ => None,
        }
    }
}

impl SessionPolicy {
    /// Whether a session created at `created` and last used at `last_seen` is still live.
    /// Sessions short of `Complete` get at most five minutes.
    pub fn is_live(&self, stage: Stage, created: i64, last_seen: i64, now: i64) -> bool {
        let absolute = match stage {
            Stage::Complete => self.absolute_secs,
            Stage::PasswordOk | Stage::MustEnroll => self.absolute_secs.min(300),
        };
        now - last_seen < self.idle_secs && now - created < absolute
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_and_absolute_timeouts_end_sessions() {
        let p = SessionPolicy::default();
        assert!(p.is_live(Stage::Complete, 0, 0, 29 * 60));
        assert!(!p.is_live(Stage::Complete, 0, 0, 30 * 60));
        assert!(p.is_live(Stage::Complete, 0, 12 * 3600 - 10, 12 * 3600 - 1));
        assert!(!p.is_live(Stage::Complete, 0, 12 * 3600 - 10, 12 * 3600));
    }

    #[test]
    fn half_done_logins_expire_after_five_minutes() {
        let p = SessionPolicy::default();
        assert!(p.is_live(Stage::PasswordOk, 0, 0, 299));
        assert!(!p.is_live(Stage::PasswordOk, 0, 0, 300));
    }
}
