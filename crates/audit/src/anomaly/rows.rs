//! Far more rows than usual: the rows a PostgreSQL session read (the `rows` of its
//! `db.statement` records: SELECT, FETCH, COPY TO and the like; writes are `db.change`) are
//! added up while it runs. When the total passes `factor` times the mean of the same
//! account's earlier sessions on the same target (at least `min_sessions` of them) and at
//! least `floor` rows, the session fires, once, while it still runs. A session that fired
//! is not learned, so it does not raise the usual amount.

use std::collections::{BTreeMap, VecDeque};

/// Sessions remembered per account and target.
const HISTORY: usize = 100;

/// Statement records named by one alert (the largest reads are what matter; the first
/// ones are kept, and the one that crossed the line).
const MAX_SEQS: usize = 50;

/// Running sessions and the history per account and target.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Rows {
    live: BTreeMap<String, Live>,
    #[serde(with = "super::pairs")]
    history: BTreeMap<(String, String), VecDeque<u64>>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Live {
    account: String,
    target: String,
    rows: u64,
    seqs: Vec<u64>,
    fired: bool,
}

/// The limits of the rule.
#[derive(Debug, Clone, Copy)]
pub(super) struct Usual {
    pub factor: u64,
    pub floor: u64,
    pub min_sessions: usize,
    /// Most sessions tracked at once (the first in order is dropped).
    pub max_sessions: usize,
}

/// A session that read far more than usual.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Excess {
    pub account: String,
    pub target: String,
    pub session: String,
    pub rows: u64,
    pub usual: u64,
    pub seqs: Vec<u64>,
}

impl Rows {
    /// A session started (so that one that reads nothing is learned as such).
    pub(super) fn start(
        &mut self,
        session: &str,
        account: &str,
        target: &str,
        max_sessions: usize,
    ) {
        if !self.live.contains_key(session) && self.live.len() >= max_sessions {
            self.live.pop_first();
        }
        self.live.entry(session.to_owned()).or_insert_with(|| Live {
            account: account.to_owned(),
            target: target.to_owned(),
            rows: 0,
            seqs: Vec::new(),
            fired: false,
        });
    }

    /// Takes a read statement (record `seq`) of `session` that returned `rows`.
    pub(super) fn statement(
        &mut self,
        (session, account, target): (&str, &str, &str),
        rows: u64,
        seq: u64,
        limits: Usual,
    ) -> Option<Excess> {
        self.start(session, account, target, limits.max_sessions);
        let live = self.live.get_mut(session)?;
        live.rows = live.rows.saturating_add(rows);
        if rows > 0 && live.seqs.len() < MAX_SEQS {
            live.seqs.push(seq);
        }
        if live.fired {
            return None;
        }
        let past = self
            .history
            .get(&(live.account.clone(), live.target.clone()))?;
        if past.len() < limits.min_sessions {
            return None;
        }
        let mean = past.iter().sum::<u64>() / u64::try_from(past.len()).unwrap_or(1).max(1);
        if live.rows < limits.floor.max(mean.saturating_mul(limits.factor)) {
            return None;
        }
        live.fired = true;
        let mut seqs = live.seqs.clone();
        if seqs.last() != Some(&seq) {
            seqs.push(seq);
        }
        Some(Excess {
            account: live.account.clone(),
            target: live.target.clone(),
            session: session.to_owned(),
            rows: live.rows,
            usual: mean,
            seqs,
        })
    }

    /// The session ended: its total joins the history, unless it fired. `max_keys` bounds
    /// the accounts and targets remembered.
    pub(super) fn end(&mut self, session: &str, max_keys: usize) {
        let Some(live) = self.live.remove(session) else {
            return;
        };
        if live.fired {
            return;
        }
        let key = (live.account, live.target);
        if !self.history.contains_key(&key) && self.history.len() >= max_keys {
            self.history.pop_first();
        }
        let past = self.history.entry(key).or_default();
        past.push_back(live.rows);
        while past.len() > HISTORY {
            past.pop_front();
        }
    }
}
