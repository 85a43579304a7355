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
    let before = store.account_by_id(&alice.id).await.unwrap().unwrap();
    assert_eq!(before.last_mfa_us, None, "enrollment alone is not a check");
    assert!(store.advance_totp_step(&alice.id, 101).await.unwrap());
    let checked = store.account_by_id(&alice.id).await.unwrap().unwrap();
    assert!(
        checked.last_mfa_us.is_some(),
        "an accepted code is the latest check"
    );
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

    // App-host handoffs: a code works once, for its app, before it expires, while the
    // session it came from is live; the session it opens is that one's child.
    let child = |id: &str| SessionRow {
        id_hash: id.into(),
        ..row.clone()
    };
    let handoff = |parent: &str| crate::AppHandoff {
        app: "tool".into(),
        account_id: alice.id.clone(),
        parent_hash: parent.into(),
        source: "127.0.0.1".into(),
    };
    let later = crate::now_us() + 60_000_000;
    let opened = |name: &str, _: &crate::AppHandoff| vec![ev(Action::SessionStart, name)];
    let redeem = |code: &'static str, app: &'static str, id: &'static str| {
        let row = child(id);
        async move {
            store
                .redeem_app_handoff(code, app, &row, crate::now_us(), opened)
                .await
                .unwrap()
        }
    };
    store.create_session(&child("p1"), &[]).await.unwrap();
    store.create_session(&child("s9"), &[]).await.unwrap();
    store
        .put_app_handoff("h0", &handoff("p1"), later)
        .await
        .unwrap();
    assert_eq!(redeem("h0", "tool", "c1").await, crate::Redeemed::Opened);
    store
        .put_app_handoff("h1", &handoff("s9"), later)
        .await
        .unwrap();
    assert_eq!(redeem("h1", "tool", "a1").await, crate::Redeemed::Opened);
    assert_eq!(
        store.session("a1").await.unwrap().unwrap().account_id,
        alice.id
    );
    assert_eq!(redeem("h1", "tool", "a2").await, crate::Redeemed::Unknown);
    store
        .put_app_handoff("h2", &handoff("s9"), crate::now_us() - 1)
        .await
        .unwrap();
    assert_eq!(redeem("h2", "tool", "a3").await, crate::Redeemed::Expired);
    store
        .put_app_handoff("h4", &handoff("s9"), later)
        .await
        .unwrap();
    assert_eq!(redeem("h4", "other", "a5").await, crate::Redeemed::Unknown);
    assert_eq!(redeem("h4", "tool", "a6").await, crate::Redeemed::Unknown);
    for id in ["a2", "a3", "a5", "a6"] {
        assert!(store.session(id).await.unwrap().is_none(), "{id}");
    }

    // Revoking a session revokes the app-host sessions opened from it, and only those;
    // the record counts them. A handoff from an ended session opens nothing.
    assert!(
        store
            .revoke_session(&alice.id, "p1", ev(Action::SessionEnd, "alice"))
            .await
            .unwrap()
    );
    assert!(store.session("p1").await.unwrap().unwrap().revoked);
    assert!(store.session("c1").await.unwrap().unwrap().revoked);
    assert!(!store.session("a1").await.unwrap().unwrap().revoked);
    assert!(!store.session("s9").await.unwrap().unwrap().revoked);
    let ended = store
        .audit_search(&crate::AuditQuery {
            action_prefix: Some("session.end".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ended.len(), 1);
    assert!(
        ended[0].details.contains(r#""app_sessions":"1""#),
        "{}",
        ended[0].details
    );
    store
        .put_app_handoff("h3", &handoff("p1"), later)
        .await
        .unwrap();
    assert_eq!(
        redeem("h3", "tool", "a4").await,
        crate::Redeemed::ParentEnded
    );
    assert!(store.session("a4").await.unwrap().is_none());
    assert!(
        store
            .revoke_session(&alice.id, "s9", ev(Action::SessionEnd, "alice"))
            .await
            .unwrap()
    );
    assert!(store.session("a1").await.unwrap().unwrap().revoked);
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
    assert_eq!(
        store.bindings(Some("alice")).await.unwrap(),
        vec![binding.clone()]
    );
    // Changing a role keeps the grants to it (a delete and insert cascaded them away).
    let mut wider = role.clone();
    wider.permissions.insert(Permission::ViewAudit);
    store
        .put_role(&wider, ev(Action::RoleCreate, "admins"))
        .await
        .unwrap();
    assert_eq!(store.roles().await.unwrap(), vec![wider]);
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
    assert_eq!(n, 12, "one record per audited change");
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

    // A page of some actions: the others are passed by in the database, and the page says
    // how far it looked.
    let n = n + 100;
    let wanted = [Action::UserCreate.as_str(), Action::RoleCreate.as_str()];
    let all = store.audit_page(0, 10_000).await.unwrap();
    let expected: Vec<_> = all
        .iter()
        .filter(|r| wanted.contains(&r.action.as_str()))
        .cloned()
        .collect();
    assert!(expected.len() >= 4 && expected.len() < all.len());
    let (page, reached) = store
        .audit_page_of(0, 1_000_000, 1000, &wanted)
        .await
        .unwrap();
    assert_eq!(page, expected);
    assert_eq!(
        reached, n,
        "nothing newer: the look reached the newest record"
    );
    let (page, reached) = store.audit_page_of(0, 5, 1000, &wanted).await.unwrap();
    assert_eq!(reached, 5, "a short span stops the look");
    assert_eq!(
        page,
        expected
            .iter()
            .filter(|r| r.seq <= 5)
            .cloned()
            .collect::<Vec<_>>()
    );
    let (page, reached) = store.audit_page_of(0, 1_000_000, 2, &wanted).await.unwrap();
    assert_eq!(page, expected[..2]);
    assert_eq!(
        reached, expected[1].seq,
        "a full page stops at its last record"
    );
    assert_eq!(
        store.audit_page_of(n, 10, 10, &wanted).await.unwrap(),
        (vec![], n),
        "past the newest record the look stays put"
    );

    // An SSH key belongs to one account only (ACC-1); sessions are live until ended.
    store
        .add_ssh_key(
            &alice.id,
            "SHA256:k1",
            "ssh-ed25519 AAAA",
            "laptop",
            ev(Action::SshKeyAdd, "alice"),
        )
        .await
        .unwrap();
    let again = store
        .add_ssh_key(
            &bot.id,
            "SHA256:k1",
            "ssh-ed25519 AAAA",
            "stolen",
            ev(Action::SshKeyAdd, "ci-bot"),
        )
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert_eq!(
        store.ssh_key("SHA256:k1").await.unwrap().unwrap().username,
        "alice"
    );
    assert_eq!(
        store
            .pin_host_key("web-1", "SHA256:h1", "k", ev(Action::SshHostKey, "web-1"))
            .await
            .unwrap(),
        "SHA256:h1"
    );
    assert_eq!(
        store
            .pin_host_key("web-1", "SHA256:h2", "k", ev(Action::SshHostKey, "web-1"))
            .await
            .unwrap(),
        "SHA256:h1"
    );
    let session = crate::SshSession {
        id: "s1".into(),
        account: "alice".into(),
        target: "web-1".into(),
        environment: "prod".into(),
        login: "deploy".into(),
        source: "127.0.0.1".into(),
        node: "n1".into(),
        started_us: crate::now_us(),
        ended_us: None,
        bytes_up: 0,
        bytes_down: 0,
        exit_status: None,
        recorded: true,
        kill_us: None,
    };
    store
        .start_ssh_session(&session, ev(Action::SshSessionStart, "web-1"))
        .await
        .unwrap();
    store
        .kill_ssh_session("s1", ev(Action::SshSessionKill, "s1"))
        .await
        .unwrap();
    assert_eq!(store.ssh_kills("n1").await.unwrap(), vec!["s1".to_string()]);
    store
        .end_ssh_session("s1", 10, 20, Some(0), ev(Action::SshSessionEnd, "web-1"))
        .await
        .unwrap();
    assert!(store.ssh_kills("n1").await.unwrap().is_empty());
    assert!(
        store
            .kill_ssh_session("s1", ev(Action::SshSessionKill, "s1"))
            .await
            .is_err()
    );
    let done = store.ssh_session("s1").await.unwrap().unwrap();
    assert_eq!(
        (done.bytes_up, done.bytes_down, done.exit_status),
        (10, 20, Some(0))
    );
    db_gateway(store).await;
    webauthn(store).await;
    anomaly_state(store).await;
}

/// The anomaly rules' saved state only moves forward: a save that has read less than the
/// one stored (another node's, older) leaves it.
async fn anomaly_state(store: &Store) {
    assert_eq!(store.anomaly_state().await.unwrap(), None);
    assert!(store.save_anomaly_state(10, "ten").await.unwrap());
    assert!(!store.save_anomaly_state(7, "seven").await.unwrap());
    assert!(!store.save_anomaly_state(10, "ten again").await.unwrap());
    assert_eq!(
        store.anomaly_state().await.unwrap(),
        Some((10, "ten".to_owned()))
    );
    assert!(store.save_anomaly_state(12, "twelve").await.unwrap());
    assert_eq!(
        store.anomaly_state().await.unwrap(),
        Some((12, "twelve".to_owned()))
    );
    // A number that does not parse: no state (not an error), and the next save mends it.
    store.set_meta("anomaly.state.seq", "twelve").await.unwrap();
    assert_eq!(store.anomaly_state().await.unwrap(), None);
    assert!(store.save_anomaly_state(3, "three").await.unwrap());
    assert_eq!(
        store.anomaly_state().await.unwrap(),
        Some((3, "three".to_owned()))
    );
}

/// WebAuthn: a ceremony's state is taken once (a second take finds nothing), an expired
/// one is refused and gone, a credential id belongs to one account, a use moves the last
/// second-factor check, and an admin reset removes the keys.
async fn webauthn(store: &Store) {
    use crate::{Ceremony, TakenChallenge};
    let wendy = store
        .create_account(
            &person("wendy", "wendy@example.com"),
            ev(Action::UserCreate, "wendy"),
        )
        .await
        .unwrap();
    let now = crate::now_us();
    store
        .put_webauthn_challenge(
            "s1",
            Ceremony::Login,
            &wendy.id,
            "{\"a\":1}",
            now + 60_000_000,
        )
        .await
        .unwrap();
    // Another account or another ceremony does not see it.
    assert_eq!(
        store
            .take_webauthn_challenge("s1", Ceremony::Register, &wendy.id, now)
            .await
            .unwrap(),
        TakenChallenge::Missing
    );
    assert_eq!(
        store
            .take_webauthn_challenge("s1", Ceremony::Login, "someone-else", now)
            .await
            .unwrap(),
        TakenChallenge::Missing
    );
    assert_eq!(
        store
            .take_webauthn_challenge("s1", Ceremony::Login, &wendy.id, now)
            .await
            .unwrap(),
        TakenChallenge::Fresh("{\"a\":1}".into())
    );
    assert_eq!(
        store
            .take_webauthn_challenge("s1", Ceremony::Login, &wendy.id, now)
            .await
            .unwrap(),
        TakenChallenge::Missing,
        "a state is used once"
    );
    // A newer ceremony of the same session replaces the older; an expired one is refused.
    store
        .put_webauthn_challenge("s1", Ceremony::Login, &wendy.id, "old", now + 60_000_000)
        .await
        .unwrap();
    store
        .put_webauthn_challenge("s1", Ceremony::Login, &wendy.id, "new", now + 60_000_000)
        .await
        .unwrap();
    assert_eq!(
        store
            .take_webauthn_challenge("s1", Ceremony::Login, &wendy.id, now + 61_000_000)
            .await
            .unwrap(),
        TakenChallenge::Expired
    );
    assert_eq!(
        store
            .take_webauthn_challenge("s1", Ceremony::Login, &wendy.id, now)
            .await
            .unwrap(),
        TakenChallenge::Missing
    );

    // Keys: one account per credential id; counted on the account.
    assert!(!wendy.has_mfa());
    let key = store
        .add_webauthn_key(
            &wendy.id,
            "cred-1",
            "{}",
            "laptop",
            ev(Action::MfaEnroll, "wendy"),
        )
        .await
        .unwrap();
    let dup = store
        .add_webauthn_key(
            &wendy.id,
            "cred-1",
            "{}",
            "again",
            ev(Action::MfaEnroll, "wendy"),
        )
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    let wendy = store.account_by_id(&wendy.id).await.unwrap().unwrap();
    assert!(wendy.has_mfa() && !wendy.has_totp() && wendy.webauthn_keys == 1);
    assert_eq!(wendy.last_mfa_us, None);
    assert!(
        store
            .use_webauthn_key(&wendy.id, "cred-1", Some("{\"counter\":2}"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .use_webauthn_key(&wendy.id, "cred-9", None)
            .await
            .unwrap()
    );
    let used = store.webauthn_keys(&wendy.id).await.unwrap();
    assert_eq!(used.len(), 1);
    assert_eq!(used[0].passkey, "{\"counter\":2}");
    assert!(used[0].last_used_us.is_some());
    let wendy = store.account_by_id(&wendy.id).await.unwrap().unwrap();
    assert!(
        wendy.last_mfa_us.is_some(),
        "a key's use is a second-factor check"
    );
    assert!(
        !store
            .remove_webauthn_key("someone-else", &key.id, ev(Action::MfaRemove, "x"))
            .await
            .unwrap(),
        "only the owner's key is removed"
    );
    store
        .add_webauthn_key(
            &wendy.id,
            "cred-2",
            "{}",
            "phone",
            ev(Action::MfaEnroll, "wendy"),
        )
        .await
        .unwrap();
    assert!(
        store
            .remove_webauthn_key(&wendy.id, &key.id, ev(Action::MfaRemove, "wendy"))
            .await
            .unwrap()
    );
    store
        .reset_mfa(&wendy.id, ev(Action::MfaReset, "wendy"))
        .await
        .unwrap();
    let wendy = store.account_by_id(&wendy.id).await.unwrap().unwrap();
    assert!(!wendy.has_mfa(), "a reset removes the keys too");
}

/// Database tokens: live ones are found by account and target, an expired or revoked one
/// is not; a credential is replaced whole; change counts group by target and person.
async fn db_gateway(store: &Store) {
    let now = crate::now_us();
    let new = |hash: &'static str, target: &'static str, expires_us: i64| crate::NewDbToken {
        account: "alice",
        target,
        db_role: "app_rw",
        token_hash: hash,
        scram_stored: "00",
        scram_server: "11",
        issued_by: "test",
        expires_us,
    };
    let live = store
        .create_db_token(
            &new("h1", "orders-db", now + 3_600_000_000),
            ev(Action::DbTokenCreate, "orders-db"),
        )
        .await
        .unwrap();
    store
        .create_db_token(
            &new("h2", "orders-db", now - 1),
            ev(Action::DbTokenCreate, "orders-db"),
        )
        .await
        .unwrap();
    let revoked = store
        .create_db_token(
            &new("h3", "orders-db", now + 3_600_000_000),
            ev(Action::DbTokenCreate, "orders-db"),
        )
        .await
        .unwrap();
    store
        .create_db_token(
            &new("h4", "billing-db", now + 3_600_000_000),
            ev(Action::DbTokenCreate, "billing-db"),
        )
        .await
        .unwrap();
    store
        .revoke_db_token(&revoked.id, Some("alice"), ev(Action::DbTokenRevoke, "t"))
        .await
        .unwrap();
    assert!(matches!(
        store
            .revoke_db_token(&revoked.id, None, ev(Action::DbTokenRevoke, "t"))
            .await,
        Err(StoreError::NotFound(_))
    ));
    let found = store
        .live_db_tokens("alice", "orders-db", now)
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0.id, live.id);
    assert_eq!((found[0].1.as_str(), found[0].2.as_str()), ("00", "11"));
    assert_eq!(
        store
            .db_token_by_hash("h2")
            .await
            .unwrap()
            .unwrap()
            .expires_us,
        now - 1
    );
    assert_eq!(store.db_tokens(Some("alice")).await.unwrap().len(), 4);

    let cred = |sealed: &str| crate::DbCredential {
        target: "orders-db".into(),
        db_role: "app_rw".into(),
        username: "app".into(),
        secret_sealed: sealed.into(),
        updated_us: now,
    };
    store
        .put_db_credential(&cred("s1"), ev(Action::DbCredentialSet, "orders-db"))
        .await
        .unwrap();
    store
        .put_db_credential(&cred("s2"), ev(Action::DbCredentialSet, "orders-db"))
        .await
        .unwrap();
    assert_eq!(
        store
            .db_credential("orders-db", "app_rw")
            .await
            .unwrap()
            .unwrap()
            .secret_sealed,
        "s2"
    );
    assert!(
        store
            .db_credential("orders-db", "other")
            .await
            .unwrap()
            .is_none()
    );

    let change =
        |who: &str, db: &str| AuditEvent::new(Actor::User(who.into()), Action::DbChange, db);
    store
        .append_audit(&[
            change("alice", "orders-db"),
            change("alice", "orders-db"),
            change("bob", "orders-db"),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.audit_counts("db.change", now - 1).await.unwrap(),
        vec![
            ("orders-db".to_owned(), "user:alice".to_owned(), 2),
            ("orders-db".to_owned(), "user:bob".to_owned(), 1)
        ]
    );

    // A session's records: its own, from its start record to its end record, whatever
    // else the log holds around and between them.
    let (one, two) = (
        uuid::Uuid::now_v7().to_string(),
        uuid::Uuid::now_v7().to_string(),
    );
    let db = |action: Action, session: &str, text: &str| {
        AuditEvent::new(Actor::User("alice".into()), action, "orders-db")
            .detail("session", session)
            .detail("statement", text)
    };
    let appended = store
        .append_audit(&[
            db(Action::DbStatement, &one, "before its start"),
            db(Action::DbSessionStart, &one, "start"),
            db(Action::DbSessionStart, &two, "start"),
            db(Action::DbStatement, &one, "SELECT 1"),
            db(Action::DbStatement, &two, "SELECT 2"),
            ev(Action::AppRequest, "grafana"),
            db(Action::DbChange, &one, "UPDATE t SET x = $1"),
            db(Action::DbSessionEnd, &one, "end"),
            db(Action::DbStatement, &two, "SELECT 3"),
            db(Action::DbStatement, &one, "after its end"),
        ])
        .await
        .unwrap();
    let seqs = |records: Vec<rampart_audit::AuditRecord>| -> Vec<u64> {
        records.iter().map(|r| r.seq).collect()
    };
    let at = |i: usize| appended[i].seq;
    assert_eq!(
        seqs(store.db_session_records(&one).await.unwrap()),
        [at(1), at(3), at(6), at(7)]
    );
    assert_eq!(
        seqs(store.db_session_records(&two).await.unwrap()),
        [at(2), at(4), at(8)],
        "a session without an end record runs to the newest record"
    );
    assert!(
        store
            .db_session_records(&uuid::Uuid::now_v7().to_string())
            .await
            .unwrap()
            .is_empty()
    );
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
    assert_eq!(
        again.schema_version().await.unwrap(),
        crate::migrate::latest()
    );
}

/// A store at the newest schema opens without SQLite's write lock: a second store on the
/// same file (as a CLI command beside `serve`) opens while the first holds the lock, and a
/// store that lacks a migration still gets it.
#[tokio::test]
async fn a_migrated_store_opens_while_another_holds_the_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
    let first = Store::open(&url).await.unwrap();
    let held = first.write().await.unwrap();
    let second = Store::open(&url).await.unwrap();
    assert_eq!(
        second.schema_version().await.unwrap(),
        crate::migrate::latest()
    );
    drop(held);

    // A store that lacks a migration (here the newest, the hourly counts, undone by hand)
    // gets it on the next open: the check is of every version, not of the table alone.
    for statement in [
        "DROP TABLE audit_hourly",
        "DROP TABLE audit_rollup",
        "DELETE FROM schema_migrations WHERE version = 13",
    ] {
        sqlx::query(statement).execute(first.pool()).await.unwrap();
    }
    drop((first, second));
    let third = Store::open(&url).await.unwrap();
    assert_eq!(
        third.schema_version().await.unwrap(),
        crate::migrate::latest()
    );
    sqlx::query("SELECT COUNT(*) FROM audit_hourly")
        .fetch_one(third.pool())
        .await
        .unwrap();
}

/// The audit committer runs on the runtime it is given: records appended from elsewhere
/// are committed there, and once that runtime ends, appends fail with the committer gone
/// instead of waiting.
#[tokio::test]
async fn the_audit_committer_runs_on_the_runtime_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
    let (tell, told) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tell.send(runtime.handle().clone()).unwrap();
        runtime.block_on(async { stopped.await.unwrap() });
    });
    let handle = told.recv().unwrap();
    let store = Store::open_with_committer(&url, &handle).await.unwrap();
    let records = store
        .append_audit(&[ev(Action::Startup, "committed elsewhere")])
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(
        store.audit_head().await.unwrap().unwrap().seq,
        records[0].seq
    );

    stop.send(()).unwrap();
    thread.join().unwrap();
    let after = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        store.append_audit(&[ev(Action::Startup, "no committer")]),
    )
    .await
    .expect("an append without a committer fails at once");
    assert!(
        matches!(&after, Err(StoreError::AuditWrite(why)) if why.contains("stopped")),
        "{after:?}"
    );
    assert_eq!(
        store.audit_head().await.unwrap().unwrap().seq,
        records[0].seq
    );
}

/// A page of some actions is read along its sequence range, whatever the log holds
/// before it: through the index by action SQLite would walk every record of those actions
/// ever written (and sort them), which grew with the log.
#[tokio::test]
async fn a_page_of_some_actions_is_read_along_its_sequence_range() {
    use sqlx::Row;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
    let store = Store::open(&url).await.unwrap();
    let sql = crate::audit::page_of_sql(crate::Engine::Sqlite, 2);
    let plan: Vec<String> = sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
        .bind(10_i64)
        .bind(20_i64)
        .bind("%s")
        .bind(5_i64)
        .bind("db.statement")
        .bind("login.mfa")
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<String, _>("detail"))
        .collect();
    assert!(
        plan.iter()
            .any(|step| step == "SEARCH audit_log USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"),
        "{plan:?}\n{sql}"
    );
    assert!(
        !plan.iter().any(|step| step.contains("audit_action_time")),
        "{plan:?}\n{sql}"
    );
}

/// A search by a rare action goes through the index by action; one by an action with at
/// least `FEW_ACTIONS` records walks the log back. Both give the newest records first.
#[tokio::test]
async fn searches_by_a_rare_and_by_a_common_action_give_the_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
    let store = Store::open(&url).await.unwrap();
    rare_and_common(&store).await;
}

/// The same on PostgreSQL, whose collation makes a range of names no prefix.
#[tokio::test]
async fn searches_by_a_rare_and_by_a_common_action_give_the_newest_first_on_postgres() {
    let pg = rampart_testkit::Postgres::start();
    let store = Store::open(pg.url()).await.unwrap();
    rare_and_common(&store).await;
    store.close().await;
}

/// 50,000 statements with three session starts among them and a session end: a search
/// by a session prefix goes through the index by action, one by the statements walks the
/// log back, and one by the statements of a recent window, where only a few fall, goes
/// through the index again. All give the newest records first.
async fn rare_and_common(store: &Store) {
    let common = crate::audit::FEW_ACTIONS as usize;
    let mut events: Vec<AuditEvent> = (0..common)
        .map(|i| ev(Action::DbStatement, &format!("s{i}")))
        .collect();
    for i in [10, common / 2, common - 10] {
        events.insert(i, ev(Action::DbSessionStart, &format!("start{i}")));
    }
    events.push(ev(Action::DbSessionEnd, "end"));
    let appended = store.append_audit(&events).await.unwrap();
    let names = |n: &[&str]| Some(n.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
    assert_eq!(store.few_actions("db.statement", None).await.unwrap(), None);
    assert_eq!(
        store.few_actions("db.session", None).await.unwrap(),
        names(&["db.session.end", "db.session.start"])
    );
    assert_eq!(
        store.few_actions("nothing", None).await.unwrap(),
        names(&[])
    );
    let search = |prefix: &str, limit: u32, since_us: Option<i64>| crate::AuditQuery {
        action_prefix: Some(prefix.into()),
        limit,
        since_us,
        ..Default::default()
    };
    let newest = |prefix: &str, n: usize, after: u64| -> Vec<u64> {
        appended
            .iter()
            .rev()
            .filter(|r| r.action.starts_with(prefix) && r.seq > after)
            .take(n)
            .map(|r| r.seq)
            .collect()
    };
    let seqs = |records: Vec<rampart_audit::AuditRecord>| -> Vec<u64> {
        records.iter().map(|r| r.seq).collect()
    };
    for (prefix, limit) in [
        ("db.session", 100),
        ("db.session.s", 100),
        ("db.statement", 20),
        ("nothing", 10),
    ] {
        assert_eq!(
            seqs(
                store
                    .audit_search(&search(prefix, limit, None))
                    .await
                    .unwrap()
            ),
            newest(prefix, limit as usize, 0),
            "{prefix}"
        );
    }

    // All but the last 30 records a day old: a week of statements is common, the last
    // hour's are few, and fewer than the search asks for.
    let head = appended.last().unwrap().seq;
    let day_us = 86_400_000_000_i64;
    sqlx::query("UPDATE audit_log SET time_us = time_us - $1 WHERE seq <= $2")
        .bind(day_us)
        .bind(i64::try_from(head - 30).unwrap())
        .execute(store.pool())
        .await
        .unwrap();
    let hour_ago = crate::now_us() - day_us / 24;
    assert_eq!(
        store
            .few_actions("db.statement", Some(hour_ago - 7 * day_us))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .few_actions("db.statement", Some(hour_ago))
            .await
            .unwrap(),
        names(&["db.statement"])
    );
    assert_eq!(
        seqs(
            store
                .audit_search(&search("db.statement", 100, Some(hour_ago)))
                .await
                .unwrap()
        ),
        newest("db.statement", 100, head - 30)
    );
}

async fn verified(store: &Store) -> u64 {
    let mut verifier = Verifier::default();
    store
        .audit_verify(&mut verifier, |_| {})
        .await
        .unwrap()
        .expect("chain intact");
    verifier.finish().expect("chain intact")
}

/// Sessions that time out are ended and audited with the reason; live ones and
/// half-finished logins are left alone.
#[tokio::test]
async fn timed_out_sessions_are_ended_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
    let store = Store::open(&url).await.unwrap();
    let alice = store
        .create_account(
            &person("alice", "alice@example.com"),
            ev(Action::UserCreate, "alice"),
        )
        .await
        .unwrap();
    let policy = rampart_identity::session::SessionPolicy {
        idle_secs: 1800,
        absolute_secs: 12 * 3600,
    };
    let now = 100_000;
    let session = |id: &str, stage: Stage, created_s: i64, last_seen_s: i64| SessionRow {
        id_hash: id.into(),
        account_id: alice.id.clone(),
        stage,
        created_s,
        last_seen_s,
        source: "10.0.0.1".into(),
        revoked: false,
    };
    for row in [
        session("idle", Stage::Complete, now - 3600, now - 1800),
        session("old", Stage::Complete, now - 12 * 3600, now - 10),
        session("live", Stage::Complete, now - 3600, now - 60),
        session("half", Stage::PasswordOk, now - 3600, now - 3600),
    ] {
        store.create_session(&row, &[]).await.unwrap();
    }
    assert_eq!(store.end_timed_out_sessions(&policy, now).await.unwrap(), 2);
    assert!(store.session("idle").await.unwrap().unwrap().revoked);
    assert!(store.session("old").await.unwrap().unwrap().revoked);
    assert!(!store.session("live").await.unwrap().unwrap().revoked);
    assert!(!store.session("half").await.unwrap().unwrap().revoked);
    let mut reasons: Vec<String> = store
        .audit_search(&crate::AuditQuery {
            action_prefix: Some("session.end".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|r| format!("{} {} {}", r.actor, r.subject, r.details))
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            r#"system alice {"reason":"absolute"}"#,
            r#"system alice {"reason":"idle"}"#
        ]
    );
    // Done once: a second sweep finds nothing.
    assert_eq!(store.end_timed_out_sessions(&policy, now).await.unwrap(), 0);
}

/// An access request: never decided by its requester, granted time-boxed by the approval
/// that completes the count, closed to decisions once denied or lapsed.
#[tokio::test]
async fn access_requests_grant_only_after_enough_approvals_by_others() {
    use crate::{AccessRequest, Approval, DecisionError, RequestStatus};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
    let store = Store::open(&url).await.unwrap();
    let role = Role {
        name: RoleName::parse("ops").unwrap(),
        permissions: BTreeSet::new(),
        grants: vec![],
    };
    store
        .put_role(&role, ev(Action::RoleCreate, "ops"))
        .await
        .unwrap();
    let now = 1_800_000_000_000_000;
    let request = |id: &str| AccessRequest {
        id: id.into(),
        requester: "vendor".into(),
        role: "ops".into(),
        hours: 4,
        reason: "ticket 1234".into(),
        status: RequestStatus::Pending,
        created_us: now,
        pending_until_us: now + 24 * 3_600_000_000,
        deciders: vec![],
        note: String::new(),
    };
    let vendor = Actor::User("vendor".into());
    store
        .create_access_request(&request("r1"), vendor.clone())
        .await
        .unwrap();
    let approve = |who: &'static str| {
        let store = &store;
        async move {
            store
                .approve_access_request("r1", who, Actor::User(who.into()), 2, now)
                .await
                .unwrap()
        }
    };
    assert_eq!(approve("vendor").await, Err(DecisionError::OwnRequest));
    assert_eq!(approve("alice").await, Ok(Approval::Counted));
    assert!(store.bindings(Some("vendor")).await.unwrap().is_empty());
    assert_eq!(
        approve("alice").await,
        Err(DecisionError::AlreadyApproved("alice".into()))
    );
    let until = now + 4 * 3_600_000_000;
    assert_eq!(approve("bob").await, Ok(Approval::Granted(until)));
    let bindings = store.bindings(Some("vendor")).await.unwrap();
    assert_eq!(bindings.len(), 1);
    assert_eq!(
        bindings[0].expires_at.map(|t| t.as_microsecond()),
        Some(until)
    );
    let stored = store.access_request("r1").await.unwrap().unwrap();
    assert_eq!(stored.status, RequestStatus::Approved);
    assert_eq!(stored.deciders, ["alice", "bob"]);
    assert_eq!(
        approve("carol").await,
        Err(DecisionError::NotPending("approved"))
    );

    // Denied, then closed.
    store
        .create_access_request(&request("r2"), vendor.clone())
        .await
        .unwrap();
    store
        .deny_access_request("r2", "alice", Actor::User("alice".into()), "no ticket", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .approve_access_request("r2", "bob", Actor::User("bob".into()), 1, now)
            .await
            .unwrap(),
        Err(DecisionError::NotPending("denied"))
    );

    // Lapsed: refused at once, and marked by the sweep.
    store
        .create_access_request(&request("r3"), vendor)
        .await
        .unwrap();
    let late = now + 25 * 3_600_000_000;
    assert_eq!(
        store
            .approve_access_request("r3", "bob", Actor::User("bob".into()), 1, late)
            .await
            .unwrap(),
        Err(DecisionError::NotPending("expired"))
    );
    assert_eq!(store.expire_access_requests(late).await.unwrap(), 1);
    assert_eq!(
        store.access_request("r3").await.unwrap().unwrap().status,
        RequestStatus::Expired
    );
    let actions: Vec<String> = store
        .audit_search(&crate::AuditQuery {
            action_prefix: Some("access.".into()),
            limit: 20,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.action)
        .collect();
    assert_eq!(
        actions,
        [
            "access.expire",
            "access.request",
            "access.deny",
            "access.request",
            "access.approve",
            "access.approve",
            "access.request"
        ]
    );
}

/// A file store whose chain head is known, so that every later group is one direct commit.
async fn warm_file_store(dir: &tempfile::TempDir) -> std::sync::Arc<Store> {
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
    let store = std::sync::Arc::new(Store::open(&url).await.unwrap());
    store
        .append_audit(&[ev(Action::Authorize, "warm")])
        .await
        .unwrap();
    store
}

/// Two sessions with statements executing: the first to append waits while the other's
/// record is on its way (one round of the runtime), and both land in one commit.
#[tokio::test]
async fn records_on_their_way_join_the_same_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = warm_file_store(&dir).await;
    let before = store.direct_audit_commits().await;
    let (a, b) = (store.executing(), store.executing());
    a.begin();
    b.begin();
    let first = tokio::spawn({
        let store = store.clone();
        async move {
            a.end();
            store.append_audit(&[ev(Action::Authorize, "a")]).await
        }
    });
    let second = tokio::spawn({
        let store = store.clone();
        async move {
            // Still executing when the committer takes the first record.
            tokio::task::yield_now().await;
            b.end();
            store.append_audit(&[ev(Action::Authorize, "b")]).await
        }
    });
    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();
    assert_eq!(store.direct_audit_commits().await - before, 1, "one commit");
    assert_eq!(verified(&store).await, 3);
}

/// A session whose statement never ends (a long query, a hung server) delays others'
/// commits by a few rounds of the runtime, never more: the append completes.
#[tokio::test]
async fn a_record_that_never_comes_holds_no_commit_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = warm_file_store(&dir).await;
    let stuck = store.executing();
    stuck.begin();
    stuck.begin();
    let records = store
        .append_audit(&[ev(Action::Authorize, "alone")])
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(verified(&store).await, 2);
    // Begun twice, counted once; dropping it uncounts it.
    drop(stuck);
    assert_eq!(
        store.executing.load(std::sync::atomic::Ordering::Acquire),
        0
    );
}

/// Each group size has its own cached INSERT (anonymous parameters on SQLite): groups of
/// 1 to 65 events (65 takes two statements) land whole and in order, and the chain
/// verifies. Commits leave the WAL to the checkpointer, which copies all of it back.
#[tokio::test]
async fn groups_of_every_size_land_and_the_wal_is_checkpointed() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
    let store = Store::open(&url).await.unwrap();
    let mut total = 0;
    for n in 1..=65 {
        let events: Vec<AuditEvent> = (0..n)
            .map(|i| ev(Action::Authorize, &format!("g{n}-{i}")))
            .collect();
        let records = store.append_audit(&events).await.unwrap();
        let subjects: Vec<&str> = records.iter().map(|r| r.subject.as_str()).collect();
        let wanted: Vec<String> = (0..n).map(|i| format!("g{n}-{i}")).collect();
        assert_eq!(subjects, wanted, "group of {n}");
        total += n as u64;
    }
    assert_eq!(verified(&store).await, total);
    // The first group read the head in a transaction; every later one took the direct
    // path (the 65-event group as a transaction of two INSERTs).
    assert_eq!(store.direct_audit_commits().await, 64);
    let (frames, copied) = store.checkpoint_wal().await.unwrap();
    assert!(frames > 0, "the appends went to the WAL");
    assert_eq!(
        copied, frames,
        "a passive checkpoint with no reader copies every frame"
    );
}

/// Appends that never pause keep a passive checkpoint from catching up, so SQLite never
/// starts the WAL over: from the limit on, the checkpoint empties the WAL file, and later
/// appends still link to the chain (the writer's cached head stays right).
#[tokio::test]
async fn a_wal_past_the_limit_starts_over_and_appends_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
    let store = Store::open(&url).await.unwrap();
    for i in 0..20 {
        store
            .append_audit(&[ev(Action::Authorize, &format!("before {i}"))])
            .await
            .unwrap();
    }
    let wal = dir.path().join("r.db-wal");
    let (frames, copied) = super::checkpoint(&store.pool, i64::MAX).await.unwrap();
    assert!(
        frames > 0 && copied == frames,
        "below the limit: copied, kept"
    );
    let full = std::fs::metadata(&wal).unwrap().len();
    assert!(full > 0);
    // At the limit: everything copied, and the next commit writes from the start.
    let restarted = super::checkpoint(&store.pool, frames).await.unwrap();
    assert_eq!(
        restarted.0, restarted.1,
        "at the limit every frame is copied"
    );
    store
        .append_audit(&[ev(Action::Authorize, "after 0")])
        .await
        .unwrap();
    let (after, _) = super::checkpoint(&store.pool, i64::MAX).await.unwrap();
    assert!(
        after < frames,
        "the WAL started over: {after} frames after a restart, {frames} before"
    );
    for i in 1..5 {
        store
            .append_audit(&[ev(Action::Authorize, &format!("after {i}"))])
            .await
            .unwrap();
    }
    assert_eq!(
        std::fs::metadata(&wal).unwrap().len(),
        full,
        "the file is written over, not grown or emptied"
    );
    assert_eq!(verified(&store).await, 25);
}

/// Two processes append to one SQLite file, taking turns: each one's cached head goes
/// stale at every turn, and neither loses an event nor forks the chain.
#[tokio::test]
async fn appends_from_two_stores_on_one_file_keep_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
    let a = Store::open(&url).await.unwrap();
    let b = Store::open(&url).await.unwrap();
    for i in 0..10 {
        let one = a
            .append_audit(&[ev(Action::Authorize, &format!("a{i}"))])
            .await
            .unwrap();
        let two = b
            .append_audit(&[
                ev(Action::Authorize, &format!("b{i}")),
                ev(Action::Authorize, &format!("c{i}")),
            ])
            .await
            .unwrap();
        assert_eq!(two[0].seq, one[0].seq + 1, "b appended after a's record");
        assert_eq!(two[0].prev_hash, one[0].hash);
    }
    // Each store's cached head went stale at every turn: their direct
    // inserts collided on `seq` and fell back, writing nothing twice.
    assert_eq!(
        a.direct_audit_commits().await + b.direct_audit_commits().await,
        0
    );
    // And the transactional path after fast appends links to the newest record too.
    let mut w = a.write().await.unwrap();
    w.audit(&[ev(Action::Authorize, "in a transaction")])
        .await
        .unwrap();
    w.commit().await.unwrap();
    assert_eq!(verified(&a).await, 31);
}

/// A database made before the audit sequence became SQLite's rowid keeps every record,
/// and the chain still verifies, after the upgrade.
#[tokio::test]
async fn upgrading_the_audit_table_keeps_the_chain() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
    let store = Store::open(&url).await.unwrap();
    for i in 0..5 {
        store
            .append_audit(&[ev(Action::Authorize, &format!("before {i}"))])
            .await
            .unwrap();
    }
    store.close().await;
    drop(store);
    // Put the table back the way version 1 made it, and forget the upgrade.
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    for sql in [
        "CREATE TABLE old AS SELECT * FROM audit_log",
        "DROP TABLE audit_log",
        "CREATE TABLE audit_log (seq BIGINT PRIMARY KEY, time_us BIGINT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, subject TEXT NOT NULL, outcome TEXT NOT NULL, source TEXT NOT NULL, details TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)",
        "INSERT INTO audit_log SELECT * FROM old",
        "DROP TABLE old",
        "CREATE INDEX audit_time ON audit_log(time_us)",
        "CREATE INDEX audit_actor ON audit_log(actor, seq)",
        "DELETE FROM schema_migrations WHERE version = 4",
    ] {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();

    let store = Store::open(&url).await.unwrap();
    let sql: String = sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE name = 'audit_log'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(sql.contains("seq INTEGER PRIMARY KEY"), "{sql}");
    store
        .append_audit(&[ev(Action::Authorize, "after")])
        .await
        .unwrap();
    assert_eq!(verified(&store).await, 6);
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
