//! Real shippers sending to rampart, each run as a plain process with its own config, pid
//! and state files in a temp dir (no system service): from Debian's packages, rsyslog
//! forwarding over TCP with TLS (RFC 5425 octet counting) to the syslog listener and
//! syslog-ng posting NDJSON; from the npm registry (`tests/shippers`, installed by
//! `scripts/test`), winston-loki pushing snappy-compressed protobuf to the Loki endpoint.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// Polls `rampart logs search` until `want` lines match, with a deadline.
fn wait_for_lines(r: &Rampart, args: &[&str], want: usize, peer_log: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = cli_ok(r, args);
        if out.lines().count() >= want {
            return out;
        }
        if Instant::now() > deadline {
            panic!(
                "expected {want} lines from {args:?}, got:\n{out}\n--- peer log ---\n{}",
                std::fs::read_to_string(peer_log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

struct Stopper(Child);

impl Drop for Stopper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn require(program: &str, package: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{program} is missing: apt-get install -y --no-install-recommends {package}"
    );
}

#[test]
fn rsyslog_forwards_over_tls_and_lines_arrive_scrubbed() {
    require("rsyslogd", "rsyslog rsyslog-gnutls");
    require("logger", "bsdutils");
    let syslog_port = rampart_testkit::free_port();
    let r = Rampart::start(
        bin(),
        &format!("[logs]\nsyslog_listen = \"127.0.0.1:{syslog_port}\"\n"),
    );
    let token = token_for(&r, "rsyslog");
    let work = tempfile::tempdir().unwrap();
    let sock = work.path().join("log.sock");
    let conf = work.path().join("rsyslog.conf");
    std::fs::create_dir_all(work.path().join("state")).unwrap();
    let ca = r.data_dir().join("tls/self-signed.pem");
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{state}" defaultNetstreamDriver="gtls" defaultNetstreamDriverCAFile="{ca}")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{sock}" CreatePath="on")
template(name="rampart" type="string" string="<%PRI%>1 %TIMESTAMP:::date-rfc3339% %HOSTNAME% %APP-NAME% %PROCID% %MSGID% [rampart@32473 token=\"{token}\"] %msg:2:$%\n")
action(type="omfwd" target="127.0.0.1" port="{syslog_port}" protocol="tcp" TCP_Framing="octet-counted"
       StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/name" StreamDriverPermittedPeers="localhost"
       template="rampart" action.resumeRetryCount="-1" action.resumeInterval="1")
"#,
            state = work.path().join("state").display(),
            ca = ca.display(),
            sock = sock.display(),
        ),
    )
    .unwrap();
    let log = work.path().join("rsyslog.log");
    let child = Command::new("rsyslogd")
        .arg("-n")
        .arg("-f")
        .arg(&conf)
        .arg("-i")
        .arg(work.path().join("rsyslog.pid"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start rsyslogd");
    let _rsyslog = Stopper(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sock.exists() {
        assert!(
            Instant::now() < deadline,
            "rsyslogd did not create its socket: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for (priority, text) in [
        (
            "user.err",
            "checkout failed for erin@example.com card 4111 1111 1111 1111",
        ),
        ("user.info", "cache warmed in 12 ms"),
        ("user.warning", "slow query by user frank@example.org"),
    ] {
        let status = Command::new("logger")
            .arg("-u")
            .arg(&sock)
            .args(["-t", "shop", "-p", priority, text])
            .status()
            .unwrap();
        assert!(status.success());
    }
    let all = wait_for_lines(
        &r,
        &[
            "logs", "search", "--since", "1h", "--source", "rsyslog", "--json",
        ],
        3,
        &log,
    );
    for leaked in ["erin@example.com", "4111 1111", "frank@example.org", &token] {
        assert!(!all.contains(leaked), "{leaked} leaked: {all}");
    }
    assert!(all.contains("\"app\":\"shop\""), "{all}");
    let errors = cli_ok(
        &r,
        &[
            "logs", "search", "checkout", "--level", "error", "--source", "rsyslog",
        ],
    );
    assert_eq!(errors.lines().count(), 1, "{errors}");
    assert!(
        errors.contains("checkout failed for [EMAIL] card [CARD]"),
        "{errors}"
    );
}

/// syslog-ng unpacked from Debian's packages by scripts/test (it conflicts with rsyslog as
/// an installed package).
fn syslog_ng_root() -> std::path::PathBuf {
    let root = std::env::var_os("RAMPART_SYSLOG_NG_ROOT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/peers/syslog-ng")
        });
    assert!(
        root.join("usr/sbin/syslog-ng").is_file(),
        "syslog-ng is missing at {}: run scripts/test once, or: apt-get install -y libivykis0 libpcre3 libnet1 libcurl4 libjson-c5 && mkdir -p {0} && cd {0} && apt-get download syslog-ng-core syslog-ng-mod-http && for d in *.deb; do dpkg-deb -x $d .; done",
        root.display()
    );
    root
}

#[test]
fn syslog_ng_posts_ndjson_over_https_and_lines_arrive_scrubbed() {
    require("logger", "bsdutils");
    let root = syslog_ng_root();
    let r = start();
    let token = token_for(&r, "syslog-ng");
    let work = tempfile::tempdir().unwrap();
    let sock = work.path().join("in.sock");
    let conf = work.path().join("syslog-ng.conf");
    let ca = r.data_dir().join("tls/self-signed.pem");
    std::fs::write(
        &conf,
        format!(
            r#"@version: 3.38
options {{ stats_freq(0); }};
source s_in {{ unix-dgram("{sock}"); }};
destination d_rampart {{
  http(
    url("https://localhost:{port}/ingest/ndjson")
    method("POST")
    headers("Authorization: Bearer {token}", "Content-Type: application/x-ndjson")
    body("$(format-json --scope none ts=$ISODATE level=$LEVEL msg=$MESSAGE app=$PROGRAM)")
    batch-lines(100)
    batch-timeout(200)
    tls(ca-file("{ca}") peer-verify(yes))
  );
}};
log {{ source(s_in); destination(d_rampart); }};
"#,
            sock = sock.display(),
            port = r.https_port,
            ca = ca.display(),
        ),
    )
    .unwrap();
    let log = work.path().join("syslog-ng.log");
    let child = Command::new(root.join("usr/sbin/syslog-ng"))
        .env("LD_LIBRARY_PATH", root.join("usr/lib/syslog-ng"))
        .arg("-F")
        .arg("-f")
        .arg(&conf)
        .arg("-p")
        .arg(work.path().join("syslog-ng.pid"))
        .arg("-R")
        .arg(work.path().join("syslog-ng.persist"))
        .arg("-c")
        .arg(work.path().join("syslog-ng.ctl"))
        .arg(format!(
            "--module-path={}",
            root.join("usr/lib/syslog-ng/3.38").display()
        ))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start syslog-ng");
    let _syslog_ng = Stopper(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sock.exists() {
        assert!(
            Instant::now() < deadline,
            "syslog-ng did not create its socket: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for (priority, text) in [
        (
            "user.err",
            "refund failed for grace@example.com iban FR7630006000011234567890189",
        ),
        ("user.info", "worker started"),
    ] {
        let status = Command::new("logger")
            .arg("-d")
            .arg("-u")
            .arg(&sock)
            .args(["-t", "billing", "-p", priority, text])
            .status()
            .unwrap();
        assert!(status.success());
    }
    let all = wait_for_lines(
        &r,
        &[
            "logs",
            "search",
            "--since",
            "1h",
            "--source",
            "syslog-ng",
            "--json",
        ],
        2,
        &log,
    );
    for leaked in ["grace@example.com", "FR7630006000011234567890189"] {
        assert!(!all.contains(leaked), "{leaked} leaked: {all}");
    }
    let errors = cli_ok(
        &r,
        &[
            "logs",
            "search",
            "refund",
            "--level",
            "error",
            "--source",
            "syslog-ng",
        ],
    );
    assert_eq!(errors.lines().count(), 1, "{errors}");
    assert!(errors.contains("billing"), "{errors}");
}

#[test]
fn winston_loki_pushes_snappy_protobuf_and_lines_arrive_scrubbed_with_their_labels() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = root.join("tests/shippers");
    assert!(
        dir.join("node_modules/winston-loki").exists(),
        "winston-loki missing: run scripts/test (or `cd tests/shippers && npm ci`)"
    );
    let r = start();
    let token = token_for(&r, "winston");
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("winston.log");
    let child = Command::new("node")
        .arg(dir.join("winston_loki.mjs"))
        .arg(format!("https://localhost:{}", r.https_port))
        .arg(r.data_dir().join("tls/self-signed.pem"))
        .arg(&token)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(work.path().join("winston.err")).unwrap())
        .spawn()
        .expect("node runs (apt-get install -y nodejs)");
    let mut node = Stopper(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = node.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "winston-loki did not finish in 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let said = format!(
        "{}{}",
        std::fs::read_to_string(&log).unwrap_or_default(),
        std::fs::read_to_string(work.path().join("winston.err")).unwrap_or_default()
    );
    // The script checks that winston-loki sends protobuf (it falls back to JSON when
    // snappy cannot load) and that every push was acknowledged.
    assert!(status.success() && said.contains("passed"), "{said}");
    let all = wait_for_lines(
        &r,
        &[
            "logs", "search", "--since", "1h", "--source", "winston", "--json",
        ],
        3,
        &log,
    );
    for leaked in ["dora@example.com", "4111 1111 1111 1111"] {
        assert!(!all.contains(leaked), "{leaked} leaked: {all}");
    }
    let errors = cli_ok(
        &r,
        &[
            "logs", "search", "declined", "--level", "error", "--source", "winston", "--json",
        ],
    );
    assert_eq!(errors.lines().count(), 1, "{errors}");
    let line: serde_json::Value = serde_json::from_str(errors.trim()).unwrap();
    // The stream's labels and the line's own label are fields; the level label gave the level.
    assert_eq!(line["fields"]["app"], "checkout", "{line}");
    assert_eq!(line["fields"]["order"], "A-17", "{line}");
    assert_eq!(line["level"], "error", "{line}");
    let message = line["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("[CARD]") && message.contains("[EMAIL]"),
        "{message}"
    );
}
