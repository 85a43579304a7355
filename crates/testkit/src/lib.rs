//! Real peers for tests, started on free loopback ports in temporary folders and stopped
//! when their guard drops. A missing program is an error that names the Debian package
//! to install: tests never skip silently.
//!
//! This crate is only a dev-dependency; it may panic, since a test that cannot start its
//! peer must fail loudly.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

pub mod pebble;
pub mod rampart;
pub mod s3;
pub mod sshd;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1, chosen at random below Linux's ephemeral range (32768 and
/// up) and checked by binding it. Port 0 would hand out an ephemeral port, which the
/// kernel may give to any outgoing connection of a parallel test before the peer that is
/// told to listen on it has bound it.
///
/// A port handed out is claimed until this process ends: a lock on a file named after it
/// in a folder shared by every test process (tests run in processes of their own, side by
/// side), so no other test is given it while the peer it was meant for has not bound it
/// yet, or is restarted on it. Within one process the list of given ports does the same.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    static GIVEN: std::sync::Mutex<Vec<(u16, Option<std::fs::File>)>> =
        std::sync::Mutex::new(Vec::new());
    let claims = std::env::temp_dir().join("rampart-test-ports");
    let _ = std::fs::create_dir_all(&claims);
    for _ in 0..1000 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write(unique().as_bytes());
        let port = 20_000 + u16::try_from(h.finish() % 12_000).unwrap_or(0);
        let mut given = GIVEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if given.iter().any(|(p, _)| *p == port) {
            continue;
        }
        // Without the shared folder (it could not be made), the bind check alone decides.
        let claim = match std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(claims.join(port.to_string()))
        {
            Ok(file) => match file.try_lock() {
                Ok(()) => Some(file),
                Err(_) => continue,
            },
            Err(_) => None,
        };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push((port, claim));
            return port;
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// Waits until `127.0.0.1:port` accepts connections, or panics after `deadline`.
pub fn wait_for_port(port: u16, deadline: Duration, what: &str) {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on 127.0.0.1:{port} within {deadline:?}");
}

/// A PostgreSQL server: the one the test command started (`RAMPART_TEST_PG_URL`), or a
/// fresh one in a temporary folder, stopped on drop.
#[derive(Debug)]
pub struct Postgres {
    url: String,
    owned: Option<(PathBuf, tempfile::TempDir)>,
}

impl Postgres {
    /// Starts or reuses a server and creates a fresh database in it.
    pub fn start() -> Postgres {
        if let Ok(base) = std::env::var("RAMPART_TEST_PG_URL") {
            let db = format!("t{}", unique());
            run_psql(&base, &format!("CREATE DATABASE {db}"));
            let url = format!("{}/{db}", base.trim_end_matches('/'));
            return Postgres { url, owned: None };
        }
        let bin = pg_bin();
        let dir = tempfile::Builder::new()
            .prefix("rampart-pg")
            .tempdir()
            .expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let as_root = is_root();
        if as_root {
            // initdb refuses to run as root: hand the folder to the postgres user.
            chown_postgres(dir.path());
        }
        let initdb = bin.join("initdb");
        let mut cmd = postgres_cmd(as_root, &initdb);
        cmd.args([
            "-D",
            data.to_str().unwrap(),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
        ]);
        let out = cmd.output().expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let log = dir.path().join("pg.log");
        // A free port can be taken by a parallel test before the server binds it: then
        // the server starts again on another port (a few times at most).
        let mut attempt = 0;
        let port = loop {
            attempt += 1;
            let port = free_port();
            let opts = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                dir.path().display()
            );
            let _ = std::fs::remove_file(&log);
            let mut cmd = postgres_cmd(as_root, &bin.join("pg_ctl"));
            cmd.args([
                "-D",
                data.to_str().unwrap(),
                "-o",
                &opts,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ]);
            let out = cmd.output().expect("run pg_ctl");
            if out.status.success() {
                break port;
            }
            let server_log = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(
                attempt < 5 && server_log.contains("Address already in use"),
                "pg_ctl start failed: {}\n{server_log}",
                String::from_utf8_lossy(&out.stderr),
            );
        };
        let base = format!("postgres://postgres@127.0.0.1:{port}");
        run_psql(&format!("{base}/postgres"), "CREATE DATABASE rampart_test");
        Postgres {
            url: format!("{base}/rampart_test"),
            owned: Some((data, dir)),
        }
    }

    /// The connection URL of the test database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Creates another database on the same server and returns its URL.
    pub fn create_database(&self, name: &str) -> String {
        let (base, _) = self.url.rsplit_once('/').expect("url has a database");
        run_psql(
            &format!("{base}/postgres"),
            &format!("CREATE DATABASE {name}"),
        );
        format!("{base}/{name}")
    }

    /// Makes the server ask `role` for its password over TCP with SCRAM-SHA-256 (the
    /// cluster is made with `--auth=trust`): a line before the others in `pg_hba.conf`,
    /// then a reload. Needs a server this test started (not `RAMPART_TEST_PG_URL`).
    pub fn require_scram(&self, role: &str) {
        let (data, _) = self
            .owned
            .as_ref()
            .expect("require_scram needs a server of the test's own, not RAMPART_TEST_PG_URL");
        let hba = data.join("pg_hba.conf");
        let rules = std::fs::read_to_string(&hba).expect("read pg_hba.conf");
        std::fs::write(
            &hba,
            format!("host all {role} 127.0.0.1/32 scram-sha-256\n{rules}"),
        )
        .expect("write pg_hba.conf");
        let loaded = || Self::psql(&self.url, "SELECT pg_conf_load_time()");
        let before = loaded();
        let reloaded = Self::psql(&self.url, "SELECT pg_reload_conf()");
        assert_eq!(reloaded.trim(), "t", "pg_reload_conf failed");
        // The reload is a signal to the server: wait until new sessions see it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while loaded() == before {
            assert!(
                Instant::now() < deadline,
                "the server did not reload pg_hba.conf within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs SQL in the test database (or `url`) and returns psql's unaligned output.
    pub fn psql(url: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .args([url, "-v", "ON_ERROR_STOP=1", "-AtXqc", sql])
            .output()
            .unwrap_or_else(|e| {
                panic!("psql not runnable ({e}): apt-get install -y postgresql-client")
            });
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some((data, _dir)) = &self.owned {
            let mut cmd = postgres_cmd(is_root(), &pg_bin().join("pg_ctl"));
            cmd.args([
                "-D",
                data.to_str().unwrap_or("."),
                "-m",
                "immediate",
                "-w",
                "stop",
            ]);
            let _ = cmd.output();
        }
    }
}

/// The folder with PostgreSQL's server programs.
pub fn pg_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
        .into_iter()
        .rev()
        .find(|p| p.join("initdb").exists())
        .unwrap_or_else(|| panic!("PostgreSQL server not found: apt-get install -y postgresql"))
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

fn postgres_cmd(as_root: bool, program: &Path) -> Command {
    if as_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn chown_postgres(path: &Path) {
    let ok = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(path)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "chown to postgres failed: is the postgresql package installed? apt-get install -y postgresql"
    );
}

fn run_psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qc", sql])
        .output()
        .unwrap_or_else(|e| {
            panic!("psql not runnable ({e}): apt-get install -y postgresql-client")
        });
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) fn unique() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Another test process (here `flock`, which takes the same kind of lock) cannot claim
    /// a port this process was given.
    #[test]
    fn a_port_given_out_stays_claimed_from_other_processes() {
        let port = free_port();
        let claim = std::env::temp_dir()
            .join("rampart-test-ports")
            .join(port.to_string());
        assert!(claim.is_file(), "{} was not made", claim.display());
        let other = Command::new("flock")
            .arg("-n")
            .arg(&claim)
            .arg("true")
            .status()
            .expect("flock (util-linux)");
        assert!(!other.success(), "another process claimed port {port} too");
        assert_ne!(free_port(), port, "one process is not given a port twice");
    }
}
