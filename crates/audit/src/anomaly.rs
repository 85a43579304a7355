//! Anomaly rules over the audit stream (ACC-7): pure, fed one record at a time in chain
//! order, each alert naming the records behind it.
//!
//! - **Failed-login burst**: [`Thresholds::burst_failures`] failed or refused logins (web
//!   password or code, SSH) for one account, or from one address, within
//!   [`Thresholds::burst_window_us`]. Fires once per window and key.
//! - **New address**: a complete login (web session start, SSH login) of an account from
//!   an address it never logged in from, when it has logged in before.
//! - **First access to a target**: an SSH or database session of an account on a target it
//!   never reached, when it has reached others before.
//! - **Session by a disabled account**: any session start by an account whose last
//!   `user.disable` is not followed by a `user.enable` (must never happen).
//!
//! Alerts themselves are audit records (`anomaly.alert`); the detector skips them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::AuditRecord;

/// The rules' limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Failures in the window that make a burst.
    pub burst_failures: usize,
    /// The window, in microseconds.
    pub burst_window_us: i64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            burst_failures: 5,
            burst_window_us: 10 * 60 * 1_000_000,
        }
    }
}

/// Which rule fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    /// Many failed logins for one account.
    FailedLoginsAccount,
    /// Many failed logins from one address.
    FailedLoginsAddress,
    /// A login from an address never seen for the account.
    NewAddress,
    /// A session to a target the account never reached.
    FirstTarget,
    /// A session by a disabled account.
    DisabledSession,
}

impl Rule {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FailedLoginsAccount => "failed_logins_account",
            Self::FailedLoginsAddress => "failed_logins_address",
            Self::NewAddress => "new_address",
            Self::FirstTarget => "first_target",
            Self::DisabledSession => "disabled_session",
        }
    }
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// The rule.
    pub rule: Rule,
    /// The account or address it is about.
    pub subject: String,
    /// One sentence.
    pub summary: String,
    /// The records behind it.
    pub seqs: Vec<u64>,
}

/// Longest history kept per account (addresses, targets).
const MAX_SEEN: usize = 1000;

/// Most keys tracked for bursts (oldest dropped first).
const MAX_KEYS: usize = 100_000;

/// The rules' state.
#[derive(Debug, Default)]
pub struct Detector {
    limits: Thresholds,
    failures: BTreeMap<(Rule, String), VecDeque<(i64, u64)>>,
    fired: BTreeMap<(Rule, String), i64>,
    addresses: BTreeMap<String, BTreeSet<String>>,
    targets: BTreeMap<String, BTreeSet<String>>,
    disabled: BTreeSet<String>,
}

fn user(actor: &str) -> Option<&str> {
    actor.strip_prefix("user:")
}

impl Detector {
    /// A detector with these limits.
    pub fn new(limits: Thresholds) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Takes the next record; returns the alerts it raises.
    pub fn observe(&mut self, r: &AuditRecord) -> Vec<Alert> {
        let mut alerts = Vec::new();
        let ok = r.outcome == "success";
        match r.action.as_str() {
            "user.disable" if ok => {
                self.disabled.insert(r.subject.clone());
            }
            "user.enable" if ok => {
                self.disabled.remove(&r.subject);
            }
            "login.password" | "login.mfa" | "ssh.login" if !ok => {
                self.failure(r, Rule::FailedLoginsAccount, &r.subject, &mut alerts);
                if !r.source.is_empty() {
                    self.failure(r, Rule::FailedLoginsAddress, &r.source, &mut alerts);
                }
            }
            "session.start" | "ssh.login" if ok => {
                self.disabled_session(r, &mut alerts);
                self.login(r, &mut alerts);
            }
            "ssh.session.start" | "db.session.start" if ok => {
                self.disabled_session(r, &mut alerts);
                self.target(r, &mut alerts);
            }
            _ => {}
        }
        alerts
    }

    fn failure(&mut self, r: &AuditRecord, rule: Rule, key: &str, alerts: &mut Vec<Alert>) {
        if key.is_empty() {
            return;
        }
        let window = self.limits.burst_window_us;
        let id = (rule, key.to_owned());
        if !self.failures.contains_key(&id) && self.failures.len() >= MAX_KEYS {
            self.failures.pop_first();
        }
        let seen = self.failures.entry(id.clone()).or_default();
        seen.push_back((r.time_us, r.seq));
        while seen
            .front()
            .is_some_and(|(t, _)| *t <= r.time_us.saturating_sub(window))
        {
            seen.pop_front();
        }
        if seen.len() < self.limits.burst_failures {
            return;
        }
        // Once per window and key.
        if self
            .fired
            .get(&id)
            .is_some_and(|at| *at > r.time_us.saturating_sub(window))
        {
            return;
        }
        if !self.fired.contains_key(&id) && self.fired.len() >= MAX_KEYS {
            self.fired.pop_first();
        }
        self.fired.insert(id, r.time_us);
        let what = match rule {
            Rule::FailedLoginsAddress => format!("from address {key}"),
            _ => format!("for account {key}"),
        };
        alerts.push(Alert {
            rule,
            subject: key.to_owned(),
            summary: format!(
                "{} failed logins {what} within {} minutes",
                seen.len(),
                window / 60_000_000
            ),
            seqs: seen.iter().map(|(_, s)| *s).collect(),
        });
    }

    fn disabled_session(&mut self, r: &AuditRecord, alerts: &mut Vec<Alert>) {
        let Some(account) = user(&r.actor) else {
            return;
        };
        if self.disabled.contains(account) {
            alerts.push(Alert {
                rule: Rule::DisabledSession,
                subject: account.to_owned(),
                summary: format!(
                    "{} by the disabled account {account} (must never happen)",
                    r.action
                ),
                seqs: vec![r.seq],
            });
        }
    }

    fn login(&mut self, r: &AuditRecord, alerts: &mut Vec<Alert>) {
        let Some(account) = user(&r.actor) else {
            return;
        };
        if r.source.is_empty() {
            return;
        }
        let seen = self.addresses.entry(account.to_owned()).or_default();
        if seen.contains(&r.source) {
            return;
        }
        if !seen.is_empty() {
            alerts.push(Alert {
                rule: Rule::NewAddress,
                subject: account.to_owned(),
                summary: format!("{account} logged in from {}, never seen for it", r.source),
                seqs: vec![r.seq],
            });
        }
        if seen.len() < MAX_SEEN {
            seen.insert(r.source.clone());
        }
    }

    fn target(&mut self, r: &AuditRecord, alerts: &mut Vec<Alert>) {
        let Some(account) = user(&r.actor) else {
            return;
        };
        let seen = self.targets.entry(account.to_owned()).or_default();
        if seen.contains(&r.subject) {
            return;
        }
        if !seen.is_empty() {
            alerts.push(Alert {
                rule: Rule::FirstTarget,
                subject: account.to_owned(),
                summary: format!("{account} reached {} for the first time", r.subject),
                seqs: vec![r.seq],
            });
        }
        if seen.len() < MAX_SEEN {
            seen.insert(r.subject.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    const MIN: i64 = 60_000_000;

    /// A scripted record: `(minute, actor, action, subject, outcome, source)`.
    fn script(lines: &[(i64, &str, &str, &str, &str, &str)]) -> Vec<AuditRecord> {
        lines
            .iter()
            .enumerate()
            .map(
                |(i, (min, actor, action, subject, outcome, source))| AuditRecord {
                    seq: i as u64 + 1,
                    time_us: 1_800_000_000_000_000 + min * MIN,
                    actor: (*actor).into(),
                    action: (*action).into(),
                    subject: (*subject).into(),
                    outcome: (*outcome).into(),
                    source: (*source).into(),
                    details: "{}".into(),
                    prev_hash: String::new(),
                    hash: String::new(),
                },
            )
            .collect()
    }

    fn run(records: &[AuditRecord]) -> Vec<Alert> {
        let mut d = Detector::new(Thresholds::default());
        records.iter().flat_map(|r| d.observe(r)).collect()
    }

    /// Ordinary days: a few typos, logins from the usual places, sessions to the usual
    /// targets, an account disabled after its last session.
    fn normal() -> Vec<AuditRecord> {
        let mut lines = Vec::new();
        for day in 0..5 {
            let t = day * 24 * 60;
            lines.extend([
                (
                    t,
                    "anonymous",
                    "login.password",
                    "alice",
                    "failure",
                    "10.0.0.5",
                ),
                (
                    t + 1,
                    "user:alice",
                    "login.password",
                    "alice",
                    "success",
                    "10.0.0.5",
                ),
                (
                    t + 1,
                    "user:alice",
                    "session.start",
                    "alice",
                    "success",
                    "10.0.0.5",
                ),
                (
                    t + 2,
                    "user:alice",
                    "ssh.login",
                    "alice",
                    "success",
                    "10.0.0.5",
                ),
                (
                    t + 2,
                    "user:alice",
                    "ssh.session.start",
                    "web-1",
                    "success",
                    "10.0.0.5",
                ),
                (
                    t + 3,
                    "user:bob",
                    "session.start",
                    "bob",
                    "success",
                    "10.0.0.9",
                ),
                (
                    t + 4,
                    "user:bob",
                    "db.session.start",
                    "orders-db",
                    "success",
                    "10.0.0.9",
                ),
                (
                    t + 5,
                    "user:alice",
                    "login.mfa",
                    "alice",
                    "failure",
                    "10.0.0.5",
                ),
                (
                    t + 6,
                    "user:alice",
                    "login.mfa",
                    "alice",
                    "success",
                    "10.0.0.5",
                ),
            ]);
        }
        lines.push((9000, "cli:root", "user.disable", "carol", "success", ""));
        script(&lines)
    }

    #[test]
    fn normal_traffic_raises_nothing() {
        assert_eq!(run(&normal()), vec![]);
    }

    #[test]
    fn a_burst_of_failed_logins_fires_once_per_account_and_address() {
        let mut lines = Vec::new();
        for i in 0..7 {
            lines.push((
                i,
                "anonymous",
                "login.password",
                "alice",
                "failure",
                "203.0.113.7",
            ));
        }
        let alerts = run(&script(&lines));
        let rules: Vec<Rule> = alerts.iter().map(|a| a.rule).collect();
        assert_eq!(
            rules,
            vec![Rule::FailedLoginsAccount, Rule::FailedLoginsAddress]
        );
        assert_eq!(alerts[0].subject, "alice");
        assert_eq!(alerts[0].seqs, vec![1, 2, 3, 4, 5]);
        assert_eq!(alerts[1].subject, "203.0.113.7");
        // Spread over hours, the same failures are no burst.
        let spread: Vec<_> = (0..7)
            .map(|i| {
                (
                    i * 20,
                    "anonymous",
                    "login.password",
                    "alice",
                    "failure",
                    "203.0.113.7",
                )
            })
            .collect();
        assert_eq!(run(&script(&spread)), vec![]);
        // Many accounts from one address (spraying) is a burst of that address only.
        let names = ["a1", "a2", "a3", "a4", "a5"];
        let spray: Vec<_> = names
            .iter()
            .map(|n| (0, "anonymous", "ssh.login", *n, "denied", "198.51.100.1"))
            .collect();
        let alerts = run(&script(&spray));
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].rule, Rule::FailedLoginsAddress);
    }

    #[test]
    fn a_login_from_a_new_address_fires() {
        let mut records = normal();
        let more = script(&[(
            9001,
            "user:alice",
            "session.start",
            "alice",
            "success",
            "192.0.2.44",
        )]);
        let mut last = more[0].clone();
        last.seq = records.len() as u64 + 1;
        records.push(last);
        let alerts = run(&records);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].rule, Rule::NewAddress);
        assert_eq!(alerts[0].subject, "alice");
        assert!(alerts[0].summary.contains("192.0.2.44"));
        assert_eq!(alerts[0].seqs, vec![records.len() as u64]);
    }

    #[test]
    fn a_first_access_to_a_target_fires() {
        let mut records = normal();
        let mut extra = script(&[(
            9001,
            "user:bob",
            "ssh.session.start",
            "db-admin-1",
            "success",
            "10.0.0.9",
        )])[0]
            .clone();
        extra.seq = records.len() as u64 + 1;
        records.push(extra);
        let alerts = run(&records);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].rule, Rule::FirstTarget);
        assert!(alerts[0].summary.contains("db-admin-1"), "{alerts:?}");
    }

    #[test]
    fn any_session_by_a_disabled_account_fires_and_enabling_clears_it() {
        let records = script(&[
            (
                0,
                "user:carol",
                "session.start",
                "carol",
                "success",
                "10.0.0.7",
            ),
            (1, "cli:root", "user.disable", "carol", "success", ""),
            (
                2,
                "user:carol",
                "ssh.session.start",
                "web-1",
                "success",
                "10.0.0.7",
            ),
            (3, "cli:root", "user.enable", "carol", "success", ""),
            (
                4,
                "user:carol",
                "ssh.session.start",
                "web-1",
                "success",
                "10.0.0.7",
            ),
        ]);
        let alerts = run(&records);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].rule, Rule::DisabledSession);
        assert_eq!(alerts[0].seqs, vec![3]);
    }
}
