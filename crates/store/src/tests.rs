//! The store suite, run against both engines.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeSet;

use rampart_access::{Binding, Permission, Role, RoleName, Target, TargetKind, TargetName};
use rampart_audit::{Action, Actor, AuditEvent, Verifier};
use rampart_core::Environment;
use rampart_identity::session::Stage;
use rampart_identity::{AccountKind, Email, Username};

use crate::{NewAccount, SessionRow, Store, StoreError};

fn ev(action: Action, subject: &str) -> AuditEvent {
    AuditEvent::new(Actor::System, action, subject)
}

fn person(name: &str, email: &str) -> NewAccount {
    NewAccount {
        username: Username::parse(name).unwrap(),
        email: Email::parse(email).unwrap(),
        display_name: name.into(),
        kind: AccountKind::Person,
        owner: None,
    }
}

async fn suite(store: &Store) {
    // Accounts are unique by user name and by email, case-insensitively.
    let alice = store
        .create_account(
            &person("alice", "alice@example.com"),
            ev(Action::UserCreate, "alice"),
        )
        .await
        .unwrap();
    assert!(alice.active && !alice.has_mfa());
    let dup = store
        .create_account(
            &person("alice2", "ALICE@example.com"),
            ev(Action::UserCreate, "alice2"),
        )
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    assert_eq!(
        store
            .account_by_login("Alice@Example.com")
            .await
            .unwrap()
            .unwrap()
            .id,
        alice.id
    );

    // A service account needs an owning person.
    let mut svc = person("ci-bot", "ci@example.com");
    svc.kind = AccountKind::Service;
    svc.owner = Some(Username::parse("nobody").unwrap());
    assert!(matches!(
        store
            .create_account(&svc, ev(Action::UserCreate, "ci-bot"))
            .await,
        Err(StoreError::NotFound(_))
    ));
    svc.owner = Some(Username::parse("alice").unwrap());
    let bot = store
        .create_account(&svc, ev(Action::UserCreate, "ci-bot"))
        .await
        .unwrap();
    assert_eq!(bot.owner.as_deref(), Some("alice"));

    // TOTP steps only move forward: a replayed step loses.
    store
        .enroll_totp(
            &alice.id,
            "v1.sealed",
            100,
            &["h1".into(), "h2".into()],
            ev(Action::MfaEnroll, "alice"),
        )
        .await
        .unwrap();
    assert!(store.advance_totp_step(&alice.id, 101).await.unwrap());
    assert!(!store.advance_totp_step(&alice.id, 101).await.unwrap());
    assert!(store.use_recovery_code(&alice.id, "h1").await.unwrap());
    assert!(!store.use_recovery_code(&alice.id, "h1").await.unwrap());
    assert_eq!(store.recovery_codes_left(&alice.id).await.unwrap(), 1);

    // Disabling ends sessions.
    let row = SessionRow {
        id_hash: "s1".into(),
        account_id: alice.id.clone(),
        stage: Stage::Complete,
        created_s: 10,
        last_seen_s: 10,
        source: "127.0.0.1".into(),
        revoked: false,
    };
    store.create_session(&row, &[]).await.unwrap();
    assert_eq!(store.sessions_of(&alice.id).await.unwrap().len(), 1);
    store
        .set_active(&alice.id, false, ev(Action::UserDisable, "alice"))
        .await
        .unwrap();
    assert!(store.session("s1").await.unwrap().unwrap().revoked);
    assert!(
        !store
            .account_by_id(&alice.id)
            .await
            .unwrap()
            .unwrap()
            .active
    );

    // Targets, roles, bindings round-trip.
    let target = Target {
        name: TargetName::parse("web-1").unwrap(),
        kind: TargetKind::Ssh,
        address: "127.0.0.1:22".into(),
        environment: Environment::parse("staging").unwrap(),
    };
    store
        .put_target(&target, ev(Action::TargetAdd, "web-1"))
        .await
        .unwrap();
    assert_eq!(store.targets().await.unwrap(), vec![target]);
    let role = Role {
        name: RoleName::parse("admins").unwrap(),
        permissions: BTreeSet::from([Permission::ManageUsers]),
        grants: vec![],
    };
    store
        .put_role(&role, ev(Action::RoleCreate, "admins"))
        .await
        .unwrap();
    assert_eq!(store.roles().await.unwrap(), vec![role.clone()]);
    let expires = jiff::Timestamp::from_second(2_000_000_000).unwrap();
    let binding = Binding {
        account: "alice".into(),
        role: role.name.clone(),
        expires_at: Some(expires),
    };
    store
        .bind_role(&binding, ev(Action::GrantAdd, "alice"))
        .await
        .unwrap();
    assert_eq!(store.bindings(Some("alice")).await.unwrap(), vec![binding]);
    let missing = Binding {
        account: "alice".into(),
        role: RoleName::parse("nope").unwrap(),
        expires_at: None,
    };
    assert!(matches!(
        store
            .bind_role(&missing, ev(Action::GrantAdd, "alice"))
            .await,
        Err(StoreError::NotFound(_))
    ));

    // Every change above was audited, in one unbroken chain.
    let mut v = Verifier::default();
    store.audit_verify(&mut v, |_| {}).await.unwrap().unwrap();
    let n = v.finish().unwrap();
    assert_eq!(n, 7, "one record per audited change");
    let users = store
        .audit_search(&crate::AuditQuery {
            action_prefix: Some("user.".into()),
            limit: 50,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        users.len(),
        3,
        "two creations and a disable; the refused one left no record"
    );
    assert!(
        users.windows(2).all(|w| w[0].seq > w[1].seq),
        "newest first"
    );

    // Concurrent appenders are grouped; the chain stays one line with no gaps.
    let store_ref = store;
    let appends = (0..40).map(|t| async move {
        let events: Vec<_> = (0..5)
            .map(|i| ev(Action::Authorize, &format!("c{t}-{i}")))
            .collect();
        store_ref.append_audit(&events).await.unwrap()
    });
    let results = futures::future::join_all(appends).await;
    let mut seqs: Vec<u64> = results.iter().flatten().map(|r| r.seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, ((n + 1)..=(n + 200)).collect::<Vec<_>>());
    for records in &results {
        assert!(
            records.windows(2).all(|w| w[1].seq == w[0].seq + 1),
            "each caller's events stay together"
        );
    }
    let n = n + 200;

    // The packed reader used by verify returns exactly what the row reader returns.
    assert_eq!(
        store.audit_page_packed(3, 50).await.unwrap(),
        store.audit_page(3, 50).await.unwrap()
    );
    assert!(
        store
            .audit_page_packed(1_000_000, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // A batch append continues the chain.
    let events: Vec<_> = (0..100)
        .map(|i| ev(Action::Authorize, &format!("t{i}")))
        .collect();
    let records = store.append_audit(&events).await.unwrap();
    assert_eq!(records.first().unwrap().seq, n + 1);
    let mut v = Verifier::default();
    store.audit_verify(&mut v, |_| {}).await.unwrap().unwrap();
    assert_eq!(v.finish().unwrap(), n + 100);
}

#[tokio::test]
async fn store_suite_passes_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
    let store = Store::open(&url).await.unwrap();
    suite(&store).await;
    // Migrations are idempotent.
    drop(store);
    let again = Store::open(&url).await.unwrap();
    assert_eq!(again.schema_version().await.unwrap(), 2);
}

#[tokio::test]
async fn store_suite_passes_on_postgres() {
    let pg = rampart_testkit::Postgres::start();
    let store = Store::open(pg.url()).await.unwrap();
    suite(&store).await;
    store.close().await;
}

/// A write whose future is dropped (a client hung up, a task was aborted) must not leave
/// SQLite locked: another connection, like a CLI process, writes at once.
#[tokio::test]
async fn an_abandoned_write_leaves_no_lock_behind() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
    let store = Store::open(&url).await.unwrap();
    {
        let mut w = store.write().await.unwrap();
        sqlx::query("INSERT INTO meta (key, value) VALUES ('left', 'behind')")
            .execute(w.conn().unwrap())
            .await
            .unwrap();
        // Dropped here without commit.
    }
    let other = Store::open(&url).await.unwrap();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        other.set_meta("next", "write"),
    )
    .await
    .expect("the other writer was blocked by an abandoned transaction")
    .unwrap();
    assert_eq!(
        store.meta("left").await.unwrap(),
        None,
        "the abandoned change was rolled back"
    );
    assert_eq!(store.meta("next").await.unwrap().as_deref(), Some("write"));
    // The first store still writes too.
    store.set_meta("again", "ok").await.unwrap();
}

/// The same when the future is dropped while BEGIN is in flight.
#[tokio::test]
async fn a_write_cancelled_during_begin_leaves_no_lock_behind() {
    use futures::FutureExt;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
    let store = Store::open(&url).await.unwrap();
    store.set_meta("warm", "connection").await.unwrap();
    for _ in 0..20 {
        // Polled once: BEGIN IMMEDIATE is sent, then the future is dropped.
        let _ = store.write().now_or_never();
    }
    let other = Store::open(&url).await.unwrap();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        other.set_meta("next", "write"),
    )
    .await
    .expect("the other writer was blocked by a cancelled BEGIN")
    .unwrap();
}
