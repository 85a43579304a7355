//! Unusual hours: what each account's accesses (web sessions, SSH logins, database
//! sessions) look like by hour of the day, in UTC. An access at an hour with no access of
//! that account within an hour either side, once the account has a history of at least
//! `min_accesses` accesses over `min_days` different days, is unusual. Every access is
//! learned afterwards, so a new habit fires once and then becomes usual.

use std::collections::BTreeMap;

const HOUR_US: i64 = 3_600_000_000;
const DAY_US: i64 = 24 * HOUR_US;

/// Accesses per hour of the day, per account.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Hours {
    accounts: BTreeMap<String, Profile>,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    by_hour: [u32; 24],
    accesses: u32,
    days: u32,
    last_day: Option<i64>,
}

/// The limits of the rule.
#[derive(Debug, Clone, Copy)]
pub(super) struct Learned {
    pub min_accesses: u32,
    pub min_days: u32,
}

impl Hours {
    /// Takes an access of `account` at `time_us`; returns its UTC hour when it is unusual.
    /// `max_accounts` bounds the accounts tracked (the first in order is dropped).
    pub(super) fn observe(
        &mut self,
        account: &str,
        time_us: i64,
        limits: Learned,
        max_accounts: usize,
    ) -> Option<u8> {
        if !self.accounts.contains_key(account) && self.accounts.len() >= max_accounts {
            self.accounts.pop_first();
        }
        let profile = self.accounts.entry(account.to_owned()).or_default();
        let hour = hour_of(time_us);
        let day = time_us.div_euclid(DAY_US);
        let known = profile.accesses >= limits.min_accesses && profile.days >= limits.min_days;
        let unusual = known && profile.near(hour) == 0;
        if let Some(slot) = profile.by_hour.get_mut(usize::from(hour)) {
            *slot = slot.saturating_add(1);
        }
        profile.accesses = profile.accesses.saturating_add(1);
        if profile.last_day != Some(day) {
            profile.days = profile.days.saturating_add(1);
            profile.last_day = Some(day);
        }
        unusual.then_some(hour)
    }
}

impl Profile {
    /// Accesses in `hour` and the hours either side (wrapping at midnight).
    fn near(&self, hour: u8) -> u32 {
        [23, 0, 1]
            .iter()
            .map(|d| usize::from((hour + d) % 24))
            .filter_map(|h| self.by_hour.get(h))
            .sum()
    }
}

/// The hour of the day (UTC) of a time in microseconds.
pub(super) fn hour_of(time_us: i64) -> u8 {
    u8::try_from(time_us.div_euclid(HOUR_US).rem_euclid(24)).unwrap_or(0)
}
