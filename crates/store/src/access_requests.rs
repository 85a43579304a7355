//! Access requests (EXT-1, and "just in time" access for people): someone asks for a role
//! for a few hours with a reason; approvers other than the requester approve or deny; the
//! approval that completes the count grants the role, time-boxed, in the same transaction.

use rampart_audit::{Action, Actor, AuditEvent, Outcome};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError};

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestStatus {
    /// Waiting for approvals.
    Pending,
    /// Approved: the grant was made.
    Approved,
    /// Denied by an approver.
    Denied,
    /// Nobody decided before it lapsed.
    Expired,
}

impl RequestStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Expired => "expired",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "pending" => Self::Pending,
            "approved" => Self::Approved,
            "denied" => Self::Denied,
            "expired" => Self::Expired,
            _ => return None,
        })
    }
}

/// A request as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRequest {
    /// Its id (a UUID).
    pub id: String,
    /// Who asks (a user name).
    pub requester: String,
    /// The role asked for.
    pub role: String,
    /// How long the grant lasts once approved.
    pub hours: i64,
    /// Why, as the requester wrote it (scrubbed before it was stored).
    pub reason: String,
    /// Where it stands.
    pub status: RequestStatus,
    /// When it was made (µs).
    pub created_us: i64,
    /// When it lapses if still pending (µs).
    pub pending_until_us: i64,
    /// Who approved so far, or who denied.
    pub deciders: Vec<String>,
    /// The denial's reason, or the grant's expiry, once decided.
    pub note: String,
}

/// What an approval did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approval {
    /// Counted; more approvals are needed.
    Counted,
    /// The last approval needed: the role is granted until this time (µs).
    Granted(i64),
}

/// Why an approval or denial was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecisionError {
    /// No request has that id.
    #[error("no access request {0}")]
    Unknown(String),
    /// It was already approved, denied or expired.
    #[error("the request is {0}, not pending")]
    NotPending(&'static str),
    /// Requesters never decide their own requests.
    #[error("nobody may approve or deny their own request")]
    OwnRequest,
    /// This approver already approved it.
    #[error("{0} already approved this request")]
    AlreadyApproved(String),
}

const COLUMNS: &str =
    "id, requester, role, hours, reason, status, created_us, pending_until_us, deciders, note";

impl Store {
    /// Files a request, audited as `access.request`.
    pub async fn create_access_request(
        &self,
        request: &AccessRequest,
        actor: Actor,
    ) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        let role = sqlx::query("SELECT name FROM roles WHERE name = $1")
            .bind(&request.role)
            .fetch_optional(w.conn()?)
            .await?;
        if role.is_none() {
            return Err(StoreError::NotFound(format!("role {}", request.role)));
        }
        sqlx::query(&format!(
            "INSERT INTO access_requests ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '', '')"
        ))
        .bind(&request.id)
        .bind(&request.requester)
        .bind(&request.role)
        .bind(request.hours)
        .bind(&request.reason)
        .bind(RequestStatus::Pending.as_str())
        .bind(request.created_us)
        .bind(request.pending_until_us)
        .execute(w.conn()?)
        .await?;
        let event = AuditEvent::new(actor, Action::AccessRequest, request.requester.clone())
            .detail("request", request.id.clone())
            .detail("role", request.role.clone())
            .detail("hours", request.hours.to_string());
        w.audit(&[event]).await?;
        w.commit().await
    }

    /// One request.
    pub async fn access_request(&self, id: &str) -> Result<Option<AccessRequest>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM access_requests WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(request).transpose()
    }

    /// Requests, newest first: all of them, or one requester's (at most 200).
    pub async fn access_requests(
        &self,
        requester: Option<&str>,
    ) -> Result<Vec<AccessRequest>, StoreError> {
        let rows = match requester {
            Some(who) => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM access_requests WHERE requester = $1 ORDER BY created_us DESC LIMIT 200"
                ))
                .bind(who)
                .fetch_all(self.pool())
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM access_requests ORDER BY created_us DESC LIMIT 200"
                ))
                .fetch_all(self.pool())
                .await?
            }
        };
        rows.iter().map(request).collect()
    }

    /// Approves a pending request as `approver` (a user name, or the CLI's operator). When
    /// this makes `needed` approvals, the role is granted for the request's hours from
    /// `now_us`, in the same transaction as the approval and its audit records.
    pub async fn approve_access_request(
        &self,
        id: &str,
        approver: &str,
        actor: Actor,
        needed: usize,
        now_us: i64,
    ) -> Result<Result<Approval, DecisionError>, StoreError> {
        let mut w = self.write().await?;
        let current = pending(&mut w, id, approver, now_us).await?;
        let mut r = match current {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        if r.deciders.iter().any(|d| d == approver) {
            return Ok(Err(DecisionError::AlreadyApproved(approver.to_owned())));
        }
        r.deciders.push(approver.to_owned());
        let mut events = vec![
            AuditEvent::new(actor.clone(), Action::AccessApprove, r.requester.clone())
                .detail("request", id.to_owned())
                .detail("role", r.role.clone())
                .detail("approvals", format!("{}/{needed}", r.deciders.len())),
        ];
        let outcome = if r.deciders.len() >= needed {
            let until = now_us.saturating_add(r.hours.saturating_mul(3_600_000_000));
            sqlx::query("DELETE FROM bindings WHERE account = $1 AND role = $2")
                .bind(&r.requester)
                .bind(&r.role)
                .execute(w.conn()?)
                .await?;
            sqlx::query(
                "INSERT INTO bindings (account, role, expires_us, created_us) VALUES ($1, $2, $3, $4)",
            )
            .bind(&r.requester)
            .bind(&r.role)
            .bind(until)
            .bind(crate::now_us())
            .execute(w.conn()?)
            .await?;
            let expires = jiff::Timestamp::from_microsecond(until)
                .map(|t| t.to_string())
                .unwrap_or_default();
            events.push(
                AuditEvent::new(actor, Action::GrantAdd, r.requester.clone())
                    .detail("role", r.role.clone())
                    .detail("expires", expires.clone())
                    .detail("request", id.to_owned()),
            );
            r.status = RequestStatus::Approved;
            r.note = format!("granted until {expires}");
            Approval::Granted(until)
        } else {
            Approval::Counted
        };
        sqlx::query(
            "UPDATE access_requests SET status = $1, deciders = $2, note = $3 WHERE id = $4",
        )
        .bind(r.status.as_str())
        .bind(r.deciders.join(","))
        .bind(&r.note)
        .bind(id)
        .execute(w.conn()?)
        .await?;
        w.audit(&events).await?;
        w.commit().await?;
        Ok(Ok(outcome))
    }

    /// Denies a pending request with a reason (scrubbed by the caller).
    pub async fn deny_access_request(
        &self,
        id: &str,
        decider: &str,
        actor: Actor,
        reason: &str,
        now_us: i64,
    ) -> Result<Result<(), DecisionError>, StoreError> {
        let mut w = self.write().await?;
        let r = match pending(&mut w, id, decider, now_us).await? {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        sqlx::query(
            "UPDATE access_requests SET status = $1, deciders = $2, note = $3 WHERE id = $4",
        )
        .bind(RequestStatus::Denied.as_str())
        .bind(decider)
        .bind(reason)
        .bind(id)
        .execute(w.conn()?)
        .await?;
        let event = AuditEvent::new(actor, Action::AccessDeny, r.requester)
            .outcome(Outcome::Denied)
            .detail("request", id.to_owned())
            .detail("role", r.role);
        w.audit(&[event]).await?;
        w.commit().await?;
        Ok(Ok(()))
    }

    /// Marks pending requests past their deadline as expired, each audited as
    /// `access.expire`. Returns how many.
    pub async fn expire_access_requests(&self, now_us: i64) -> Result<usize, StoreError> {
        let mut w = self.write().await?;
        let rows = sqlx::query(
            "SELECT id, requester, role FROM access_requests WHERE status = 'pending' AND pending_until_us <= $1 LIMIT 1000",
        )
        .bind(now_us)
        .fetch_all(w.conn()?)
        .await?;
        let mut events = Vec::new();
        for row in &rows {
            let id: String = row.try_get("id")?;
            sqlx::query("UPDATE access_requests SET status = 'expired' WHERE id = $1")
                .bind(&id)
                .execute(w.conn()?)
                .await?;
            let requester: String = row.try_get("requester")?;
            let role: String = row.try_get("role")?;
            events.push(
                AuditEvent::new(Actor::System, Action::AccessExpire, requester)
                    .detail("request", id)
                    .detail("role", role),
            );
        }
        if !events.is_empty() {
            w.audit(&events).await?;
        }
        w.commit().await?;
        Ok(events.len())
    }
}

/// The request `id`, if `decider` may decide it now.
async fn pending(
    w: &mut crate::Write,
    id: &str,
    decider: &str,
    now_us: i64,
) -> Result<Result<AccessRequest, DecisionError>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM access_requests WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(w.conn()?)
    .await?;
    let Some(row) = row else {
        return Ok(Err(DecisionError::Unknown(id.to_owned())));
    };
    let r = request(&row)?;
    if r.status == RequestStatus::Pending && r.pending_until_us <= now_us {
        return Ok(Err(DecisionError::NotPending(
            RequestStatus::Expired.as_str(),
        )));
    }
    if r.status != RequestStatus::Pending {
        return Ok(Err(DecisionError::NotPending(r.status.as_str())));
    }
    if r.requester == decider {
        return Ok(Err(DecisionError::OwnRequest));
    }
    Ok(Ok(r))
}

fn request(row: &AnyRow) -> Result<AccessRequest, StoreError> {
    let status: String = row.try_get("status")?;
    let deciders: String = row.try_get("deciders")?;
    Ok(AccessRequest {
        id: row.try_get("id")?,
        requester: row.try_get("requester")?,
        role: row.try_get("role")?,
        hours: row.try_get("hours")?,
        reason: row.try_get("reason")?,
        status: RequestStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("request status {status:?}")))?,
        created_us: row.try_get("created_us")?,
        pending_until_us: row.try_get("pending_until_us")?,
        deciders: deciders
            .split(',')
            .filter(|d| !d.is_empty())
            .map(str::to_owned)
            .collect(),
        note: row.try_get("note")?,
    })
}
