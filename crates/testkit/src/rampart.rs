//! The built `rampart` binary as a peer: a data directory of its own, free loopback
//! ports, started with `serve` and stopped with SIGTERM.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::{free_port, wait_for_port};

/// A running rampart.
#[derive(Debug)]
pub struct Rampart {
    bin: PathBuf,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// HTTPS port.
    pub https_port: u16,
    /// HTTP port.
    pub http_port: u16,
    /// Metrics port.
    pub metrics_port: u16,
    /// The first admin's enrollment URL printed by init.
    pub admin_enroll_url: String,
    /// The configured public host.
    pub public_host: String,
}

impl Rampart {
    /// Initializes a data directory and serves it. `extra` is appended to the generated
    /// configuration (sections other than `[web]`).
    pub fn start(bin: &Path, extra: &str) -> Rampart {
        Self::start_with(bin, |_| extra.to_owned())
    }

    /// Like [`Rampart::start`], with the extra configuration made from the chosen HTTP port
    /// (for peers that must know it before rampart starts, like an ACME CA).
    pub fn start_with(bin: &Path, extra: impl FnOnce(u16) -> String) -> Rampart {
        Self::start_on(bin, None, extra)
    }

    /// Like [`Rampart::start`], with rampart's own store in the PostgreSQL database at
    /// `store_url` (`[store] url`, set before `init`) instead of SQLite.
    pub fn start_on_store(bin: &Path, store_url: &str, extra: &str) -> Rampart {
        Self::start_on(bin, Some(store_url), |_| extra.to_owned())
    }

    fn start_on(bin: &Path, store_url: Option<&str>, extra: impl FnOnce(u16) -> String) -> Rampart {
        let dir = tempfile::Builder::new()
            .prefix("rampart-e2e")
            .tempdir()
            .expect("tempdir");
        let store = store_url
            .map(|url| format!("[store]\nurl = \"{url}\"\n"))
            .unwrap_or_default();
        if !store.is_empty() {
            std::fs::write(dir.path().join("rampart.toml"), &store).expect("write config");
        }
        let out = Command::new(bin)
            .arg("--data-dir")
            .arg(dir.path())
            .arg("init")
            .output()
            .expect("run rampart init");
        assert!(
            out.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let admin_enroll_url = stdout
            .split_whitespace()
            .find(|w| w.contains("/enroll/"))
            .expect("init prints an enrollment link")
            .to_owned();
        let (https_port, http_port, metrics_port) = (free_port(), free_port(), free_port());
        let public_host = "gateway.test".to_owned();
        let extra = extra(http_port);
        let config = format!(
            "[web]\npublic_host = \"{public_host}\"\nhttps_listen = \"127.0.0.1:{https_port}\"\nhttp_listen = \"127.0.0.1:{http_port}\"\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\n\n{store}\n{extra}\n"
        );
        std::fs::write(dir.path().join("rampart.toml"), config).expect("write config");
        let mut r = Rampart {
            bin: bin.to_owned(),
            dir,
            child: None,
            https_port,
            http_port,
            metrics_port,
            admin_enroll_url: admin_enroll_url.replace(
                "https://localhost:8443",
                &format!("https://{public_host}:{https_port}"),
            ),
            public_host,
        };
        r.serve();
        r
    }

    /// (Re)starts `serve` and waits until both listeners accept connections.
    pub fn serve(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("serve.log")).expect("log file");
        let child = Command::new(&self.bin)
            .arg("--data-dir")
            .arg(self.dir.path())
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn rampart serve");
        self.child = Some(child);
        wait_for_port(
            self.https_port,
            Duration::from_secs(30),
            &format!("rampart (log: {})", self.log()),
        );
        wait_for_port(self.http_port, Duration::from_secs(10), "rampart HTTP");
    }

    /// Sends SIGTERM and waits for exit; returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// The serving process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The serving process's resident memory in KiB (from /proc).
    pub fn rss_kib(&self) -> u64 {
        let pid = self.pid().expect("rampart is serving");
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
            .unwrap_or(0)
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// `https://gateway.test:PORT` (resolved to 127.0.0.1 by [`Curl`]).
    pub fn origin(&self) -> String {
        format!("https://{}:{}", self.public_host, self.https_port)
    }

    /// Runs a CLI command against this data directory.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .arg("--data-dir")
            .arg(self.dir.path())
            .args(args)
            .output()
            .expect("run rampart")
    }

    /// A curl session (own cookie jar) pointed at this rampart.
    pub fn curl(&self) -> Curl {
        Curl::new(
            &self.public_host,
            self.https_port,
            self.http_port,
            self.dir.path(),
        )
    }
}

impl Drop for Rampart {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- rampart serve log ---\n{}", self.log());
        }
        self.stop();
    }
}

/// One response as curl saw it.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-case.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
}

impl Response {
    /// The first header of that name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// curl with a cookie jar, resolving the public host to 127.0.0.1.
#[derive(Debug)]
pub struct Curl {
    host: String,
    https_port: u16,
    http_port: u16,
    jar: PathBuf,
}

impl Curl {
    fn new(host: &str, https_port: u16, http_port: u16, dir: &Path) -> Curl {
        let jar = dir.join(format!("jar-{}", crate::unique()));
        Curl {
            host: host.to_owned(),
            https_port,
            http_port,
            jar,
        }
    }

    /// The cookie jar (Netscape format), to hand the session to another client.
    pub fn jar(&self) -> &Path {
        &self.jar
    }

    /// GET over HTTPS.
    pub fn get(&self, path: &str) -> Response {
        self.run(&[&format!("https://{}:{}{path}", self.host, self.https_port)])
    }

    /// POST a form over HTTPS (no Origin header, as curl sends none).
    pub fn post(&self, path: &str, form: &[(&str, &str)]) -> Response {
        let mut args = vec![format!("https://{}:{}{path}", self.host, self.https_port)];
        if form.is_empty() {
            args.push("--data".into());
            args.push(String::new());
        }
        for (k, v) in form {
            args.push("--data-urlencode".into());
            args.push(format!("{k}={v}"));
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(&refs)
    }

    /// Runs curl with extra arguments; the URL may be http:// or https://.
    pub fn run(&self, args: &[&str]) -> Response {
        let out = Command::new("curl")
            .args(["-sS", "-k", "-i", "--max-time", "30"])
            .arg("--resolve")
            .arg(format!("{}:{}:127.0.0.1", self.host, self.https_port))
            .arg("--resolve")
            .arg(format!("{}:{}:127.0.0.1", self.host, self.http_port))
            .arg("-b")
            .arg(&self.jar)
            .arg("-c")
            .arg(&self.jar)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("curl not runnable ({e}): apt-get install -y curl"));
        assert!(
            out.status.success(),
            "curl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        parse(&String::from_utf8_lossy(&out.stdout))
    }
}

fn parse(raw: &str) -> Response {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// The TOTP code an authenticator shows `offset_secs` from now, from `oathtool`.
pub fn oathtool(secret_base32: &str, offset_secs: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let at = format!("@{}", now + offset_secs);
    let out = Command::new("oathtool")
        .args(["--totp", "-b", "-N", &at, secret_base32])
        .output()
        .unwrap_or_else(|e| panic!("oathtool not runnable ({e}): apt-get install -y oathtool"));
    assert!(
        out.status.success(),
        "oathtool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The text between `start` and the next `end` in `text`.
pub fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let rest = text.get(from..)?;
    rest.find(end).and_then(|to| rest.get(..to))
}
