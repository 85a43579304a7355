//! Throttling and lockout of failed credential checks, per account and per address.
//!
//! The state is counted on failed *credential* checks (a wrong password or code), never on
//! policy refusals, and the same rules apply to both keys, so an attacker spraying one
//! password over many accounts from one address is stopped as surely as one guessing many
//! passwords for one account.

/// When failures lock, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures allowed before a lock.
    pub max_failures: u32,
    /// The first lock's length; each further failure doubles it.
    pub base_lock_secs: i64,
    /// The longest lock.
    pub max_lock_secs: i64,
    /// Failures older than this are forgotten.
    pub window_secs: i64,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            base_lock_secs: 60,
            max_lock_secs: 3600,
            window_secs: 900,
        }
    }
}

/// What is remembered for one key (an account or an address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailureState {
    /// Consecutive failures inside the window.
    pub failures: u32,
    /// Time of the last failure, seconds since the epoch.
    pub last_failure: i64,
    /// Locked until this time, seconds since the epoch (0: not locked).
    pub locked_until: i64,
}

/// A key is locked until a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("locked until {until} (seconds since the epoch)")]
pub struct Locked {
    /// When it opens again.
    pub until: i64,
}

impl ThrottlePolicy {
    /// Whether an attempt may be made now.
    pub fn check(&self, state: &FailureState, now: i64) -> Result<(), Locked> {
        if state.locked_until > now {
            Err(Locked {
                until: state.locked_until,
            })
        } else {
            Ok(())
        }
    }

    /// The state after a failed check at `now`, and whether this failure started a lock.
    pub fn on_failure(&self, state: &FailureState, now: i64) -> (FailureState, bool) {
        let failures = if now - state.last_failure > self.window_secs {
            1
        } else {
            state.failures.saturating_add(1)
        };
        let mut next = FailureState {
            failures,
            last_failure: now,
            locked_until: state.locked_until,
        };
        if failures >= self.max_failures {
            let doublings = (failures - self.max_failures).min(20);
            let secs = self
                .base_lock_secs
                .saturating_mul(1_i64 << doublings)
                .min(self.max_lock_secs);
            next.locked_until = now + secs;
            return (next, true);
        }
        (next, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fifth_failure_locks_and_later_ones_lock_longer() {
        let p = ThrottlePolicy::default();
        let mut s = FailureState::default();
        for i in 1..=4 {
            let (next, locked) = p.on_failure(&s, 1000 + i);
            assert!(!locked);
            s = next;
        }
        assert!(p.check(&s, 1005).is_ok());
        let (s5, locked) = p.on_failure(&s, 1005);
        assert!(locked);
        assert_eq!(p.check(&s5, 1006), Err(Locked { until: 1065 }));
        assert!(p.check(&s5, 1065).is_ok());
        let (s6, _) = p.on_failure(&s5, 1070);
        assert_eq!(s6.locked_until, 1070 + 120);
    }

    #[test]
    fn failures_outside_the_window_are_forgotten() {
        let p = ThrottlePolicy::default();
        let s = FailureState {
            failures: 4,
            last_failure: 0,
            locked_until: 0,
        };
        let (next, locked) = p.on_failure(&s, 10_000);
        assert!(!locked);
        assert_eq!(next.failures, 1);
    }

    #[test]
    fn locks_are_capped() {
        let p = ThrottlePolicy::default();
        let s = FailureState {
            failures: 40,
            last_failure: 100,
            locked_until: 0,
        };
        let (next, _) = p.on_failure(&s, 100);
        assert_eq!(next.locked_until, 100 + 3600);
    }
}
