#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The PostgreSQL gateway end to end: a real PostgreSQL upstream, the built binary, and
//! real `psql` as the client (issue #5).

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rampart_testkit::{Postgres, free_port, wait_for_port};
use support::{Curl, Rampart, bin, cli_admin, cli_ok, enroll};

/// A rampart with the gateway on, a postgres target `orders-db` (production) whose role
/// `app_rw` alice may use, and a token for her.
struct Setup {
    pg: Postgres,
    r: Rampart,
    port: u16,
    database: String,
    token: String,
    /// The first admin's web session and TOTP secret (changing grants needs them).
    admin: Curl,
    admin_secret: String,
}

fn setup() -> Setup {
    setup_with("")
}

/// Like [`setup`], with more `[postgres]` keys.
fn setup_with(postgres: &str) -> Setup {
    setup_on(None, postgres)
}

/// Like [`setup`], with rampart's own store in database `store` of the same PostgreSQL
/// server instead of SQLite.
fn setup_on(store: Option<&str>, postgres: &str) -> Setup {
    let pg = Postgres::start();
    let port = free_port();
    let gateway = format!("[postgres]\nlisten = \"127.0.0.1:{port}\"\n{postgres}\n");
    let r = match store {
        Some(name) => Rampart::start_on_store(bin(), &pg.create_database(name), &gateway),
        None => Rampart::start(bin(), &gateway),
    };
    wait_for_port(port, Duration::from_secs(10), "the postgres gateway");
    let (server, database) = pg.url().rsplit_once('/').unwrap();
    let address = server.rsplit_once('@').unwrap().1.to_owned();
    let database = database.to_owned();
    Postgres::psql(
        pg.url(),
        "DO $$ BEGIN CREATE ROLE app_rw LOGIN PASSWORD 'upstream-pw'; EXCEPTION WHEN duplicate_object THEN NULL; END $$",
    );
    Postgres::psql(pg.url(), "GRANT ALL ON SCHEMA public TO app_rw");
    cli_ok(
        &r,
        &["user", "add", "alice", "--email", "alice@example.com"],
    );
    for (name, env) in [("orders-db", "production"), ("billing-db", "production")] {
        cli_ok(
            &r,
            &[
                "target",
                "add",
                name,
                "--kind",
                "postgres",
                "--address",
                &address,
                "--env",
                env,
            ],
        );
    }
    let admin = r.curl();
    let admin_secret = enroll(&admin, &r.admin_enroll_url);
    cli_admin(
        &r,
        &admin_secret,
        &["role", "add", "dba", "--grant", "*-db production app_rw"],
    );
    cli_admin(&r, &admin_secret, &["grant", "add", "alice", "dba"]);
    for target in ["orders-db", "billing-db"] {
        set_credential(&r, target, "upstream-pw");
    }
    let token = issue(&r, "orders-db");
    Setup {
        pg,
        r,
        port,
        database,
        token,
        admin,
        admin_secret,
    }
}

/// Stores the upstream password of role `app_rw` on `target`, as an operator types it.
fn set_credential(r: &Rampart, target: &str, password: &str) {
    let mut child = Command::new(bin())
        .arg("--data-dir")
        .arg(r.data_dir())
        .args(["db", "credential", "set", target, "app_rw"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn issue(r: &Rampart, target: &str) -> String {
    let out = cli_ok(
        r,
        &["db", "token", "issue", "alice", target, "--role", "app_rw"],
    );
    let token = out.lines().nth(1).unwrap().trim().to_owned();
    assert!(token.starts_with("rdb_"), "{out}");
    token
}

impl Setup {
    fn conninfo(&self, target: &str, sslmode: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=alice#{target} dbname={} sslmode={sslmode} connect_timeout=10",
            self.port, self.database
        )
    }

    /// Runs psql through the gateway with `token`.
    fn psql_as(&self, target: &str, token: &str, sslmode: &str, sql: &str) -> Output {
        Command::new("psql")
            .arg(self.conninfo(target, sslmode))
            .args(["-v", "ON_ERROR_STOP=1", "-AtXc", sql])
            .env("PGPASSWORD", token)
            .output()
            .expect("psql runs (apt-get install -y postgresql-client)")
    }

    fn psql(&self, sql: &str) -> String {
        let out = self.psql_as("orders-db", &self.token, "require", sql);
        assert!(
            out.status.success(),
            "psql {sql}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.r.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// (action, outcome, details JSON) of every gateway record, oldest first.
    fn records(&self) -> Vec<(String, String, serde_json::Value)> {
        let out = Command::new("python3")
            .args([
                "-c",
                "import sqlite3,sys,json; c=sqlite3.connect(sys.argv[1]); print(json.dumps(c.execute(\"SELECT action, outcome, details FROM audit_log WHERE action LIKE 'db.%' ORDER BY seq\").fetchall()))",
            ])
            .arg(self.r.data_dir().join("rampart.db"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows: Vec<(String, String, String)> = serde_json::from_slice(&out.stdout).unwrap();
        rows.into_iter()
            .map(|(a, o, d)| (a, o, serde_json::from_str(&d).unwrap()))
            .collect()
    }

    fn statements(&self) -> Vec<serde_json::Value> {
        self.records()
            .into_iter()
            .filter(|(a, _, _)| a == "db.statement" || a == "db.change")
            .map(|(a, o, mut d)| {
                d["action"] = a.into();
                d["outcome"] = o.into();
                d
            })
            .collect()
    }
}

fn find<'a>(statements: &'a [serde_json::Value], text: &str) -> &'a serde_json::Value {
    statements
        .iter()
        .find(|s| s["statement"] == text)
        .unwrap_or_else(|| panic!("no record of {text:?} in {statements:#?}"))
}

/// Every file under `dir` (the data directory: database, WAL, logs) as bytes.
fn contains_anywhere(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                hits.push(path.display().to_string());
            }
        }
    }
    hits
}

#[test]
fn psql_statements_are_audited_normalized_classified_and_without_values() {
    let s = setup();
    s.psql("CREATE TABLE orders (id int PRIMARY KEY, customer text, note text)");
    s.psql(
        "INSERT INTO orders VALUES (1, 'zq-secret-4711', E'it\\'s'), (2, 'x', $tag$dollar zq-secret-4711$tag$)",
    );
    s.psql("UPDATE orders SET note = 'n2' WHERE id = 2 /* comment zq-secret-4711 */");
    let out = s.psql("SELECT customer FROM orders WHERE id = 1");
    assert_eq!(out.trim(), "zq-secret-4711");
    s.psql("GRANT SELECT ON orders TO PUBLIC");

    let st = s.statements();
    let create = find(
        &st,
        "CREATE TABLE orders (id int PRIMARY KEY, customer text, note text)",
    );
    assert_eq!(create["class"], "ddl");
    assert_eq!(create["action"], "db.change");
    assert_eq!(create["command"], "CREATE TABLE");
    let insert = find(&st, "INSERT INTO orders VALUES ($1, $2, $3), ($4, $5, $6)");
    assert_eq!(insert["class"], "write");
    assert_eq!(insert["rows"], "2");
    assert_eq!(insert["db_role"], "app_rw");
    let update = find(&st, "UPDATE orders SET note = $1 WHERE id = $2");
    assert_eq!(update["rows"], "1");
    let select = find(&st, "SELECT customer FROM orders WHERE id = $1");
    assert_eq!(select["class"], "read");
    assert_eq!(select["action"], "db.statement");
    assert_eq!(select["rows"], "1");
    let grant = find(&st, "GRANT SELECT ON orders TO PUBLIC");
    assert_eq!(grant["class"], "privilege");

    // The distinctive value is nowhere in rampart's data directory or its log.
    let hits = contains_anywhere(s.r.data_dir(), b"zq-secret-4711");
    assert!(hits.is_empty(), "the value leaked into {hits:?}");
    assert!(!s.r.log().contains("zq-secret-4711"));

    let changes = cli_ok(&s.r, &["db", "changes", "--since", "1h"]);
    assert!(changes.contains("UPDATE orders SET note = $1"), "{changes}");
    assert!(!changes.contains("SELECT customer"), "{changes}");
    let sessions = cli_ok(&s.r, &["db", "sessions"]);
    assert!(sessions.contains("user:alice"), "{sessions}");
    assert!(sessions.contains("orders-db"), "{sessions}");
    // One of the sessions holds the UPDATE, with its class and row count.
    let found = sessions
        .lines()
        .filter_map(|l| l.split(['│', '┆']).nth(1))
        .map(str::trim)
        .filter(|id| id.len() == 36)
        .map(|id| cli_ok(&s.r, &["db", "statements", id]))
        .find(|out| out.contains("UPDATE orders SET note = $1 WHERE id = $2"))
        .expect("a session with the UPDATE");
    assert!(found.contains("write"), "{found}");

    // LOG-4 evidence: change events per database and person.
    let report = cli_ok(&s.r, &["report", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    let log4 = report["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "LOG-4")
        .unwrap();
    assert_eq!(log4["status"], "pass", "{log4}");
    let evidence = log4["evidence"].to_string();
    assert!(
        evidence.contains("orders-db: 4 changes (alice 4)"),
        "{evidence}"
    );
}

/// With rampart's own store on PostgreSQL (as when nodes share one), the gateway's
/// statements are committed there, normalized and without their values, and `serve`
/// stops cleanly.
#[test]
fn with_the_store_on_postgresql_statements_are_audited_there() {
    let mut s = setup_on(Some("rampart_store"), "");
    let store = format!("{}/rampart_store", s.pg.url().rsplit_once('/').unwrap().0);
    s.psql("CREATE TABLE kept (id int PRIMARY KEY, secret text)");
    s.psql("INSERT INTO kept VALUES (1, 'zq-pgstore-8812')");
    assert_eq!(
        s.psql("SELECT secret FROM kept WHERE id = 1").trim(),
        "zq-pgstore-8812"
    );

    let audited = Postgres::psql(
        &store,
        "SELECT action || ' ' || (details::json->>'statement') FROM audit_log WHERE action IN ('db.statement', 'db.change') ORDER BY seq",
    );
    let audited: Vec<&str> = audited.lines().collect();
    for expected in [
        "db.change CREATE TABLE kept (id int PRIMARY KEY, secret text)",
        "db.change INSERT INTO kept VALUES ($1, $2)",
        "db.statement SELECT secret FROM kept WHERE id = $1",
    ] {
        assert!(audited.contains(&expected), "{expected:?} in {audited:#?}");
    }
    let leaked = Postgres::psql(
        &store,
        "SELECT count(*) FROM audit_log WHERE details LIKE '%zq-pgstore-8812%'",
    );
    assert_eq!(leaked.trim(), "0");
    assert!(!s.r.log().contains("zq-pgstore-8812"));

    assert_eq!(s.r.stop(), Some(0), "{}", s.r.log());
    let last = Postgres::psql(
        &store,
        "SELECT action FROM audit_log ORDER BY seq DESC LIMIT 1",
    );
    assert_eq!(last.trim(), "system.shutdown");
}

/// A server that asks for the role's password gets it through SCRAM-SHA-256; a wrong
/// stored password, or a server asking for an iteration count no login should cost, ends
/// in a clear refusal, audited with its reason.
#[test]
fn the_gateway_logs_in_to_the_server_with_scram_and_refuses_absurd_iteration_counts() {
    let s = setup();
    s.pg.require_scram("app_rw");
    assert_eq!(s.psql("SELECT current_user").trim(), "app_rw");

    let refused = |why: &str, told: &str| {
        let out = s.psql_as("orders-db", &s.token, "require", "SELECT 1");
        assert!(!out.status.success(), "{why}: the session opened");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(stderr.contains(told), "{why}: {stderr}");
        s.records()
            .into_iter()
            .filter(|(action, _, _)| action == "db.refused")
            .filter_map(|(_, _, details)| details["reason"].as_str().map(str::to_owned))
            .next_back()
            .unwrap_or_else(|| panic!("{why}: no db.refused record"))
    };

    set_credential(&s.r, "orders-db", "not-the-password");
    // The server's own refusal reaches the client unchanged.
    let reason = refused(
        "a wrong stored password",
        "password authentication failed for user \"app_rw\"",
    );
    assert!(reason.contains("SQLSTATE 28P01"), "{reason}");

    set_credential(&s.r, "orders-db", "upstream-pw");
    // A verifier of two billion iterations, written into the catalog directly (ALTER ROLE
    // with it ran for minutes here): a login would take a core for many minutes; the
    // gateway declines before it starts.
    let zeros = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    Postgres::psql(
        s.pg.url(),
        &format!(
            "UPDATE pg_authid SET rolpassword = 'SCRAM-SHA-256$2000000000:c2FsdHNhbHRzYWx0c2FsdA==${zeros}:{zeros}' WHERE rolname = 'app_rw'"
        ),
    );
    let reason = refused(
        "two billion iterations",
        "rampart could not log in to the database server",
    );
    assert!(reason.contains("SCRAM iterations"), "{reason}");
    assert!(
        reason.contains(&rampart_postgres::upstream::MAX_SCRAM_ITERATIONS.to_string()),
        "{reason}"
    );
}

#[test]
fn an_error_from_the_server_reaches_the_client_and_is_audited_with_its_sqlstate() {
    let s = setup();
    let out = s.psql_as(
        "orders-db",
        &s.token,
        "require",
        "SELECT * FROM no_such_table",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("relation \"no_such_table\" does not exist"),
        "{err}"
    );
    let st = s.statements();
    let rec = find(&st, "SELECT * FROM no_such_table");
    assert_eq!(rec["sqlstate"], "42P01");
    assert_eq!(rec["outcome"], "failure");
}

#[test]
fn copy_in_and_out_pass_through() {
    let s = setup();
    s.psql("CREATE TABLE items (id int, name text)");
    let mut child = Command::new("psql")
        .arg(s.conninfo("orders-db", "require"))
        .args(["-v", "ON_ERROR_STOP=1", "-AtXc", "COPY items FROM STDIN"])
        .env("PGPASSWORD", &s.token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        for i in 0..1000 {
            writeln!(stdin, "{i}\tname-{i}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let copied = s.psql("COPY (SELECT * FROM items ORDER BY id) TO STDOUT");
    assert_eq!(copied.lines().count(), 1000);
    assert_eq!(copied.lines().nth(999), Some("999\tname-999"));
    let st = s.statements();
    assert_eq!(find(&st, "COPY items FROM STDIN")["rows"], "1000");
    assert_eq!(find(&st, "COPY items FROM STDIN")["class"], "write");
    assert_eq!(
        find(&st, "COPY (SELECT * FROM items ORDER BY id) TO STDOUT")["class"],
        "read"
    );
}

#[test]
fn ctrl_c_in_psql_cancels_a_running_pg_sleep() {
    let s = setup();
    let child = Command::new("psql")
        .arg(s.conninfo("orders-db", "require"))
        .args(["-AtXc", "SELECT pg_sleep(60)"])
        .env("PGPASSWORD", &s.token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the upstream runs it, read from the server directly.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let active = Postgres::psql(
            s.pg.url(),
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)' AND state = 'active'",
        );
        if active.trim() == "1" {
            break;
        }
        assert!(Instant::now() < deadline, "pg_sleep never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    // What Ctrl-C does: psql sends a CancelRequest on a new connection.
    let sent = Instant::now();
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let took = sent.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("canceling statement due to user request"),
        "{err}"
    );
    assert!(took < Duration::from_secs(5), "cancel took {took:?}");
    let cancels: Vec<_> = s
        .records()
        .into_iter()
        .filter(|(a, _, _)| a == "db.cancel")
        .collect();
    assert_eq!(cancels.len(), 1, "{cancels:?}");
    assert_eq!(cancels[0].1, "success");
    let st = s.statements();
    assert_eq!(find(&st, "SELECT pg_sleep($1)")["sqlstate"], "57014");
}

#[test]
fn plaintext_expired_tokens_and_tokens_for_another_target_are_refused() {
    // Tokens as passwords inside TLS: each refusal names its reason.
    let s = setup_with("client_auth = \"password\"");
    let plain = s.psql_as("orders-db", &s.token, "disable", "SELECT 1");
    assert!(!plain.status.success());
    let err = String::from_utf8_lossy(&plain.stderr);
    assert!(err.contains("sslmode=require"), "{err}");

    let other = issue(&s.r, "billing-db");
    let wrong = s.psql_as("orders-db", &other, "require", "SELECT 1");
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("password authentication failed"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    // The billing token works on its own target.
    let right = s.psql_as("billing-db", &other, "require", "SELECT 1");
    assert!(
        right.status.success(),
        "{}",
        String::from_utf8_lossy(&right.stderr)
    );

    // Expire the orders token (the store is shared; SQLite takes the write).
    support::sqlite(
        &s.r.data_dir().join("rampart.db"),
        "UPDATE db_tokens SET expires_us = 1 WHERE target = 'orders-db'",
    );
    let expired = s.psql_as("orders-db", &s.token, "require", "SELECT 1");
    assert!(!expired.status.success());

    let garbage = s.psql_as("orders-db", "rdb_not-a-token", "require", "SELECT 1");
    assert!(!garbage.status.success());

    let reasons: Vec<String> = s
        .records()
        .into_iter()
        .filter(|(a, _, _)| a == "db.refused")
        .map(|(_, _, d)| d["reason"].as_str().unwrap_or_default().to_owned())
        .collect();
    for want in [
        "plaintext startup",
        "token of another target",
        "expired token",
        "unknown token",
    ] {
        assert!(
            reasons.iter().any(|r| r.starts_with(want)),
            "{want} not in {reasons:?}"
        );
    }
}

#[test]
fn a_revoked_token_is_refused() {
    let s = setup();
    s.psql("SELECT 1");
    let list = cli_ok(&s.r, &["db", "token", "list", "--user", "alice"]);
    let id = list
        .lines()
        .find(|l| l.contains("orders-db"))
        .and_then(|l| l.split(['│', '┆']).nth(1))
        .unwrap()
        .trim()
        .to_owned();
    cli_ok(&s.r, &["db", "token", "revoke", &id]);
    let out = s.psql_as("orders-db", &s.token, "require", "SELECT 1");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("password authentication failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // SCRAM (the default): the refusal says no live token matched.
    let reasons: Vec<String> = s
        .records()
        .into_iter()
        .filter(|(a, _, _)| a == "db.refused")
        .map(|(_, _, d)| d["reason"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("no live token") && r.contains("SCRAM")),
        "{reasons:?}"
    );
    // A token for another target does not pass SCRAM either.
    let other = issue(&s.r, "billing-db");
    assert!(
        !s.psql_as("orders-db", &other, "require", "SELECT 1")
            .status
            .success()
    );
    assert!(
        s.psql_as("billing-db", &other, "require", "SELECT 1")
            .status
            .success()
    );
}

#[test]
fn an_upstream_that_goes_away_mid_query_gives_the_client_an_error() {
    let s = setup();
    let child = Command::new("psql")
        .arg(s.conninfo("orders-db", "require"))
        .args(["-AtXc", "SELECT pg_sleep(30)"])
        .env("PGPASSWORD", &s.token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let done = Postgres::psql(
            s.pg.url(),
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'",
        );
        if done.trim() == "1" {
            break;
        }
        assert!(Instant::now() < deadline, "pg_sleep never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(started.elapsed() < Duration::from_secs(10));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("terminating connection") || err.contains("closed"),
        "{err}"
    );
    let ends: Vec<_> = s
        .records()
        .into_iter()
        .filter(|(a, _, _)| a == "db.session.end")
        .collect();
    assert!(
        ends.iter().any(|(_, _, d)| d["reason"] == "server"),
        "{ends:?}"
    );
}

#[test]
fn prepared_statements_through_libpq_are_audited_without_their_bind_values() {
    let s = setup();
    s.psql("CREATE TABLE notes (who text, n int)");
    let script = s.r.data_dir().join("insert.sql");
    std::fs::write(&script, "INSERT INTO notes VALUES (:secret, 42);\nSELECT count(*) FROM notes WHERE who = :secret;\n").unwrap();
    let out = Command::new(testkit_pgbench())
        .args([
            "-n",
            "-M",
            "prepared",
            "-t",
            "25",
            "-D",
            "secret=zq-bind-9321",
            "-f",
        ])
        .arg(&script)
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", s.port.to_string())
        .env("PGUSER", "alice#orders-db")
        .env("PGPASSWORD", &s.token)
        .env("PGDATABASE", &s.database)
        .env("PGSSLMODE", "require")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let st = s.statements();
    let inserts = st
        .iter()
        .filter(|r| r["statement"] == "INSERT INTO notes VALUES ($1, $2)")
        .count();
    assert_eq!(inserts, 25, "{st:#?}");
    let selects = st
        .iter()
        .filter(|r| r["statement"] == "SELECT count(*) FROM notes WHERE who = $1")
        .count();
    assert_eq!(selects, 25);
    let hits = contains_anywhere(s.r.data_dir(), b"zq-bind-9321");
    assert!(hits.is_empty(), "a Bind value leaked into {hits:?}");
}

fn testkit_pgbench() -> std::path::PathBuf {
    rampart_testkit::pg_bin().join("pgbench")
}

/// Sends raw bytes to the gateway without TLS and returns what it answered.
fn raw(port: u16, bytes: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(bytes).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

fn startup(version: i32, params: &[u8]) -> Vec<u8> {
    let mut body = version.to_be_bytes().to_vec();
    body.extend_from_slice(params);
    let mut out = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

#[test]
fn malformed_startup_packets_get_an_error_and_a_closed_connection() {
    let s = setup();
    // Oversized: refused from the length alone.
    let answer = raw(s.port, &[0, 0x10, 0, 0, 0, 3, 0, 0]);
    assert_eq!(answer.first(), Some(&b'E'), "{answer:?}");
    assert!(String::from_utf8_lossy(&answer).contains("08P01"));
    // Protocol 2.0.
    let answer = raw(s.port, &startup(2 << 16, b"user\0alice\0\0"));
    assert!(String::from_utf8_lossy(&answer).contains("unsupported frontend protocol 2.0"));
    // Invalid UTF-8 in a parameter.
    let answer = raw(s.port, &startup(3 << 16, b"user\0\xff\xfe\0\0"));
    assert!(String::from_utf8_lossy(&answer).contains("not UTF-8"));
    // GSSENCRequest is refused with 'N'; a plaintext startup after it gets 08P01.
    let mut gss = 8i32.to_be_bytes().to_vec();
    gss.extend_from_slice(&80_877_104i32.to_be_bytes());
    gss.extend_from_slice(&startup(3 << 16, b"user\0alice#orders-db\0\0"));
    let answer = raw(s.port, &gss);
    assert_eq!(answer.first(), Some(&b'N'));
    assert!(String::from_utf8_lossy(&answer).contains("sslmode=require"));
    // A length below the minimum.
    let answer = raw(s.port, &[0, 0, 0, 2]);
    assert_eq!(answer.first(), Some(&b'E'));
    // An unknown cancel key is refused silently (and audited).
    let mut cancel = 16i32.to_be_bytes().to_vec();
    cancel.extend_from_slice(&80_877_102i32.to_be_bytes());
    cancel.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]);
    assert!(raw(s.port, &cancel).is_empty());
    // The gateway still serves.
    assert_eq!(s.psql("SELECT 1").trim(), "1");
    let refused = s
        .records()
        .into_iter()
        .filter(|(a, _, _)| a == "db.refused")
        .count();
    assert!(refused >= 5, "{refused}");
}

#[test]
fn a_token_from_the_web_page_after_an_mfa_login_connects_psql() {
    let s = setup();
    let admin = &s.admin;
    cli_admin(&s.r, &s.admin_secret, &["grant", "add", "admin", "dba"]);
    let page = admin.get("/databases");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("value=\"orders-db/app_rw\""),
        "{}",
        page.body
    );
    let issued = admin.post(
        "/databases/token",
        &[("choice", "orders-db/app_rw"), ("hours", "2")],
    );
    assert_eq!(issued.status, 200, "{}", issued.body);
    let token = support::between(&issued.body, "<code id=\"db-token\">", "</code>")
        .unwrap()
        .to_owned();
    assert!(token.starts_with("rdb_"));
    let psql = support::between(&issued.body, "<code id=\"db-psql\">", "</code>").unwrap();
    assert!(psql.contains("user=admin#orders-db"), "{psql}");
    assert!(psql.contains(&format!("port={}", s.port)), "{psql}");
    let out = Command::new("psql")
        .arg(format!(
            "host=127.0.0.1 port={} user=admin#orders-db dbname={} sslmode=require",
            s.port, s.database
        ))
        .args(["-AtXc", "CREATE TABLE web_made (id int)"])
        .env("PGPASSWORD", &token)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The admin (audit.view) sees the session and the change; the token is listed.
    let page = admin.get("/databases");
    assert!(
        page.body.contains("CREATE TABLE web_made (id int)"),
        "{}",
        page.body
    );
    assert!(page.body.contains(">live<"), "{}", page.body);
    let session = support::between(&page.body, "href=\"/databases/sessions/", "\"")
        .unwrap()
        .to_owned();
    let statements = admin.get(&format!("/databases/sessions/{session}"));
    assert_eq!(statements.status, 200, "{}", statements.body);
    assert!(
        statements.body.contains("CREATE TABLE web_made (id int)"),
        "{}",
        statements.body
    );
    assert!(statements.body.contains("ddl"), "{}", statements.body);
    // The token is stored only as a hash.
    assert!(contains_anywhere(s.r.data_dir(), token.as_bytes()).is_empty());
}

#[test]
fn when_the_audit_log_refuses_writes_statements_are_not_acknowledged_and_new_ones_do_not_run() {
    let s = setup_with("audit_wait_seconds = 2");
    s.psql("CREATE TABLE t (id int)");
    let db = s.r.data_dir().join("rampart.db");
    let go = s.r.data_dir().join("go");
    let script = |name: &str, body: String| {
        let path = s.r.data_dir().join(name);
        std::fs::write(&path, body).unwrap();
        path
    };
    // Session B is open before the audit log fails; it waits for the file `go`.
    let b = script(
        "b.sql",
        format!(
            "SELECT 1;\n\\! while [ ! -f {} ]; do sleep 0.05; done\nINSERT INTO t VALUES (2);\n",
            go.display()
        ),
    );
    // Session A makes the audit table refuse rows (as a full disk would), then writes.
    let trigger = format!(
        "python3 -c \"import sqlite3; c=sqlite3.connect('{}'); c.execute('CREATE TRIGGER audit_full BEFORE INSERT ON audit_log BEGIN SELECT RAISE(FAIL, \\\"disk full\\\"); END'); c.commit()\"",
        db.display()
    );
    let a = script(
        "a.sql",
        format!("SELECT 1;\n\\! {trigger}\nINSERT INTO t VALUES (1);\n"),
    );
    let run = |file: &Path| {
        Command::new("psql")
            .arg(s.conninfo("orders-db", "require"))
            .args(["-v", "ON_ERROR_STOP=1", "-AtX", "-f"])
            .arg(file)
            .env("PGPASSWORD", &s.token)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let session_b = run(&b);
    let out_a = run(&a).wait_with_output().unwrap();
    assert!(!out_a.status.success());
    let err_a = String::from_utf8_lossy(&out_a.stderr);
    assert!(
        err_a.contains("could not write the audit record"),
        "{err_a}"
    );
    std::fs::write(&go, "").unwrap();
    let out_b = session_b.wait_with_output().unwrap();
    assert!(!out_b.status.success());
    let err_b = String::from_utf8_lossy(&out_b.stderr);
    assert!(err_b.contains("this statement was not run"), "{err_b}");

    support::sqlite(&db, "DROP TRIGGER audit_full;");
    // B's statement never reached the server; the gateway serves again once the log
    // takes writes (its probe records that).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = s.psql_as(
            "orders-db",
            &s.token,
            "require",
            "SELECT count(*) FROM t WHERE id = 2",
        );
        if out.status.success() {
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_session_ends_when_the_grant_it_rests_on_expires() {
    let s = setup();
    // The grant runs out a few seconds from now.
    let soon = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros()
        + 3_000_000) as i64;
    support::sqlite(
        &s.r.data_dir().join("rampart.db"),
        &format!("UPDATE bindings SET expires_us = {soon} WHERE account = 'alice'"),
    );
    let started = Instant::now();
    let out = s.psql_as("orders-db", &s.token, "require", "SELECT pg_sleep(30)");
    assert!(!out.status.success());
    assert!(started.elapsed() < Duration::from_secs(20));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("grant that allowed this session expired"),
        "{err}"
    );
    let ends: Vec<_> = s
        .records()
        .into_iter()
        .filter(|(a, _, _)| a == "db.session.end")
        .collect();
    assert!(
        ends.iter().any(|(_, _, d)| d["reason"] == "grant expired"),
        "{ends:?}"
    );
}

/// A grant removed during a session (revoked in an access review, removed by an admin)
/// ends the session at the next re-check, within seconds.
#[test]
fn a_session_ends_when_the_grant_it_rests_on_is_removed() {
    let s = setup();
    let started = Instant::now();
    let psql = std::thread::scope(|scope| {
        let running =
            scope.spawn(|| s.psql_as("orders-db", &s.token, "require", "SELECT pg_sleep(60)"));
        // Once the session has begun, the grant goes.
        while !s.records().iter().any(|(a, _, _)| a == "db.session.start") {
            assert!(started.elapsed() < Duration::from_secs(20), "no session");
            std::thread::sleep(Duration::from_millis(100));
        }
        cli_admin(&s.r, &s.admin_secret, &["grant", "remove", "alice", "dba"]);
        running.join().unwrap()
    });
    assert!(!psql.status.success());
    assert!(started.elapsed() < Duration::from_secs(40));
    let err = String::from_utf8_lossy(&psql.stderr);
    assert!(err.contains("was removed"), "{err}");
    assert!(
        s.records()
            .iter()
            .any(|(a, _, d)| a == "db.session.end" && d["reason"] == "grant removed"),
        "{:?}",
        s.records()
    );
}

#[test]
fn large_results_stream_through_and_notifications_and_parameter_status_reach_the_client() {
    let s = setup();
    let rows = s.psql("SELECT g, repeat('x', 100) FROM generate_series(1, 200000) g");
    assert_eq!(rows.lines().count(), 200_000);
    let st = s.statements();
    assert_eq!(
        find(
            &st,
            "SELECT g, repeat($1, $2) FROM generate_series($3, $4) g"
        )["rows"],
        "200000"
    );
    let out = s.psql("LISTEN ch; NOTIFY ch, 'hello'; SHOW application_name;");
    assert!(
        out.contains("Asynchronous notification \"ch\" with payload \"hello\""),
        "{out}"
    );
    // application_name from the client reaches the server (ParameterStatus comes back).
    let out = Command::new("psql")
        .arg(format!(
            "{} application_name=rampart-test",
            s.conninfo("orders-db", "require")
        ))
        .args(["-AtXc", "SHOW application_name"])
        .env("PGPASSWORD", &s.token)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "rampart-test");
}

/// A CA and a certificate for 127.0.0.1 signed by it, made with openssl in `dir`.
fn make_certs(dir: &Path, name: &str) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs (apt-get install -y openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let ca_key = format!("{name}-ca.key");
    let ca = format!("{name}-ca.pem");
    run(&[
        &["req", "-x509"],
        &ec[..],
        &[
            "-keyout",
            &ca_key,
            "-out",
            &ca,
            "-days",
            "2",
            "-subj",
            "/CN=test-ca",
        ],
    ]
    .concat());
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        &["req"],
        &ec[..],
        &[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    ]
    .concat());
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
}

#[test]
fn tls_to_the_database_server_is_verified_against_the_configured_ca() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path(), "good");
    make_certs(certs.path(), "other");
    // `other` overwrote server.pem/key; make the server's pair from `good` again.
    make_certs(certs.path(), "good");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(certs.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let key = certs.path().join("server.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    if rampart_testkit::is_root() {
        let owner = Command::new("chown")
            .arg("postgres")
            .arg(&key)
            .arg(certs.path().join("server.pem"))
            .status()
            .unwrap();
        assert!(owner.success());
    }
    let s = setup_with(&format!(
        "upstream_tls = \"verify\"\nupstream_ca_file = \"{}\"",
        certs.path().join("good-ca.pem").display()
    ));
    for sql in [
        format!(
            "ALTER SYSTEM SET ssl_cert_file = '{}'",
            certs.path().join("server.pem").display()
        ),
        format!("ALTER SYSTEM SET ssl_key_file = '{}'", key.display()),
        "ALTER SYSTEM SET ssl = on".into(),
        "SELECT pg_reload_conf()".into(),
    ] {
        Postgres::psql(s.pg.url(), &sql);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while Postgres::psql(s.pg.url(), "SHOW ssl").trim() != "on" {
        assert!(Instant::now() < deadline, "ssl never turned on");
        std::thread::sleep(Duration::from_millis(100));
    }
    let ssl = s.psql("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
    assert_eq!(ssl.trim(), "t");

    // A gateway trusting another CA does not log in to this server.
    let port = free_port();
    let other = Rampart::start(
        bin(),
        &format!(
            "[postgres]\nlisten = \"127.0.0.1:{port}\"\nupstream_tls = \"verify\"\nupstream_ca_file = \"{}\"\n",
            certs.path().join("other-ca.pem").display()
        ),
    );
    wait_for_port(port, Duration::from_secs(10), "the second gateway");
    let address =
        s.pg.url()
            .rsplit_once('/')
            .unwrap()
            .0
            .rsplit_once('@')
            .unwrap()
            .1
            .to_owned();
    cli_ok(
        &other,
        &["user", "add", "alice", "--email", "alice@example.com"],
    );
    cli_ok(
        &other,
        &[
            "target",
            "add",
            "orders-db",
            "--kind",
            "postgres",
            "--address",
            &address,
            "--env",
            "production",
        ],
    );
    let other_secret = enroll(&other.curl(), &other.admin_enroll_url);
    cli_admin(
        &other,
        &other_secret,
        &[
            "role",
            "add",
            "dba",
            "--grant",
            "orders-db production app_rw",
        ],
    );
    cli_admin(&other, &other_secret, &["grant", "add", "alice", "dba"]);
    set_credential(&other, "orders-db", "upstream-pw");
    let token = issue(&other, "orders-db");
    let out = Command::new("psql")
        .arg(format!(
            "host=127.0.0.1 port={port} user=alice#orders-db dbname={} sslmode=require",
            s.database
        ))
        .args(["-AtXc", "SELECT 1"])
        .env("PGPASSWORD", &token)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("could not set up verified TLS"), "{err}");
}

#[test]
fn a_message_over_the_configured_limit_ends_the_session_with_an_error() {
    let s = setup_with("max_message_kib = 64");
    let big = format!("SELECT '{}'", "v".repeat(100 * 1024));
    let out = s.psql_as("orders-db", &s.token, "require", &big);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("larger than postgres.max_message_kib"),
        "{err}"
    );
    // Below the limit is fine, and the value is not stored.
    let fine = format!("SELECT '{}'", "w".repeat(32 * 1024));
    assert!(s.psql(&fine).starts_with("www"));
    let ends: Vec<_> = s
        .records()
        .into_iter()
        .filter(|(a, _, _)| a == "db.session.end")
        .map(|(_, _, d)| d["reason"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        ends.iter().any(|r| r == "client protocol error"),
        "{ends:?}"
    );
}

#[test]
fn large_object_import_through_fastpath_is_audited_without_its_content() {
    let s = setup();
    let file = s.r.data_dir().join("lo.txt");
    std::fs::write(&file, "zq-lo-7777 content of a large object").unwrap();
    let out = s.psql(&format!("\\lo_import {}", file.display()));
    assert!(out.contains("lo_import"), "{out}");
    std::fs::remove_file(&file).unwrap();
    let st = s.statements();
    let calls: Vec<_> = st
        .iter()
        .filter(|r| {
            r["statement"]
                .as_str()
                .is_some_and(|t| t.starts_with("(fastpath function call"))
        })
        .collect();
    assert!(!calls.is_empty(), "{st:#?}");
    assert!(
        calls
            .iter()
            .all(|c| c["class"] == "write" && c["action"] == "db.change")
    );
    assert!(contains_anywhere(s.r.data_dir(), b"zq-lo-7777").is_empty());
}
