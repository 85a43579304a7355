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
//! - **Many targets**: sessions of one account to [`Thresholds::many_targets`] different
//!   targets within [`Thresholds::burst_window_us`]. Fires once per window and account.
//! - **MFA reset, then a new address**: the first login after an account's second factor
//!   was reset comes from an address it never logged in from (an attacker resetting and
//!   enrolling their own authenticator looks like this).
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
    /// Different targets in the window that make "many".
    pub many_targets: usize,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            burst_failures: 5,
            burst_window_us: 10 * 60 * 1_000_000,
            many_targets: 5,
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
    /// Sessions to many targets in a short time.
    ManyTargets,
    /// The first login after an MFA reset, from a new address.
    MfaResetNewAddress,
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
            Self::ManyTargets => "many_targets",
            Self::MfaResetNewAddress => "mfa_reset_new_address",
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
    recent_sessions: BTreeMap<String, VecDeque<(i64, u64, String)>>,
    resets: BTreeMap<String, u64>,
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
            "mfa.reset" if ok => {
                if !self.resets.contains_key(&r.subject) && self.resets.len() >= MAX_KEYS {
                    self.resets.pop_first();
                }
                self.resets.insert(r.subject.clone(), r.seq);
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
                self.many(r, &mut alerts);
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
        let reset = self.resets.remove(account);
        let seen = self.addresses.entry(account.to_owned()).or_default();
        if seen.contains(&r.source) {
            return;
        }
        if let Some(reset) = reset.filter(|_| !seen.is_empty()) {
            alerts.push(Alert {
                rule: Rule::MfaResetNewAddress,
                subject: account.to_owned(),
                summary: format!(
                    "{account}'s second factor was reset, and its next login came from {}, never seen for it",
                    r.source
                ),
                seqs: vec![reset, r.seq],
            });
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

    fn many(&mut self, r: &AuditRecord, alerts: &mut Vec<Alert>) {
        let Some(account) = user(&r.actor) else {
            return;
        };
        let window = self.limits.burst_window_us;
        if !self.recent_sessions.contains_key(account) && self.recent_sessions.len() >= MAX_KEYS {
            self.recent_sessions.pop_first();
        }
        let recent = self.recent_sessions.entry(account.to_owned()).or_default();
        recent.push_back((r.time_us, r.seq, r.subject.clone()));
        while recent
            .front()
            .is_some_and(|(t, _, _)| *t <= r.time_us.saturating_sub(window))
        {
            recent.pop_front();
        }
        // Bounded: a long-running burst keeps only the newest sessions.
        while recent.len() > MAX_SEEN {
            recent.pop_front();
        }
        let targets: BTreeSet<&str> = recent.iter().map(|(_, _, t)| t.as_str()).collect();
        if targets.len() < self.limits.many_targets {
            return;
        }
        let id = (Rule::ManyTargets, account.to_owned());
        if self
            .fired
            .get(&id)
            .is_some_and(|at| *at > r.time_us.saturating_sub(window))
        {
            return;
        }
        let count = targets.len();
        let seqs = recent.iter().map(|(_, s, _)| *s).collect();
        if !self.fired.contains_key(&id) && self.fired.len() >= MAX_KEYS {
            self.fired.pop_first();
        }
        self.fired.insert(id, r.time_us);
        alerts.push(Alert {
            rule: Rule::ManyTargets,
            subject: account.to_owned(),
            summary: format!(
                "{account} reached {count} different targets within {} minutes",
                window / 60_000_000
            ),
            seqs,
        });
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
    fn sessions_to_many_targets_in_a_short_time_fire_once() {
        let mut lines = vec![(
            0,
            "user:eve",
            "ssh.session.start",
            "web-1",
            "success",
            "10.0.0.3",
        )];
        for (i, t) in ["web-2", "web-3", "db-1", "db-2", "db-3"]
            .iter()
            .enumerate()
        {
            lines.push((
                i as i64 + 1,
                "user:eve",
                "ssh.session.start",
                t,
                "success",
                "10.0.0.3",
            ));
        }
        let alerts: Vec<Alert> = run(&script(&lines))
            .into_iter()
            .filter(|a| a.rule == Rule::ManyTargets)
            .collect();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].seqs, vec![1, 2, 3, 4, 5]);
        // The same five targets over a day are no burst.
        let slow: Vec<_> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| (i as i64 * 60, l.1, l.2, l.3, l.4, l.5))
            .collect();
        assert!(
            run(&script(&slow))
                .iter()
                .all(|a| a.rule != Rule::ManyTargets)
        );
    }

    #[test]
    fn a_login_from_a_new_address_after_an_mfa_reset_fires() {
        let records = script(&[
            (0, "user:dan", "session.start", "dan", "success", "10.0.0.8"),
            (10, "cli:root", "mfa.reset", "dan", "success", ""),
            (
                11,
                "user:dan",
                "session.start",
                "dan",
                "success",
                "203.0.113.50",
            ),
            // Reset again; this time dan comes back from his usual place: quiet.
            (20, "cli:root", "mfa.reset", "dan", "success", ""),
            (
                21,
                "user:dan",
                "session.start",
                "dan",
                "success",
                "10.0.0.8",
            ),
        ]);
        let alerts = run(&records);
        let rules: Vec<Rule> = alerts.iter().map(|a| a.rule).collect();
        assert_eq!(rules, vec![Rule::MfaResetNewAddress, Rule::NewAddress]);
        assert_eq!(alerts[0].seqs, vec![2, 3]);
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
