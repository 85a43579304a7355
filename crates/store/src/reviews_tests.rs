//! Review campaigns on both engines, with an injected clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeSet;

use rampart_access::{Binding, Permission, Role, RoleName, TargetGrant, TargetPattern};
use rampart_audit::{Action, Actor, AuditEvent, AuditRecord};
use rampart_identity::policy::ReviewMissed;

use super::{DAY_US, Decision, MISSED_REASON, NewCampaign, ReviewError, ReviewItem};
use crate::{AuditQuery, Store};

fn role(name: &str, permissions: &[Permission], reaches: bool) -> Role {
    Role {
        name: RoleName::parse(name).unwrap(),
        permissions: permissions.iter().copied().collect::<BTreeSet<_>>(),
        grants: if reaches {
            vec![TargetGrant {
                target: TargetPattern::parse("web-*").unwrap(),
                environment: None,
                login: "deploy".into(),
                forward: vec![],
            }]
        } else {
            vec![]
        },
    }
}

async fn grant(store: &Store, account: &str, role: &str) {
    let ev = AuditEvent::new(Actor::Cli("op".into()), Action::GrantAdd, account)
        .detail("role", role)
        .detail("expires", "never");
    store
        .bind_role(
            &Binding {
                account: account.into(),
                role: RoleName::parse(role).unwrap(),
                expires_at: None,
            },
            ev,
        )
        .await
        .unwrap();
}

async fn held(store: &Store, account: &str, role: &str) -> bool {
    store
        .bindings(Some(account))
        .await
        .unwrap()
        .iter()
        .any(|b| b.role.as_str() == role)
}

async fn records(store: &Store, prefix: &str) -> Vec<AuditRecord> {
    store
        .audit_search(&AuditQuery {
            action_prefix: Some(prefix.into()),
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap()
}

async fn suite(store: &Store) {
    for name in ["alice", "bob", "carol", "dave"] {
        store
            .create_account(
                &crate::NewAccount {
                    username: rampart_identity::Username::parse(name).unwrap(),
                    email: rampart_identity::Email::parse(&format!("{name}@example.com")).unwrap(),
                    display_name: name.into(),
                    kind: rampart_identity::AccountKind::Person,
                    owner: None,
                },
                AuditEvent::new(Actor::System, Action::UserCreate, name),
            )
            .await
            .unwrap();
    }
    for r in [
        role("reviewers", &[Permission::ReviewAccess], false),
        role("ops", &[], true),
        role("op_s", &[], true),
        role("viewers", &[Permission::ViewAudit], false),
    ] {
        store
            .put_role(&r, AuditEvent::new(Actor::System, Action::RoleCreate, "r"))
            .await
            .unwrap();
    }
    grant(store, "alice", "reviewers").await;
    for who in ["bob", "carol", "dave"] {
        grant(store, who, "ops").await;
    }
    grant(store, "bob", "viewers").await;
    let now = crate::now_us();
    // bob used ops two days ago on web-1 (and a role whose name only looks like it, once).
    store
        .append_audit(&[
            AuditEvent::new(Actor::User("bob".into()), Action::SshSessionStart, "web-1")
                .detail("role", "ops"),
            AuditEvent::new(
                Actor::User("carol".into()),
                Action::SshSessionStart,
                "web-2",
            )
            .detail("role", "opxs"),
        ])
        .await
        .unwrap();

    let campaign = store
        .start_review(
            NewCampaign {
                now_us: now,
                deadline_us: now + 7 * DAY_US,
                missed: ReviewMissed::Revoke,
                period_us: 30 * DAY_US,
                unless_since_us: None,
            },
            Actor::Cli("op".into()),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(campaign.open);
    let items = store.review_items(&campaign.id).await.unwrap();
    let who: Vec<(&str, &str, &str)> = items
        .iter()
        .map(|i| (i.account.as_str(), i.role.as_str(), i.reviewer.as_str()))
        .collect();
    // Only grants that reach a target; alice reviews them all.
    assert_eq!(
        who,
        vec![
            ("bob", "ops", "alice"),
            ("carol", "ops", "alice"),
            ("dave", "ops", "alice")
        ]
    );
    let bob = &items[0];
    assert_eq!(bob.granted_by, "cli:op");
    assert!(bob.last_use_us.is_some());
    assert_eq!((bob.sessions, bob.targets.as_str()), (1, "web-1"));
    let carol = &items[1];
    assert_eq!((carol.last_use_us, carol.sessions), (None, 0));

    // The schedule opens nothing while a campaign is recent.
    let again = store
        .start_review(
            NewCampaign {
                now_us: now + 1,
                deadline_us: now + 2,
                missed: ReviewMissed::Revoke,
                period_us: DAY_US,
                unless_since_us: Some(now - DAY_US),
            },
            Actor::System,
        )
        .await
        .unwrap();
    assert_eq!(again, None);

    let decide = |item: &ReviewItem, keep: bool, by: &str, all: bool| {
        let id = item.id.clone();
        let by = by.to_owned();
        async move {
            store
                .decide_review(
                    &id,
                    keep,
                    "still on call",
                    &by,
                    all,
                    Actor::User(by.clone()),
                    now + DAY_US,
                )
                .await
                .unwrap()
        }
    };
    assert_eq!(
        decide(bob, true, "bob", true).await,
        Err(ReviewError::OwnGrant)
    );
    assert_eq!(
        decide(bob, true, "carol", false).await,
        Err(ReviewError::NotReviewer)
    );
    assert_eq!(decide(bob, true, "alice", false).await, Ok(Decision::Keep));
    assert_eq!(
        decide(bob, false, "alice", false).await,
        Err(ReviewError::Decided("keep"))
    );
    assert_eq!(
        decide(carol, false, "alice", false).await,
        Ok(Decision::Revoke)
    );
    assert!(held(store, "bob", "ops").await);
    assert!(!held(store, "carol", "ops").await);
    let removed = records(store, "grant.remove").await;
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].subject, "carol");

    // Nothing happens before the deadline; at it, dave's open item is revoked.
    assert_eq!(store.sweep_reviews(now + 7 * DAY_US - 1).await.unwrap(), 0);
    assert!(held(store, "dave", "ops").await);
    assert_eq!(store.sweep_reviews(now + 7 * DAY_US).await.unwrap(), 1);
    assert!(!held(store, "dave", "ops").await);
    assert!(held(store, "bob", "ops").await);
    let closed = store.review_campaign(&campaign.id).await.unwrap().unwrap();
    assert!(!closed.open);
    assert_eq!(closed.closed_us, Some(now + 7 * DAY_US));
    let items = store.review_items(&campaign.id).await.unwrap();
    let dave = &items[2];
    assert_eq!(dave.decision, Decision::Revoke);
    assert_eq!(dave.reason, MISSED_REASON);
    assert_eq!(dave.decided_by, "system");
    let removed = records(store, "grant.remove").await;
    assert_eq!(removed.len(), 2);
    assert_eq!(removed[0].subject, "dave");
    assert!(removed[0].details.contains(MISSED_REASON), "{removed:?}");
    assert_eq!(records(store, "review.close").await.len(), 1);
    assert_eq!(store.sweep_reviews(now + 8 * DAY_US).await.unwrap(), 0);

    // Flagging keeps the grant.
    let flagged = store
        .start_review(
            NewCampaign {
                now_us: now + 8 * DAY_US,
                deadline_us: now + 8 * DAY_US,
                missed: ReviewMissed::Flag,
                period_us: 30 * DAY_US,
                unless_since_us: None,
            },
            Actor::Cli("op".into()),
        )
        .await
        .unwrap()
        .unwrap();
    let items = store.review_items(&flagged.id).await.unwrap();
    assert_eq!(items.len(), 1);
    // Past the deadline nobody decides any more, even before the sweep ran.
    let late = store
        .decide_review(
            &items[0].id,
            true,
            "late",
            "alice",
            true,
            Actor::User("alice".into()),
            now + 8 * DAY_US,
        )
        .await
        .unwrap();
    assert_eq!(late, Err(ReviewError::Closed));
    assert_eq!(store.sweep_reviews(now + 8 * DAY_US).await.unwrap(), 1);
    assert!(held(store, "bob", "ops").await);
    let items = store.review_items(&flagged.id).await.unwrap();
    assert_eq!(items[0].decision, Decision::Flagged);
    assert_eq!(store.review_campaigns().await.unwrap().len(), 2);
}

#[tokio::test]
async fn reviews_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
    let store = Store::open(&url).await.unwrap();
    suite(&store).await;
}

#[tokio::test]
async fn reviews_on_postgres() {
    let pg = rampart_testkit::Postgres::start();
    let store = Store::open(pg.url()).await.unwrap();
    suite(&store).await;
    store.close().await;
}

#[test]
fn grants_unused_for_30_days_are_candidates_for_removal() {
    let now = 100 * DAY_US;
    let item = |granted_days_ago: i64, used_days_ago: Option<i64>| ReviewItem {
        id: String::new(),
        campaign: String::new(),
        account: "bob".into(),
        role: "ops".into(),
        expires_us: None,
        granted_us: now - granted_days_ago * DAY_US,
        granted_by: String::new(),
        reviewer: String::new(),
        last_use_us: used_days_ago.map(|d| now - d * DAY_US),
        sessions: 0,
        targets: String::new(),
        decision: Decision::Open,
        reason: String::new(),
        decided_by: String::new(),
        decided_us: None,
    };
    assert!(item(40, None).unused(now));
    assert!(item(40, Some(31)).unused(now));
    assert!(!item(40, Some(29)).unused(now));
    // A grant made last week is not a candidate, used or not.
    assert!(!item(7, None).unused(now));
}
