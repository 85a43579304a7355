//! Pruning against a real catalog (SQLite) and real objects (a directory): it deletes
//! exactly what the plan says, object and row, with an audit record carrying the reason,
//! and never a pinned backup or the newest one.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use jiff::{SignedDuration, Timestamp};
use rampart_audit::Actor;
use rampart_backup::{BackupConfig, Backups, Verdict};
use rampart_store::{AuditQuery, Store};

#[tokio::test]
async fn prune_deletes_what_the_plan_says_and_never_a_pinned_or_the_newest_backup() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("rampart.db").display()
    ))
    .await
    .unwrap();
    let key = age::x25519::Identity::generate().to_public().to_string();
    let config: BackupConfig = toml::from_str(&format!(
        "own_database = false\nrecipients = [\"{key}\"]\n[[sources]]\nname = \"notes\"\nkind = \"command\"\ncommand = [\"seq\", \"1\", \"1000\"]\n"
    ))
    .unwrap();
    let backups = Backups::open(&config, dir.path(), &store, None).unwrap();
    let actor = Actor::Cli("test".into());
    let mut ids = Vec::new();
    for _ in 0..4 {
        let run = backups.run(None, &actor, Timestamp::now()).await.unwrap();
        ids.push(run[0].result.as_ref().unwrap().clone());
    }
    backups.pin(&ids[1].id, true, &actor).await.unwrap();

    // Sixty days on: the first backup stands for its week and month, the second is
    // pinned, the last is the newest; the third has no reason left.
    let later = Timestamp::now() + SignedDuration::from_hours(24 * 60);
    let dry = backups.plan(&actor, later).await.unwrap();
    let verdicts: Vec<Verdict> = dry.decisions.iter().map(|d| d.verdict).collect();
    assert_eq!(
        verdicts,
        vec![Verdict::Keep, Verdict::Keep, Verdict::Delete, Verdict::Keep],
        "{dry:#?}"
    );
    let done = backups.prune(&actor, later).await.unwrap();
    assert_eq!(done, dry);

    let left: Vec<String> = store
        .backups()
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(
        left,
        vec![ids[0].id.clone(), ids[1].id.clone(), ids[3].id.clone()]
    );
    let objects = dir.path().join("backups");
    assert!(!objects.join(&ids[2].object_key).exists());
    for kept in [&ids[0], &ids[1], &ids[3]] {
        assert!(objects.join(&kept.object_key).exists());
    }
    let audit = store
        .audit_search(&AuditQuery {
            action_prefix: Some("backup.prune".into()),
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].subject, ids[2].id);
    assert!(
        audit[0].details.contains("older than the base window"),
        "{}",
        audit[0].details
    );
    store.close().await;
}
