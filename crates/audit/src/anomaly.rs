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
//! - **Unusual hours**: an access (web session, SSH login, database session) at an hour of
//!   the day (UTC) with no access of that account within an hour either side, once its
//!   history holds [`Thresholds::hours_min_accesses`] accesses over
//!   [`Thresholds::hours_min_days`] days (`anomaly/hours.rs`).
//! - **Far more rows than usual**: a PostgreSQL session whose rows read pass
//!   [`Thresholds::rows_factor`] times the mean of the account's earlier sessions on that
//!   target and [`Thresholds::rows_floor`] rows; fires once, while the session runs
//!   (`anomaly/rows.rs`).
//!
//! Alerts themselves are audit records (`anomaly.alert`); the detector skips them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::AuditRecord;

mod hours;
mod rows;

/// The rules' limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Failures in the window that make a burst.
    pub burst_failures: usize,
    /// The window, in microseconds.
    pub burst_window_us: i64,
    /// Different targets in the window that make "many".
    pub many_targets: usize,
    /// Accesses an account needs in its history before its hours are judged.
    pub hours_min_accesses: u32,
    /// Different days those accesses must span.
    pub hours_min_days: u32,
    /// How many times the usual rows of a database session make "far more".
    pub rows_factor: u64,
    /// Fewest rows that can be "far more", whatever the usual amount.
    pub rows_floor: u64,
    /// Earlier sessions of the account on the target needed to know the usual amount.
    pub rows_min_sessions: usize,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            burst_failures: 5,
            burst_window_us: 10 * 60 * 1_000_000,
            many_targets: 5,
            hours_min_accesses: 20,
            hours_min_days: 5,
            rows_factor: 10,
            rows_floor: 10_000,
            rows_min_sessions: 5,
        }
    }
}

/// Which rule fired.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
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
    /// An access at an hour the account is never active.
    UnusualHours,
    /// A database session reading far more rows than the account's usual.
    ManyRows,
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
            Self::UnusualHours => "unusual_hours",
            Self::ManyRows => "many_rows",
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

/// Largest saved state [`Detector::restore`] reads (and a watcher saves), in bytes. Each
/// map is bounded by its count of keys; this bounds the text of all of them, and with it
/// how long a save holds the store's writer.
pub const MAX_SAVED: usize = 16 << 20;

/// The rules' state. It can be saved ([`Detector::save`]) and restored, so that a
/// restarted reader learns the history from the saved state and the records after it
/// instead of from the whole audit log.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Detector {
    limits: Thresholds,
    #[serde(with = "pairs")]
    failures: BTreeMap<(Rule, String), VecDeque<(i64, u64)>>,
    #[serde(with = "pairs")]
    fired: BTreeMap<(Rule, String), i64>,
    addresses: BTreeMap<String, BTreeSet<String>>,
    targets: BTreeMap<String, BTreeSet<String>>,
    disabled: BTreeSet<String>,
    recent_sessions: BTreeMap<String, VecDeque<(i64, u64, String)>>,
    resets: BTreeMap<String, u64>,
    hours: hours::Hours,
    rows: rows::Rows,
}

/// A map whose keys are not strings, (de)serialized as a list of pairs: JSON object keys
/// can only be strings.
mod pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S, K, V>(map: &BTreeMap<K, V>, s: S) -> Result<S::Ok, S::Error>
    where
        S: Serializer,
        K: Serialize,
        V: Serialize,
    {
        s.collect_seq(map)
    }

    pub(super) fn deserialize<'de, D, K, V>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        D: Deserializer<'de>,
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}

/// What [`Detector::save`] writes: the state, with the version of the rules that made it.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Saved<T> {
    rules: String,
    detector: T,
}

/// The rules' version: a state saved by another version of rampart is not restored (its
/// rules may read records differently), and the history is learned again. Raise `state N`
/// when a change to the rules changes what they learn from the same records; a field
/// added, removed or renamed already fails to restore (unknown fields are refused).
const RULES: &str = concat!("rampart ", env!("CARGO_PKG_VERSION"), ", state 1");

fn user(actor: &str) -> Option<&str> {
    actor.strip_prefix("user:")
}

/// The two details of a `db.statement` record the rows rule reads; the others (the
/// statement's text, its class, …) are passed over without being copied.
#[derive(serde::Deserialize)]
struct StatementDetails<'a> {
    #[serde(borrow)]
    session: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    rows: Option<std::borrow::Cow<'a, str>>,
}

/// One detail of a record (details are a JSON object of strings, made by rampart).
fn detail(r: &AuditRecord, key: &str) -> Option<String> {
    // Cheap test first: most records are not read for details at all.
    if !r.details.contains(key) {
        return None;
    }
    serde_json::from_str::<BTreeMap<String, String>>(&r.details)
        .ok()?
        .remove(key)
}

impl Detector {
    /// The actions the rules read. A record of any other action changes nothing, so a
    /// reader of the audit log may pass it by: on a busy front door most records are app
    /// requests, and reading each one back would cost about as much as writing it.
    pub const OBSERVED: &'static [&'static str] = &[
        "user.disable",
        "user.enable",
        "mfa.reset",
        "login.password",
        "login.mfa",
        "ssh.login",
        "session.start",
        "ssh.session.start",
        "db.session.start",
        "db.statement",
        "db.session.end",
    ];

    /// A detector with these limits.
    pub fn new(limits: Thresholds) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// The state as text, for [`Detector::restore`]. (Serializing cannot fail: every map
    /// key is a string or goes through `pairs`. If it ever did, the empty text would not
    /// restore, and the history would be learned again.)
    pub fn save(&self) -> String {
        serde_json::to_string(&Saved {
            rules: RULES.to_owned(),
            detector: self,
        })
        .unwrap_or_default()
    }

    /// A state saved by [`Detector::save`], or why it cannot be used: another version of
    /// the rules, other limits, larger than [`MAX_SAVED`], or not a saved state at all.
    pub fn restore(saved: &str, limits: Thresholds) -> Result<Self, String> {
        if saved.len() > MAX_SAVED {
            return Err(format!("{} bytes, more than {MAX_SAVED}", saved.len()));
        }
        let saved: Saved<Self> =
            serde_json::from_str(saved).map_err(|e| format!("not a saved state: {e}"))?;
        if saved.rules != RULES {
            return Err(format!("saved by {}, not {RULES}", saved.rules));
        }
        if saved.detector.limits != limits {
            return Err("saved with other limits".into());
        }
        Ok(saved.detector)
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
                self.hours(r, &mut alerts);
            }
            "ssh.session.start" if ok => {
                self.disabled_session(r, &mut alerts);
                self.target(r, &mut alerts);
                self.many(r, &mut alerts);
            }
            "db.session.start" if ok => {
                self.disabled_session(r, &mut alerts);
                self.target(r, &mut alerts);
                self.many(r, &mut alerts);
                self.hours(r, &mut alerts);
                if let (Some(account), Some(session)) = (user(&r.actor), detail(r, "session")) {
                    self.rows.start(&session, account, &r.subject, MAX_KEYS);
                }
            }
            "db.statement" => self.read(r, &mut alerts),
            "db.session.end" => {
                if let Some(session) = detail(r, "session") {
                    self.rows.end(&session, MAX_KEYS);
                }
            }
            _ => {}
        }
        alerts
    }

    fn hours(&mut self, r: &AuditRecord, alerts: &mut Vec<Alert>) {
        let Some(account) = user(&r.actor) else {
            return;
        };
        let limits = hours::Learned {
            min_accesses: self.limits.hours_min_accesses,
            min_days: self.limits.hours_min_days,
        };
        if let Some(hour) = self.hours.observe(account, r.time_us, limits, MAX_KEYS) {
            alerts.push(Alert {
                rule: Rule::UnusualHours,
                subject: account.to_owned(),
                summary: format!(
                    "{account} was active at {hour:02}:00-{hour:02}:59 UTC ({}), an hour it never uses",
                    r.action
                ),
                seqs: vec![r.seq],
            });
        }
    }

    fn read(&mut self, r: &AuditRecord, alerts: &mut Vec<Alert>) {
        let Some(account) = user(&r.actor) else {
            return;
        };
        // One parse for both fields, borrowing them: the watcher reads every statement the
        // gateway audits, and two whole-map parses per record were most of its rule work.
        let Ok(StatementDetails {
            session: Some(session),
            rows: Some(rows),
        }) = serde_json::from_str::<StatementDetails<'_>>(&r.details)
        else {
            return;
        };
        let Ok(rows) = rows.parse::<u64>() else {
            return;
        };
        let limits = rows::Usual {
            factor: self.limits.rows_factor,
            floor: self.limits.rows_floor,
            min_sessions: self.limits.rows_min_sessions,
            max_sessions: MAX_KEYS,
        };
        if let Some(x) =
            self.rows
                .statement((session.as_ref(), account, &r.subject), rows, r.seq, limits)
        {
            alerts.push(Alert {
                rule: Rule::ManyRows,
                subject: x.account.clone(),
                summary: format!(
                    "{}'s database session {} on {} has read {} rows; its sessions there usually read {}",
                    x.account, x.session, x.target, x.rows, x.usual
                ),
                seqs: x.seqs,
            });
        }
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
mod tests;
