//! Access review campaigns (ACC-7): a campaign covers every grant (binding) whose role
//! reaches the gateway; each item goes to a reviewer, who keeps or revokes it with a reason.
//! A revocation deletes the binding in the same transaction as the decision and its audit
//! records. At the deadline, [`Store::sweep_reviews`] revokes (or flags) every open item.
//!
//! The facts shown to the reviewer (last use, sessions and targets in the period, who made
//! the grant and when) are read from the audit log when the campaign opens and stored with
//! the item, so the exported campaign shows what the reviewer saw.

use std::collections::{BTreeMap, BTreeSet};

use rampart_access::Permission;
use rampart_audit::{Action, Actor, AuditEvent};
use rampart_identity::policy::ReviewMissed;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError, Write};

/// A day in microseconds.
pub const DAY_US: i64 = 86_400_000_000;

/// Days without use after which a grant is a candidate for removal (ACC-3).
pub const UNUSED_DAYS: i64 = 30;

/// Reason recorded for items decided at the deadline.
pub const MISSED_REASON: &str = "missed review";

/// A review campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Campaign {
    /// Its id (a UUID).
    pub id: String,
    /// When it opened (µs).
    pub started_us: i64,
    /// When open items are revoked or flagged (µs).
    pub deadline_us: i64,
    /// Still taking decisions.
    pub open: bool,
    /// What happens to items open at the deadline.
    pub missed: ReviewMissed,
    /// Who opened it (`system` for the schedule, `cli:…`, `user:…`).
    pub started_by: String,
    /// When it closed (µs).
    pub closed_us: Option<i64>,
}

/// What was decided about one grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Not decided yet.
    Open,
    /// The reviewer kept it.
    Keep,
    /// The reviewer revoked it (or it was revoked at the deadline: reason "missed review").
    Revoke,
    /// Nobody decided by the deadline and the policy is to flag: the grant stays.
    Flagged,
}

impl Decision {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Keep => "keep",
            Self::Revoke => "revoke",
            Self::Flagged => "flagged",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "open" => Self::Open,
            "keep" => Self::Keep,
            "revoke" => Self::Revoke,
            "flagged" => Self::Flagged,
            _ => return None,
        })
    }
}

/// One grant under review, with the facts the reviewer sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewItem {
    /// Its id (a UUID).
    pub id: String,
    /// The campaign.
    pub campaign: String,
    /// The account holding the grant.
    pub account: String,
    /// The role granted.
    pub role: String,
    /// When the grant ends by itself (µs), if it does.
    pub expires_us: Option<i64>,
    /// When the grant was made (µs).
    pub granted_us: i64,
    /// Who made it, from the audit log (`cli:…`, `user:…`; empty when unknown).
    pub granted_by: String,
    /// Who decides (the account's owner, else a holder of `access.review`; empty: nobody
    /// but an operator on the CLI).
    pub reviewer: String,
    /// The last SSH or database session under this grant (µs), ever.
    pub last_use_us: Option<i64>,
    /// Sessions under this grant in the period before the campaign opened.
    pub sessions: i64,
    /// Targets reached under this grant in that period, comma-separated.
    pub targets: String,
    /// The decision.
    pub decision: Decision,
    /// Its reason (scrubbed).
    pub reason: String,
    /// Who decided (`user:…`, `cli:…`, `system`).
    pub decided_by: String,
    /// When (µs).
    pub decided_us: Option<i64>,
}

impl ReviewItem {
    /// Whether the grant is a candidate for removal (ACC-3): made at least [`UNUSED_DAYS`]
    /// before `at_us` and not used since then.
    pub fn unused(&self, at_us: i64) -> bool {
        let cutoff = at_us.saturating_sub(UNUSED_DAYS * DAY_US);
        self.granted_us <= cutoff && self.last_use_us.is_none_or(|u| u < cutoff)
    }
}

/// Why a review decision was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    /// No item has that id.
    #[error("no review item {0}")]
    Unknown(String),
    /// The item was decided already.
    #[error("this grant was already decided ({0})")]
    Decided(&'static str),
    /// The campaign's deadline passed or it closed.
    #[error("the campaign is closed")]
    Closed,
    /// Nobody reviews their own grant.
    #[error("nobody may review their own grant")]
    OwnGrant,
    /// Neither the item's reviewer nor a holder of access.review.
    #[error("only the item's reviewer or a holder of access.review may decide it")]
    NotReviewer,
}

/// A new campaign's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewCampaign {
    /// Now (µs).
    pub now_us: i64,
    /// The deadline (µs).
    pub deadline_us: i64,
    /// What happens to items open at the deadline.
    pub missed: ReviewMissed,
    /// Length of the period whose sessions are counted (µs).
    pub period_us: i64,
    /// For the schedule: open only if no campaign started after this time (µs).
    pub unless_since_us: Option<i64>,
}

const CAMPAIGN_COLUMNS: &str = "id, started_us, deadline_us, state, missed, started_by, closed_us";
const ITEM_COLUMNS: &str = "id, campaign, account, role, expires_us, granted_us, granted_by, reviewer, last_use_us, sessions, targets, decision, reason, decided_by, decided_us";

/// Most items one campaign covers.
const MAX_ITEMS: usize = 10_000;

impl Store {
    /// Opens a campaign over every live grant whose role reaches a target, audited as
    /// `review.start`. `None` when `unless_since_us` is set and a campaign started since
    /// then, or when no grant reaches a target and `actor` is the schedule.
    pub async fn start_review(
        &self,
        new: NewCampaign,
        actor: Actor,
    ) -> Result<Option<Campaign>, StoreError> {
        let (roles, bindings, accounts) =
            tokio::try_join!(self.roles(), self.bindings(None), self.accounts())?;
        let now_ts = jiff::Timestamp::from_microsecond(new.now_us)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let live = |b: &rampart_access::Binding| b.expires_at.is_none_or(|t| t > now_ts);
        let active: BTreeMap<&str, &crate::Account> = accounts
            .iter()
            .filter(|a| a.active)
            .map(|a| (a.username.as_str(), a))
            .collect();
        // Holders of access.review, sorted: the first one that is not the grantee reviews
        // grants of accounts without an owner.
        let reviewers: BTreeSet<&str> = bindings
            .iter()
            .filter(|b| live(b) && active.contains_key(b.account.as_str()))
            .filter(|b| {
                roles
                    .iter()
                    .any(|r| r.name == b.role && r.permissions.contains(&Permission::ReviewAccess))
            })
            .map(|b| b.account.as_str())
            .collect();
        let covered: Vec<&rampart_access::Binding> = bindings
            .iter()
            .filter(|b| live(b))
            .filter(|b| {
                roles
                    .iter()
                    .any(|r| r.name == b.role && !r.grants.is_empty())
            })
            .take(MAX_ITEMS)
            .collect();
        if covered.is_empty() && actor == Actor::System {
            return Ok(None);
        }
        let since = new.now_us.saturating_sub(new.period_us);
        let mut items = Vec::with_capacity(covered.len());
        for b in covered {
            let role = b.role.as_str();
            let owner = accounts
                .iter()
                .find(|a| a.username.as_str() == b.account)
                .and_then(|a| a.owner.clone())
                .filter(|o| *o != b.account && active.contains_key(o.as_str()));
            let reviewer = owner.unwrap_or_else(|| {
                reviewers
                    .iter()
                    .find(|r| **r != b.account)
                    .map(|r| (*r).to_owned())
                    .unwrap_or_default()
            });
            let (granted_us, granted_by) = self.granted(&b.account, role).await?;
            let (last_use_us, sessions, targets) = self.usage(&b.account, role, since).await?;
            items.push(ReviewItem {
                id: uuid::Uuid::now_v7().to_string(),
                campaign: String::new(),
                account: b.account.clone(),
                role: role.to_owned(),
                expires_us: b.expires_at.map(|t| t.as_microsecond()),
                granted_us,
                granted_by,
                reviewer,
                last_use_us,
                sessions,
                targets,
                decision: Decision::Open,
                reason: String::new(),
                decided_by: String::new(),
                decided_us: None,
            });
        }
        let mut w = self.write().await?;
        if let Some(since) = new.unless_since_us {
            let recent = sqlx::query("SELECT id FROM review_campaigns WHERE started_us > $1")
                .bind(since)
                .fetch_optional(w.conn()?)
                .await?;
            if recent.is_some() {
                return Ok(None);
            }
        }
        let campaign = Campaign {
            id: uuid::Uuid::now_v7().to_string(),
            started_us: new.now_us,
            deadline_us: new.deadline_us,
            open: true,
            missed: new.missed,
            started_by: actor.to_string(),
            closed_us: None,
        };
        sqlx::query(&format!(
            "INSERT INTO review_campaigns ({CAMPAIGN_COLUMNS}) VALUES ($1, $2, $3, 'open', $4, $5, NULL)"
        ))
        .bind(&campaign.id)
        .bind(campaign.started_us)
        .bind(campaign.deadline_us)
        .bind(campaign.missed.as_str())
        .bind(&campaign.started_by)
        .execute(w.conn()?)
        .await?;
        for item in &mut items {
            item.campaign = campaign.id.clone();
            sqlx::query(&format!(
                "INSERT INTO review_items ({ITEM_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'open', '', '', NULL)"
            ))
            .bind(&item.id)
            .bind(&item.campaign)
            .bind(&item.account)
            .bind(&item.role)
            .bind(item.expires_us)
            .bind(item.granted_us)
            .bind(&item.granted_by)
            .bind(&item.reviewer)
            .bind(item.last_use_us)
            .bind(item.sessions)
            .bind(&item.targets)
            .execute(w.conn()?)
            .await?;
        }
        let deadline = jiff::Timestamp::from_microsecond(campaign.deadline_us)
            .map(|t| t.to_string())
            .unwrap_or_default();
        let event = AuditEvent::new(actor, Action::ReviewStart, campaign.id.clone())
            .detail("grants", items.len().to_string())
            .detail("deadline", deadline)
            .detail("missed", campaign.missed.as_str());
        w.audit(&[event]).await?;
        w.commit().await?;
        Ok(Some(campaign))
    }

    /// When and by whom `account` was granted `role`: the binding's time, and the actor of
    /// the newest `grant.add` for the pair.
    pub async fn granted(&self, account: &str, role: &str) -> Result<(i64, String), StoreError> {
        let row = sqlx::query("SELECT created_us FROM bindings WHERE account = $1 AND role = $2")
            .bind(account)
            .bind(role)
            .fetch_optional(self.pool())
            .await?;
        let created: i64 = match row {
            Some(row) => row.try_get("created_us")?,
            None => 0,
        };
        let by = sqlx::query(
            "SELECT actor FROM audit_log WHERE action = 'grant.add' AND subject = $1 AND details LIKE $2 ESCAPE '\\' ORDER BY seq DESC LIMIT 1",
        )
        .bind(account)
        .bind(role_needle(role))
        .fetch_optional(self.pool())
        .await?;
        let by = match by {
            Some(row) => row.try_get("actor")?,
            None => String::new(),
        };
        Ok((created, by))
    }

    /// The last SSH or database session under `account`'s `role` ever, and the sessions
    /// and targets (comma-separated) since `since_us`, from the audit log.
    pub async fn usage(
        &self,
        account: &str,
        role: &str,
        since_us: i64,
    ) -> Result<(Option<i64>, i64, String), StoreError> {
        let actor = Actor::User(account.to_owned()).to_string();
        let needle = role_needle(role);
        let last = sqlx::query(
            "SELECT MAX(time_us) AS t FROM audit_log WHERE actor = $1 AND action IN ('ssh.session.start', 'db.session.start') AND details LIKE $2 ESCAPE '\\'",
        )
        .bind(&actor)
        .bind(&needle)
        .fetch_one(self.pool())
        .await?;
        let last: Option<i64> = last.try_get("t")?;
        let rows = sqlx::query(
            "SELECT subject, COUNT(*) AS n FROM audit_log WHERE actor = $1 AND action IN ('ssh.session.start', 'db.session.start') AND details LIKE $2 ESCAPE '\\' AND time_us >= $3 GROUP BY subject ORDER BY subject LIMIT 100",
        )
        .bind(&actor)
        .bind(&needle)
        .bind(since_us)
        .fetch_all(self.pool())
        .await?;
        let mut sessions = 0i64;
        let mut targets = Vec::new();
        for row in &rows {
            let n: i64 = row.try_get("n")?;
            sessions = sessions.saturating_add(n);
            targets.push(row.try_get::<String, _>("subject")?);
        }
        Ok((last, sessions, targets.join(",")))
    }

    /// Campaigns, newest first (at most 200).
    pub async fn review_campaigns(&self) -> Result<Vec<Campaign>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM review_campaigns ORDER BY started_us DESC LIMIT 200"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(campaign).collect()
    }

    /// One campaign.
    pub async fn review_campaign(&self, id: &str) -> Result<Option<Campaign>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM review_campaigns WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(campaign).transpose()
    }

    /// A campaign's items, by account and role.
    pub async fn review_items(&self, campaign: &str) -> Result<Vec<ReviewItem>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ITEM_COLUMNS} FROM review_items WHERE campaign = $1 ORDER BY account, role LIMIT {MAX_ITEMS}"
        ))
        .bind(campaign)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(item).collect()
    }

    /// One item.
    pub async fn review_item(&self, id: &str) -> Result<Option<ReviewItem>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ITEM_COLUMNS} FROM review_items WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(item).transpose()
    }

    /// Keeps or revokes the grant of an open item, with a reason (scrubbed by the caller).
    /// `decider` is a user name or the CLI operator (`cli:…`); `reviews_all` says whether it
    /// holds `access.review` (an operator on the CLI does). A revocation deletes the binding
    /// of the account and role in the same transaction as the decision and its
    /// `review.decide` and `grant.remove` records (a binding made again since the campaign
    /// opened is the same grant and goes too).
    #[allow(clippy::too_many_arguments)]
    pub async fn decide_review(
        &self,
        item_id: &str,
        keep: bool,
        reason: &str,
        decider: &str,
        reviews_all: bool,
        actor: Actor,
        now_us: i64,
    ) -> Result<Result<Decision, ReviewError>, StoreError> {
        let mut w = self.write().await?;
        let row = sqlx::query(&format!(
            "SELECT {ITEM_COLUMNS} FROM review_items WHERE id = $1"
        ))
        .bind(item_id)
        .fetch_optional(w.conn()?)
        .await?;
        let Some(row) = row else {
            return Ok(Err(ReviewError::Unknown(item_id.to_owned())));
        };
        let it = item(&row)?;
        if it.decision != Decision::Open {
            return Ok(Err(ReviewError::Decided(it.decision.as_str())));
        }
        let c = sqlx::query(&format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM review_campaigns WHERE id = $1"
        ))
        .bind(&it.campaign)
        .fetch_optional(w.conn()?)
        .await?;
        let c = c
            .as_ref()
            .map(campaign)
            .transpose()?
            .ok_or_else(|| StoreError::Corrupt(format!("review campaign {}", it.campaign)))?;
        if !c.open || c.deadline_us <= now_us {
            return Ok(Err(ReviewError::Closed));
        }
        if decider == it.account {
            return Ok(Err(ReviewError::OwnGrant));
        }
        if !reviews_all && decider != it.reviewer {
            return Ok(Err(ReviewError::NotReviewer));
        }
        let decision = if keep {
            Decision::Keep
        } else {
            Decision::Revoke
        };
        let events = settle(&mut w, &it, decision, reason, actor, now_us).await?;
        w.audit(&events).await?;
        w.commit().await?;
        Ok(Ok(decision))
    }

    /// Closes every open campaign whose deadline is at or before `now_us`: each open item
    /// is revoked (binding deleted) or flagged, per the campaign, with the reason "missed
    /// review", all in one transaction with the audit records. Returns the items decided.
    pub async fn sweep_reviews(&self, now_us: i64) -> Result<usize, StoreError> {
        let due = sqlx::query(&format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM review_campaigns WHERE state = 'open' AND deadline_us <= $1 ORDER BY started_us LIMIT 10"
        ))
        .bind(now_us)
        .fetch_all(self.pool())
        .await?;
        let mut decided = 0;
        for row in &due {
            let c = campaign(row)?;
            let mut w = self.write().await?;
            // Re-read inside the transaction: another node may have closed it.
            let still =
                sqlx::query("SELECT id FROM review_campaigns WHERE id = $1 AND state = 'open'")
                    .bind(&c.id)
                    .fetch_optional(w.conn()?)
                    .await?;
            if still.is_none() {
                continue;
            }
            let rows = sqlx::query(&format!(
                "SELECT {ITEM_COLUMNS} FROM review_items WHERE campaign = $1 AND decision = 'open' LIMIT {MAX_ITEMS}"
            ))
            .bind(&c.id)
            .fetch_all(w.conn()?)
            .await?;
            let decision = match c.missed {
                ReviewMissed::Revoke => Decision::Revoke,
                ReviewMissed::Flag => Decision::Flagged,
            };
            let mut events = Vec::new();
            for row in &rows {
                let it = item(row)?;
                events.extend(
                    settle(&mut w, &it, decision, MISSED_REASON, Actor::System, now_us).await?,
                );
            }
            sqlx::query(
                "UPDATE review_campaigns SET state = 'closed', closed_us = $1 WHERE id = $2",
            )
            .bind(now_us)
            .bind(&c.id)
            .execute(w.conn()?)
            .await?;
            events.push(
                AuditEvent::new(Actor::System, Action::ReviewClose, c.id.clone())
                    .detail("missed", rows.len().to_string())
                    .detail("policy", c.missed.as_str()),
            );
            w.audit(&events).await?;
            w.commit().await?;
            decided += rows.len();
        }
        Ok(decided)
    }
}

/// Records `decision` on an open item inside `w` (deleting the binding when it is a
/// revocation) and returns the audit events to write with it.
async fn settle(
    w: &mut Write,
    it: &ReviewItem,
    decision: Decision,
    reason: &str,
    actor: Actor,
    now_us: i64,
) -> Result<Vec<AuditEvent>, StoreError> {
    sqlx::query(
        "UPDATE review_items SET decision = $1, reason = $2, decided_by = $3, decided_us = $4 WHERE id = $5",
    )
    .bind(decision.as_str())
    .bind(reason)
    .bind(actor.to_string())
    .bind(now_us)
    .bind(&it.id)
    .execute(w.conn()?)
    .await?;
    let mut events = vec![
        AuditEvent::new(actor.clone(), Action::ReviewDecide, it.account.clone())
            .detail("campaign", it.campaign.clone())
            .detail("item", it.id.clone())
            .detail("role", it.role.clone())
            .detail("decision", decision.as_str())
            .detail("reason", reason.to_owned()),
    ];
    if decision == Decision::Revoke {
        let gone = sqlx::query("DELETE FROM bindings WHERE account = $1 AND role = $2")
            .bind(&it.account)
            .bind(&it.role)
            .execute(w.conn()?)
            .await?;
        if gone.rows_affected() > 0 {
            events.push(
                AuditEvent::new(actor, Action::GrantRemove, it.account.clone())
                    .detail("role", it.role.clone())
                    .detail("review", it.id.clone())
                    .detail("reason", reason.to_owned()),
            );
        }
    }
    Ok(events)
}

/// A `LIKE` pattern matching details that hold `"role":"<role>"` (role names are
/// `[A-Za-z0-9._-]`; `_` is escaped).
fn role_needle(role: &str) -> String {
    let pair = serde_json::json!({ "role": role }).to_string();
    let inner = pair.trim_start_matches('{').trim_end_matches('}');
    let escaped = inner
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

fn campaign(row: &AnyRow) -> Result<Campaign, StoreError> {
    let state: String = row.try_get("state")?;
    let missed: String = row.try_get("missed")?;
    Ok(Campaign {
        id: row.try_get("id")?,
        started_us: row.try_get("started_us")?,
        deadline_us: row.try_get("deadline_us")?,
        open: state == "open",
        missed: ReviewMissed::parse(&missed)
            .ok_or_else(|| StoreError::Corrupt(format!("review policy {missed:?}")))?,
        started_by: row.try_get("started_by")?,
        closed_us: row.try_get("closed_us")?,
    })
}

fn item(row: &AnyRow) -> Result<ReviewItem, StoreError> {
    let decision: String = row.try_get("decision")?;
    Ok(ReviewItem {
        id: row.try_get("id")?,
        campaign: row.try_get("campaign")?,
        account: row.try_get("account")?,
        role: row.try_get("role")?,
        expires_us: row.try_get("expires_us")?,
        granted_us: row.try_get("granted_us")?,
        granted_by: row.try_get("granted_by")?,
        reviewer: row.try_get("reviewer")?,
        last_use_us: row.try_get("last_use_us")?,
        sessions: row.try_get("sessions")?,
        targets: row.try_get("targets")?,
        decision: Decision::parse(&decision)
            .ok_or_else(|| StoreError::Corrupt(format!("review decision {decision:?}")))?,
        reason: row.try_get("reason")?,
        decided_by: row.try_get("decided_by")?,
        decided_us: row.try_get("decided_us")?,
    })
}

#[cfg(test)]
#[path = "reviews_tests.rs"]
mod tests;
