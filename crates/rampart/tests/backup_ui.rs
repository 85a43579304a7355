//! The `/backups` page (BAK-1..5) with a real server whose scheduler backs up its own
//! database: the timeline, the catalog, pins, and a prune that needs a recent second
//! factor.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::time::{Duration, Instant};

use support::{Rampart, bin, cli_ok, enroll, oathtool};

fn catalog(r: &Rampart) -> Vec<serde_json::Value> {
    cli_ok(r, &["backup", "list", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_backups_page_shows_the_tiers_pins_and_prunes_only_after_a_recent_second_factor() {
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("operator.key");
    let out = std::process::Command::new(bin())
        .args(["backup", "keygen", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success());
    let public = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let r = Rampart::start(
        bin(),
        &format!("[backup]\nown_database = true\nrecipients = [\"{public}\"]\n"),
    );
    // The scheduler backs up rampart's own database at once (nothing is catalogued yet).
    let deadline = Instant::now() + Duration::from_secs(60);
    let rows = loop {
        let rows = catalog(&r);
        if !rows.is_empty() {
            break rows;
        }
        assert!(Instant::now() < deadline, "no scheduled backup within 60 s");
        std::thread::sleep(Duration::from_millis(250));
    };
    let id = rows[0]["id"].as_str().unwrap().to_owned();

    let curl = r.curl();
    let secret = enroll(&curl, &r.admin_enroll_url);
    let page = curl.get("/backups");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<svg"), "the timeline is drawn");
    assert!(page.body.contains(">base</text>") && page.body.contains(">monthly</text>"));
    assert!(page.body.contains(&format!("<code>{id}</code>")));
    assert!(page.body.contains("<td>rampart</td>"), "the source row");
    assert!(page.body.contains(&format!("action=\"/backups/{id}/pin\"")));

    // Pin from the page: the catalog says so, and the page offers the unpin.
    let pinned = curl.post(&format!("/backups/{id}/pin"), &[]);
    assert_eq!(pinned.status, 303, "{}", pinned.body);
    assert_eq!(catalog(&r)[0]["pinned"], true);
    assert!(
        curl.get("/backups")
            .body
            .contains(&format!("action=\"/backups/{id}/unpin\""))
    );

    // Enrolling is not a check: pruning asks for a code, and a wrong one is refused.
    let refused = curl.post("/backups/prune", &[]);
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("within the last 5 minutes"),
        "{}",
        refused.body
    );
    let valid: Vec<String> = [-30, 0, 30, 60]
        .iter()
        .map(|o| oathtool(&secret, *o))
        .collect();
    let wrong = (0..10)
        .map(|d| format!("{d}{d}{d}{d}{d}{d}"))
        .find(|c| !valid.contains(c))
        .unwrap();
    let refused = curl.post("/backups/prune", &[("code", &wrong)]);
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("not accepted"), "{}", refused.body);
    let pruned = curl.post("/backups/prune", &[("code", &oathtool(&secret, 30))]);
    assert_eq!(pruned.status, 200, "{}", pruned.body);
    assert!(pruned.body.contains("Pruned 0 backups"), "{}", pruned.body);
    // Within 5 minutes of that check no second code is needed.
    let again = curl.post("/backups/prune", &[]);
    assert_eq!(again.status, 200, "{}", again.body);

    // The dashboard carries the backup controls, and BAK-1 holds with a fresh backup.
    let dashboard = curl.get("/");
    assert_eq!(dashboard.status, 200);
    assert!(dashboard.body.contains("BAK-1"), "{}", dashboard.body);
    let report: serde_json::Value =
        serde_json::from_str(&cli_ok(&r, &["report", "--format", "json"])).unwrap();
    let bak1 = report["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "BAK-1")
        .unwrap();
    assert_eq!(bak1["status"], "pass", "{bak1}");

    // Every view of the page and every pin is audited.
    let audit = cli_ok(
        &r,
        &[
            "audit", "search", "--action", "backup", "--json", "--limit", "100",
        ],
    );
    assert!(audit.contains("backup.list"), "{audit}");
    assert!(audit.contains("backup.pin"), "{audit}");
}

fn keygen(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, String) {
    let path = dir.join(name);
    let out = std::process::Command::new(bin())
        .args(["backup", "keygen", "--out"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    (path, String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The `backup.verify` audit records, each as (outcome, details).
fn verify_events(r: &Rampart) -> Vec<(String, serde_json::Value)> {
    cli_ok(
        r,
        &[
            "audit",
            "search",
            "--action",
            "backup.verify",
            "--json",
            "--limit",
            "100",
        ],
    )
    .lines()
    .map(|l| {
        let e: serde_json::Value = serde_json::from_str(l).unwrap();
        let details = serde_json::from_str(e["details"].as_str().unwrap()).unwrap();
        (e["outcome"].as_str().unwrap().to_owned(), details)
    })
    .collect()
}

/// Polls the audit log until a `backup.verify` record of `source` whose check is `check`
/// (absent for a hash read-back) appears (bounded); returns its outcome.
fn wait_for_check(r: &Rampart, source: &str, check: Option<&str>) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let events = verify_events(r);
        if let Some((outcome, _)) = events
            .iter()
            .find(|(_, d)| d["source"] == source && d["check"].as_str() == check)
        {
            return outcome.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no check {check:?} of {source} within 120 s: {events:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn bak1_evidence(r: &Rampart) -> String {
    let report: serde_json::Value =
        serde_json::from_str(&cli_ok(r, &["report", "--format", "json"])).unwrap();
    report["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "BAK-1")
        .unwrap()
        .to_string()
}

/// The scheduled drill: without a stored identity it only reads objects back and the report
/// says restores are unverified; once the operator stores a drill identity (sealed, its
/// public key among the recipients), the drill restores the PostgreSQL source into a
/// throwaway cluster and compares row counts, and decrypts rampart's own database.
#[test]
fn the_scheduled_drill_restores_only_with_a_stored_identity_and_says_so() {
    let pg = rampart_testkit::Postgres::start();
    rampart_testkit::Postgres::psql(
        pg.url(),
        "CREATE TABLE orders (id int PRIMARY KEY, total numeric);
         INSERT INTO orders SELECT g, g * 2 FROM generate_series(1, 500) g;",
    );
    let keys = tempfile::tempdir().unwrap();
    let (drill_key, drill_public) = keygen(keys.path(), "drill.key");
    let (stranger, _) = keygen(keys.path(), "stranger.key");
    let mut r = Rampart::start(
        bin(),
        &format!(
            "[backup]\nown_database = true\ndrill_hours = 1\nrecipients = [\"{drill_public}\"]\n\n[[backup.sources]]\nname = \"app\"\nkind = \"postgres\"\nurl = \"{}\"\n",
            pg.url()
        ),
    );
    // First run: backups, then a drill with no identity: hash read-back only.
    assert_eq!(wait_for_check(&r, "app", None), "success");
    let evidence = bak1_evidence(&r);
    assert!(evidence.contains("restores are unverified"), "{evidence}");
    r.stop();

    // An identity that cannot decrypt the backups is refused; the drill key is stored.
    let out = r.cli(&[
        "backup",
        "drill-identity",
        "set",
        "--identity",
        stranger.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not in backup.recipients"));
    cli_ok(
        &r,
        &[
            "backup",
            "drill-identity",
            "set",
            "--identity",
            drill_key.to_str().unwrap(),
        ],
    );
    assert!(cli_ok(&r, &["backup", "drill-identity", "status"]).contains(&drill_public));
    // It is sealed at rest: the secret key's text is nowhere in the database file.
    let secret_line = std::fs::read_to_string(&drill_key)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .unwrap()
        .to_owned();
    let db = std::fs::read(r.data_dir().join("rampart.db")).unwrap();
    assert!(
        !db.windows(secret_line.len())
            .any(|w| w == secret_line.as_bytes()),
        "the drill identity is stored in the clear"
    );
    // Make the next drill due now, and serve again.
    support::sqlite(
        &r.data_dir().join("rampart.db"),
        "DELETE FROM meta WHERE key = 'backup.last_drill_us';",
    );
    r.serve();
    assert_eq!(wait_for_check(&r, "app", Some("restore drill")), "success");
    assert_eq!(
        wait_for_check(&r, "rampart", Some("decrypted by the drill identity")),
        "success"
    );
    let drilled = verify_events(&r)
        .into_iter()
        .find(|(_, d)| d["check"] == "restore drill")
        .unwrap();
    assert_eq!(drilled.1["tables"], "1", "{drilled:?}");
    assert!(
        cli_ok(
            &r,
            &[
                "audit",
                "search",
                "--action",
                "backup.drill_identity",
                "--json"
            ]
        )
        .contains("set")
    );
    let evidence = bak1_evidence(&r);
    assert!(
        evidence.contains("restores into a throwaway cluster"),
        "{evidence}"
    );
}

/// Bad input: a source that fails. Nothing is catalogued for it, the failure is audited
/// with the program's stderr (scrubbed), and one alert fires: audited as `backup.alert`
/// and posted, signed, to the `[logs.alerts]` webhook.
#[test]
fn a_failing_source_records_no_success_and_raises_one_alert() {
    let keys = tempfile::tempdir().unwrap();
    let (_, public) = keygen(keys.path(), "k");
    let key_file = keys.path().join("webhook.key");
    std::fs::write(&key_file, "backup-webhook-key-0123456789").unwrap();
    let (port, notices) = support::receiver();
    let r = Rampart::start(
        bin(),
        &format!(
            "[logs.alerts]\nwebhook_url = \"http://127.0.0.1:{port}/hook\"\nwebhook_secret_file = \"{}\"\n\n\
             [backup]\nown_database = false\nrecipients = [\"{public}\"]\n\n\
             [[backup.sources]]\nname = \"broken\"\nkind = \"command\"\ncommand = [\"sh\", \"-c\", \"echo 'cannot reach db for alice@example.com' >&2; exit 3\"]\n",
            key_file.display()
        ),
    );
    let (signature, body) = notices
        .recv_timeout(Duration::from_secs(90))
        .unwrap_or_else(|_| panic!("no backup alert within 90 s; log:\n{}", r.log()));
    assert!(signature.starts_with("sha256="), "{signature}");
    let notice: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(notice["source"], "broken", "{notice}");
    assert_eq!(notice["status"], "firing", "{notice}");
    let error = notice["error"].as_str().unwrap();
    assert!(error.contains("cannot reach db"), "{error}");
    assert!(
        !error.contains("alice@example.com"),
        "the error is scrubbed: {error}"
    );

    assert!(catalog(&r).is_empty(), "a failed run catalogued a backup");
    // A failed dump leaves no object behind.
    let mut left = Vec::new();
    let mut dirs = vec![r.data_dir().join("backups")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.path().is_dir() {
                dirs.push(entry.path());
            } else {
                left.push(entry.path());
            }
        }
    }
    assert!(left.is_empty(), "a failed run left objects: {left:?}");
    let audit = cli_ok(
        &r,
        &[
            "audit", "search", "--action", "backup.", "--json", "--limit", "100",
        ],
    );
    let events: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let alerts: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["action"] == "backup.alert")
        .collect();
    assert_eq!(alerts.len(), 1, "{audit}");
    assert_eq!(alerts[0]["outcome"], "failure");
    assert!(
        events
            .iter()
            .any(|e| e["action"] == "backup.run" && e["outcome"] == "failure"),
        "{audit}"
    );
    assert!(!audit.contains("alice@example.com"), "{audit}");
}
