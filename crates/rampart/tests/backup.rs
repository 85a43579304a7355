//! `rampart backup` as an operator runs it, against a real PostgreSQL and a real S3 server
//! (SeaweedFS): back up, restore into a fresh database, compare; a run killed halfway; a
//! corrupted and a missing object; a wrong identity; refused configurations.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use rampart_testkit::Postgres;
use rampart_testkit::s3::SeaweedFs;

mod support;

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rampart"))
}

/// A data directory made by `rampart init`, with `[backup]` configured.
struct Site {
    dir: PathBuf,
    /// Owns the directory.
    _hold: Box<dyn std::any::Any>,
    /// The first admin's TOTP secret, when enrolled.
    secret: Option<String>,
    env: Vec<(String, String)>,
}

impl Site {
    fn new(backup: &str) -> Site {
        let dir = tempfile::Builder::new()
            .prefix("rampart-backup")
            .tempdir()
            .unwrap();
        let out = Command::new(bin())
            .arg("--data-dir")
            .arg(dir.path())
            .arg("init")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(dir.path().join("rampart.toml"), backup).unwrap();
        Site {
            dir: dir.path().to_owned(),
            _hold: Box::new(dir),
            secret: None,
            env: Vec::new(),
        }
    }

    /// Like [`Site::new`], with the first admin enrolled (password and TOTP) through the
    /// web UI of a server that is then stopped: restores and prunes need a person with a
    /// recent second factor.
    fn with_admin(backup: &str) -> Site {
        let mut r = support::start();
        let secret = support::enroll(&r.curl(), &r.admin_enroll_url);
        r.stop();
        std::fs::write(r.data_dir().join("rampart.toml"), backup).unwrap();
        Site {
            dir: r.data_dir().to_owned(),
            _hold: Box::new(r),
            secret: Some(secret),
            env: Vec::new(),
        }
    }

    /// A current code of the admin's authenticator, one step ahead of the enrollment's.
    fn code(&self) -> String {
        support::oathtool(self.secret.as_deref().expect("enrolled"), 30)
    }

    fn path(&self) -> &Path {
        &self.dir
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.arg("--data-dir").arg(&self.dir).args(args);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    fn cli(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "rampart {args:?} failed ({:?}):\n{}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn catalog(&self) -> Vec<serde_json::Value> {
        self.ok(&["backup", "list", "--json"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// An identity file and its public key.
fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let out = Command::new(bin())
        .args(["backup", "keygen", "--out"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(public.starts_with("age1"), "{public}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    (path, public)
}

fn seed(url: &str) {
    Postgres::psql(
        url,
        "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric);
         INSERT INTO items SELECT g, 'item ' || g, g * 1.5 FROM generate_series(1, 20000) g;
         CREATE SCHEMA billing;
         CREATE TABLE billing.\"Invoices\" (id bigserial PRIMARY KEY, item int REFERENCES items(id), at timestamptz DEFAULT now());
         INSERT INTO billing.\"Invoices\" (item) SELECT g FROM generate_series(1, 3000) g;",
    );
}

/// The contents of the seeded tables, as text.
fn contents(url: &str) -> String {
    Postgres::psql(
        url,
        "SELECT md5(string_agg(i::text, ',' ORDER BY id)) FROM items i
         UNION ALL SELECT md5(string_agg(v::text, ',' ORDER BY id)) FROM billing.\"Invoices\" v",
    )
}

fn backup_config(recipient: &str, storage: &str, sources: &str) -> String {
    format!(
        "[backup]\nown_database = true\nrecipients = [\"{recipient}\"]\n\n[backup.storage]\n{storage}\n\n{sources}\n"
    )
}

fn pg_source(url: &str) -> String {
    format!("[[backup.sources]]\nname = \"app\"\nkind = \"postgres\"\nurl = \"{url}\"\n")
}

fn restore_and_compare(site: &Site, pg: &Postgres, identity: &Path, name: &str) {
    let catalog = site.catalog();
    let app = catalog
        .iter()
        .find(|b| b["source"] == "app")
        .expect("a backup of app");
    // Row counts were taken in the dump's snapshot.
    assert_eq!(app["row_counts"]["public.items"], 20000, "{app}");
    assert_eq!(app["row_counts"]["billing.\"Invoices\""], 3000, "{app}");
    let id = app["id"].as_str().unwrap();
    let fresh = pg.create_database(name);
    let code = site.code();
    site.ok(&[
        "backup",
        "restore",
        id,
        "--as",
        "admin",
        "--code",
        &code,
        "--identity",
        identity.to_str().unwrap(),
        "--to",
        &fresh,
    ]);
    assert_eq!(contents(&fresh), contents(pg.url()));
    // rampart's own database is a source by default, and restores to a file.
    let own = catalog.iter().find(|b| b["source"] == "rampart").unwrap();
    let copy = site.path().join(format!("{name}.db"));
    // The second-factor check of a minute ago still counts: no second code.
    site.ok(&[
        "backup",
        "restore",
        own["id"].as_str().unwrap(),
        "--as",
        "admin",
        "--identity",
        identity.to_str().unwrap(),
        "--out",
        copy.to_str().unwrap(),
    ]);
    let head = std::fs::read(&copy).unwrap();
    assert!(head.starts_with(b"SQLite format 3\0"));
    assert!(!site.path().join(format!("{name}.db.partial")).exists());
    // Every read of the catalog and every restore is in the audit log.
    let audit = site.ok(&[
        "audit", "search", "--action", "backup", "--json", "--limit", "100",
    ]);
    for action in ["backup.run", "backup.list", "backup.restore"] {
        assert!(audit.contains(action), "{action} missing from {audit}");
    }
}

/// A table the dump stream has no data block for (a partitioned table's parent: its rows
/// are in its partitions' blocks) is counted in the exporting transaction, and an empty
/// table counts 0: the catalog has a count for every table, each of the dump's snapshot.
#[test]
fn a_table_without_a_data_block_is_counted_in_the_dumps_snapshot() {
    let pg = Postgres::start();
    Postgres::psql(
        pg.url(),
        "CREATE TABLE events (id int, at date) PARTITION BY RANGE (at);
         CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
         CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
         INSERT INTO events SELECT g, date '2025-06-01' + (g % 365) FROM generate_series(1, 1000) g;
         CREATE TABLE empty (id int);",
    );
    let keys = tempfile::tempdir().unwrap();
    let (_, public) = keygen(keys.path(), "k");
    let site = Site::new(&backup_config(
        &public,
        "kind = \"dir\"",
        &pg_source(pg.url()),
    ));
    let run = site.cli(&["backup", "run", "--source", "app"]);
    assert!(run.status.success(), "{run:?}");
    let catalog = site.catalog();
    let counts = &catalog[0]["row_counts"];
    let in_2025 = Postgres::psql(pg.url(), "SELECT count(*) FROM events_2025");
    let in_2025: i64 = in_2025.trim().parse().unwrap();
    assert_eq!(counts["public.events"], 1000, "{counts}");
    assert_eq!(counts["public.events_2025"], in_2025, "{counts}");
    assert_eq!(counts["public.events_2026"], 1000 - in_2025, "{counts}");
    assert_eq!(counts["public.empty"], 0, "{counts}");
}

#[test]
fn a_database_backed_up_to_a_directory_and_to_s3_restores_with_the_same_contents() {
    let pg = Postgres::start();
    seed(pg.url());
    let keys = tempfile::tempdir().unwrap();
    let (identity, public) = keygen(keys.path(), "operator.key");

    let local = Site::with_admin(&backup_config(
        &public,
        "kind = \"dir\"",
        &pg_source(pg.url()),
    ));
    let run = local.cli(&["backup", "run"]);
    assert!(run.status.success(), "{run:?}");
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(out.contains("app: backup"), "{out}");
    // The row counts came off the dump stream, not from a second scan of each table.
    let log = String::from_utf8_lossy(&run.stderr);
    assert!(!log.contains("could not be read off the dump"), "{log}");
    restore_and_compare(&local, &pg, &identity, "restored_from_dir");
    // The restore drill: a throwaway cluster, the row counts of the dump's snapshot.
    let drill = local.ok(&["backup", "drill", "--identity", identity.to_str().unwrap()]);
    assert!(drill.contains(": pass: restored, 2 tables"), "{drill}");
    let app = local
        .catalog()
        .into_iter()
        .find(|b| b["source"] == "app")
        .unwrap();
    assert_eq!(app["verification"], "passed");
    // The object on disk is an age file, not a readable dump.
    let object = local.catalog()[0]["object_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let bytes = std::fs::read(local.path().join("backups").join(&object)).unwrap();
    assert!(bytes.starts_with(b"age-encryption.org/v1\n"));

    let s3 = SeaweedFs::start("rampart-backups");
    let storage = format!(
        "kind = \"s3\"\nbucket = \"{}\"\nendpoint = \"{}\"\ndangerous_allow_http = true",
        s3.bucket, s3.endpoint
    );
    let mut remote = Site::with_admin(&backup_config(&public, &storage, &pg_source(pg.url())));
    remote.env = vec![
        ("AWS_ACCESS_KEY_ID".into(), s3.access_key.clone()),
        ("AWS_SECRET_ACCESS_KEY".into(), s3.secret_key.clone()),
    ];
    remote.ok(&["backup", "run"]);
    restore_and_compare(&remote, &pg, &identity, "restored_from_s3");
    let verify = remote.ok(&["backup", "verify"]);
    assert_eq!(verify.matches(": ok").count(), 2, "{verify}");
}

#[test]
fn a_backup_killed_halfway_leaves_no_catalog_entry_and_the_next_run_removes_its_orphan() {
    let keys = tempfile::tempdir().unwrap();
    let (_, public) = keygen(keys.path(), "k");
    let pidfile = keys.path().join("dump.pid");
    // A dump that does not compress and never ends: killed once its upload is under way.
    let slow = format!(
        "[[backup.sources]]\nname = \"slow\"\nkind = \"command\"\ncommand = [\"sh\", \"-c\", \"echo $$ > {}; exec cat /dev/urandom\"]\n\n\
         [[backup.sources]]\nname = \"quick\"\nkind = \"command\"\ncommand = [\"echo\", \"hello\"]\n",
        pidfile.display()
    );
    let site = Site::new(&backup_config(&public, "kind = \"dir\"", &slow));
    let mut run = site
        .command(&["backup", "run", "--source", "slow"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the upload is under way: a staged part of the object exists.
    let staged = || -> Vec<PathBuf> {
        walk(&site.path().join("backups"))
            .into_iter()
            .filter(|p| p.to_string_lossy().contains('#'))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while staged().is_empty() {
        assert!(Instant::now() < deadline, "the upload never started");
        assert!(run.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(50));
    }
    run.kill().unwrap();
    run.wait().unwrap();
    if let Ok(pid) = std::fs::read_to_string(&pidfile) {
        let _ = Command::new("kill").arg("-9").arg(pid.trim()).status();
    }
    let left = staged();
    assert!(!left.is_empty());
    assert!(site.catalog().is_empty(), "a killed run left a catalog row");

    site.ok(&["backup", "run", "--source", "quick"]);
    assert!(staged().is_empty(), "the orphan is still there: {left:?}");
    let catalog = site.catalog();
    assert_eq!(catalog.len(), 1);
    assert_eq!(catalog[0]["source"], "quick");
    let audit = site.ok(&["audit", "search", "--action", "backup.orphan", "--json"]);
    assert!(audit.contains("backup.orphan"), "{audit}");
}

/// A backup to a directory is on disk before the catalog names it: `strace` shows its file
/// synced before it is renamed into place, and its directory synced after the rename, so a
/// power cut cannot leave a catalogued backup whose file is empty or missing.
#[test]
fn a_directory_backup_is_synced_to_disk_before_it_is_catalogued() {
    let keys = tempfile::tempdir().unwrap();
    let (_, public) = keygen(keys.path(), "k");
    let sources =
        "[[backup.sources]]\nname = \"notes\"\nkind = \"command\"\ncommand = [\"echo\", \"x\"]\n";
    let site = Site::new(&backup_config(&public, "kind = \"dir\"", sources));
    let trace = keys.path().join("trace");
    let out = Command::new("strace")
        .args([
            "-f",
            "-y",
            "-qq",
            "-e",
            "trace=fsync,fdatasync,rename,renameat,renameat2",
            "-o",
        ])
        .arg(&trace)
        .arg(bin())
        .arg("--data-dir")
        .arg(site.path())
        .args(["backup", "run", "--source", "notes"])
        .output()
        .expect("strace (apt-get install strace)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let catalog = site.catalog();
    assert_eq!(catalog.len(), 1);
    let object = walk(&site.path().join("backups"))
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(".age"))
        .expect("the backup's file");
    let object = object.to_string_lossy().into_owned();
    assert!(
        catalog[0]["object_key"]
            .as_str()
            .is_some_and(|key| object.ends_with(key)),
        "{object} is not {:?}",
        catalog[0]["object_key"]
    );
    let lines: Vec<String> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let find = |what: &dyn Fn(&str) -> bool| lines.iter().position(|l| what(l));
    // The staged file is renamed onto the object's name…
    let renamed = find(&|l: &str| l.contains("rename") && l.contains(&format!("\"{object}\"")))
        .unwrap_or_else(|| panic!("no rename onto {object}:\n{}", lines.join("\n")));
    let staged = lines[renamed]
        .split('"')
        .nth(1)
        .filter(|from| from.starts_with(&format!("{object}#")))
        .unwrap_or_else(|| panic!("not a staged file: {}", lines[renamed]))
        .to_owned();
    // …after the staged file was synced, and the directory is synced after the rename.
    let synced = find(&|l: &str| l.contains("fsync(") && l.contains(&format!("<{staged}>")))
        .unwrap_or_else(|| panic!("{staged} was never synced:\n{}", lines.join("\n")));
    assert!(
        synced < renamed,
        "synced after the rename:\n{}",
        lines.join("\n")
    );
    let dir = Path::new(&object)
        .parent()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let dir_synced = lines
        .iter()
        .skip(renamed)
        .any(|l| l.contains("fsync(") && l.contains(&format!("<{dir}>")));
    assert!(
        dir_synced,
        "{dir} not synced after the rename:\n{}",
        lines.join("\n")
    );
}

/// The same on S3: a run killed during a multipart upload leaves parts in the bucket (an
/// upload in progress); the next run aborts it through the marker written before the
/// first part, so the bucket holds no upload afterwards.
#[test]
fn a_multipart_upload_killed_halfway_is_aborted_by_the_next_run() {
    let keys = tempfile::tempdir().unwrap();
    let (_, public) = keygen(keys.path(), "k");
    let pidfile = keys.path().join("dump.pid");
    let slow = format!(
        "[[backup.sources]]\nname = \"slow\"\nkind = \"command\"\ncommand = [\"sh\", \"-c\", \"echo $$ > {}; exec cat /dev/urandom\"]\n\n\
         [[backup.sources]]\nname = \"quick\"\nkind = \"command\"\ncommand = [\"echo\", \"hello\"]\n\n\
         [[backup.sources]]\nname = \"big\"\nkind = \"command\"\ncommand = [\"head\", \"-c\", \"40000000\", \"/dev/urandom\"]\n",
        pidfile.display()
    );
    let s3 = SeaweedFs::start("rampart-multipart");
    let storage = format!(
        "kind = \"s3\"\nbucket = \"{}\"\nendpoint = \"{}\"\ndangerous_allow_http = true",
        s3.bucket, s3.endpoint
    );
    let mut site = Site::new(&backup_config(&public, &storage, &slow));
    site.env = vec![
        ("AWS_ACCESS_KEY_ID".into(), s3.access_key.clone()),
        ("AWS_SECRET_ACCESS_KEY".into(), s3.secret_key.clone()),
    ];
    assert!(!s3.multipart_uploads().contains("<Upload>"));
    let mut run = site
        .command(&["backup", "run", "--source", "slow"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once the upload has begun and its marker is written (the marker follows the
    // upload's creation: a kill between the two is not what this test is about).
    let deadline = Instant::now() + Duration::from_secs(20);
    while !s3.multipart_uploads().contains("<Upload>")
        || !s3
            .list("rampart/uploads-in-progress/")
            .contains("<Key>rampart/uploads-in-progress/")
    {
        assert!(
            Instant::now() < deadline,
            "the multipart upload never started: {} {}",
            s3.multipart_uploads(),
            s3.list("rampart/uploads-in-progress/")
        );
        assert!(run.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(100));
    }
    run.kill().unwrap();
    run.wait().unwrap();
    if let Ok(pid) = std::fs::read_to_string(&pidfile) {
        let _ = Command::new("kill").arg("-9").arg(pid.trim()).status();
    }
    assert!(
        s3.multipart_uploads().contains("<Upload>"),
        "the crash left an upload"
    );
    assert!(site.catalog().is_empty(), "a killed run left a catalog row");

    site.ok(&["backup", "run", "--source", "quick"]);
    let left = s3.multipart_uploads();
    assert!(
        !left.contains("<Upload>"),
        "the upload was not aborted: {left}"
    );
    let catalog = site.catalog();
    assert_eq!(catalog.len(), 1);
    assert_eq!(catalog[0]["source"], "quick");
    let audit = site.ok(&["audit", "search", "--action", "backup.orphan", "--json"]);
    assert!(audit.contains("uploads-in-progress/"), "{audit}");

    // A multipart upload that runs to its end (40 MB of noise: three parts) is whole,
    // and leaves neither an upload nor a marker behind.
    site.ok(&["backup", "run", "--source", "big"]);
    assert!(!s3.multipart_uploads().contains("<Upload>"));
    let big = site
        .catalog()
        .into_iter()
        .find(|b| b["source"] == "big")
        .unwrap();
    assert!(big["size_bytes"].as_i64().unwrap() > 32 << 20, "{big}");
    let verify = site.ok(&["backup", "verify", big["id"].as_str().unwrap()]);
    assert!(verify.contains(": ok"), "{verify}");
    site.ok(&["backup", "run", "--source", "quick"]);
    let orphans = site.ok(&["audit", "search", "--action", "backup.orphan", "--json"]);
    assert_eq!(orphans.lines().count(), audit.lines().count(), "{orphans}");
}

#[test]
fn a_corrupted_object_and_a_missing_one_are_flagged_by_verify() {
    let keys = tempfile::tempdir().unwrap();
    let (identity, public) = keygen(keys.path(), "k");
    let sources = "[[backup.sources]]\nname = \"notes\"\nkind = \"command\"\ncommand = [\"seq\", \"1\", \"200000\"]\n";
    let site = Site::with_admin(&backup_config(&public, "kind = \"dir\"", sources));
    site.ok(&["backup", "run"]);
    site.ok(&["backup", "run", "--source", "notes"]);
    let catalog = site.catalog();
    let notes: Vec<&serde_json::Value> =
        catalog.iter().filter(|b| b["source"] == "notes").collect();
    assert_eq!(notes.len(), 2);
    site.ok(&["backup", "verify"]);

    // Flip one byte in the middle of the first object; delete the second.
    let first = site
        .path()
        .join("backups")
        .join(notes[0]["object_key"].as_str().unwrap());
    let mut bytes = std::fs::read(&first).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&first, bytes).unwrap();
    let second = site
        .path()
        .join("backups")
        .join(notes[1]["object_key"].as_str().unwrap());
    std::fs::remove_file(&second).unwrap();

    let out = site.cli(&["backup", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let first_id = notes[0]["id"].as_str().unwrap();
    let second_id = notes[1]["id"].as_str().unwrap();
    assert!(
        text.contains(&format!("{first_id}: FAILED: ALTERED")),
        "{text}"
    );
    assert!(
        text.contains(&format!("{second_id}: FAILED: MISSING")),
        "{text}"
    );
    let after = site.catalog();
    for b in after.iter().filter(|b| b["source"] == "notes") {
        assert_eq!(b["verification"], "failed", "{b}");
    }
    // A restore of the altered object stops with an error, never a silent success.
    let code = site.code();
    let out = site.cli(&[
        "backup",
        "restore",
        first_id,
        "--as",
        "admin",
        "--code",
        &code,
        "--identity",
        identity.to_str().unwrap(),
        "--out",
        keys.path().join("out").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("altered"), "{err}");
    // Nothing that looks like a dump is left behind, complete or not.
    for left in ["out", "out.partial"] {
        assert!(!keys.path().join(left).exists(), "{left} was left behind");
    }
}

#[test]
fn a_wrong_identity_gives_one_clear_sentence() {
    let keys = tempfile::tempdir().unwrap();
    let (_, public) = keygen(keys.path(), "right");
    let (wrong, _) = keygen(keys.path(), "wrong");
    let sources =
        "[[backup.sources]]\nname = \"notes\"\nkind = \"command\"\ncommand = [\"echo\", \"x\"]\n";
    let site = Site::with_admin(&backup_config(&public, "kind = \"dir\"", sources));
    site.ok(&["backup", "run", "--source", "notes"]);
    let id = site.catalog()[0]["id"].as_str().unwrap().to_owned();
    let code = site.code();
    let out = site.cli(&[
        "backup",
        "restore",
        &id,
        "--as",
        "admin",
        "--code",
        &code,
        "--identity",
        wrong.to_str().unwrap(),
        "--out",
        keys.path().join("out").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("does not hold a key this backup was encrypted to"),
        "{err}"
    );
    for left in ["out", "out.partial"] {
        assert!(!keys.path().join(left).exists(), "{left} was left behind");
    }
}

/// BAK-5: a restore or a prune names a person who holds the permission and passed a second
/// factor within the last 5 minutes; every refusal says why, and nothing is restored.
#[test]
fn restore_and_prune_need_a_person_with_a_recent_second_factor() {
    let keys = tempfile::tempdir().unwrap();
    let (identity, public) = keygen(keys.path(), "operator.key");
    let site = Site::with_admin(&backup_config(&public, "kind = \"dir\"", ""));
    site.ok(&["user", "add", "bob", "--email", "bob@example.com"]);
    site.ok(&["backup", "run"]);
    let id = site.catalog()[0]["id"].as_str().unwrap().to_owned();
    let out_file = keys.path().join("restored.db");
    let restore = |extra: &[&str]| {
        let mut args = vec![
            "backup",
            "restore",
            id.as_str(),
            "--identity",
            identity.to_str().unwrap(),
            "--out",
            out_file.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        site.cli(&args)
    };
    let refused = |out: Output, why: &str| {
        assert_eq!(out.status.code(), Some(64), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "expected {why:?} in {err}");
        assert!(!out_file.exists(), "nothing is restored on a refusal");
    };

    // No person at all: clap says --as is required.
    let out = restore(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--as"));
    // Someone without backup.restore.
    refused(restore(&["--as", "bob"]), "bob may not do this");
    // The admin enrolled minutes ago but has passed no check since: a code is needed.
    refused(
        restore(&["--as", "admin"]),
        "second-factor check within the last 5 minutes",
    );
    let secret = site.secret.clone().unwrap();
    let valid: Vec<String> = [-30, 0, 30, 60]
        .iter()
        .map(|o| support::oathtool(&secret, *o))
        .collect();
    let wrong = (0..10)
        .map(|d| format!("{d}{d}{d}{d}{d}{d}"))
        .find(|c| !valid.contains(c))
        .unwrap();
    refused(
        restore(&["--as", "admin", "--code", &wrong]),
        "not accepted",
    );
    refused(
        site.cli(&["backup", "prune", "--as", "admin"]),
        "within the last 5 minutes",
    );

    // A right code: restored; the check then holds for 5 minutes, for prune too.
    let code = site.code();
    let out = restore(&["--as", "admin", "--code", &code]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        std::fs::read(&out_file)
            .unwrap()
            .starts_with(b"SQLite format 3\0")
    );
    std::fs::remove_file(&out_file).unwrap();
    site.ok(&["backup", "prune", "--as", "admin"]);
    // The same code again is a replay.
    refused(restore(&["--as", "admin", "--code", &code]), "not accepted");

    // Ten minutes later the check is stale again.
    support::sqlite(
        &site.path().join("rampart.db"),
        "UPDATE accounts SET last_mfa_us = last_mfa_us - 600000000 WHERE username = 'admin';",
    );
    refused(restore(&["--as", "admin"]), "within the last 5 minutes");

    let audit = site.ok(&[
        "audit",
        "search",
        "--action",
        "login.mfa",
        "--json",
        "--limit",
        "50",
    ]);
    assert!(audit.contains("backup.restore"), "{audit}");
    assert!(audit.contains("wrong code"), "{audit}");
    let denied = site.ok(&[
        "audit",
        "search",
        "--action",
        "admin.denied",
        "--json",
        "--limit",
        "50",
    ]);
    assert!(denied.contains("bob"), "{denied}");
}

#[test]
fn config_with_daily_retention_400_days_or_a_12_hour_interval_is_refused() {
    for (section, expected) in [
        (
            "[backup.retention]\ndaily_days = 400\n",
            "400 is not allowed: use a value from 7 to 365",
        ),
        ("[backup]\ninterval = \"12h\"\n", "longer than 6h"),
    ] {
        let site = Site::new(section);
        let out = site.cli(&["check-config"]);
        assert_eq!(out.status.code(), Some(64), "{section}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{section}: {err}");
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
