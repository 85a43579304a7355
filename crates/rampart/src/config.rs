//! `rampart.toml`: one strict file, validated whole before any port is bound.
//!
//! The commented template [`TEMPLATE`] is what `rampart init` writes, the source of the
//! generated reference `docs/config.md` ([`reference`]), and must parse to exactly
//! [`Config::default`] (a test holds all three together).

use std::path::{Path, PathBuf};

use rampart_identity::policy::PolicyConfig;
use rampart_store::StoreConfig;
use rampart_web::WebConfig;
use rampart_web::tls::{TlsConfig, TlsMode};
use serde::Deserialize;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Listeners and the public name.
    pub web: WebConfig,
    /// Certificates.
    pub tls: TlsConfig,
    /// Database.
    pub store: StoreConfig,
    /// Authentication policy.
    pub policy: PolicyConfig,
    /// The network inventory and what the segmentation checks must know about it.
    pub network: rampart_network::NetworkConfig,
    /// Application logs: retention, limits, the syslog listener.
    pub logs: rampart_logs::LogsConfig,
    /// Database backups.
    pub backup: rampart_backup::BackupConfig,
    /// The SSH bastion.
    pub ssh: rampart_ssh::SshConfig,
    /// The PostgreSQL gateway.
    pub postgres: rampart_postgres::PostgresConfig,
    /// Internal tools behind the front door (`[[apps]]`).
    pub apps: Vec<rampart_proxy::AppConfig>,
}

/// A configuration that cannot be used: one sentence naming the key, the value and what
/// is allowed. The binary exits with 64 (`EX_USAGE`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The file `rampart init` writes: every key with its default and a comment.
pub const TEMPLATE: &str = r#"# rampart configuration. Every key is optional: the values below are the defaults.
# Reference: docs/config.md. Check a change with `rampart check-config`.

[web]
# Host name people use to reach rampart. Redirects and links point here, never at a client's Host header.
public_host = "localhost"
# HTTPS port people use, when it differs from the listener's port (behind a port mapping).
# public_https_port = 443
# Address of the HTTPS listener (the front door).
https_listen = "0.0.0.0:8443"
# Address of the HTTP listener. It only answers 308 redirects to HTTPS (ENC-2).
http_listen = "0.0.0.0:8080"
# Address of the Prometheus /metrics listener. Keep it on loopback or a private network.
metrics_listen = "127.0.0.1:9090"
# Largest request body accepted, in KiB; larger bodies get 413.
max_body_kib = 64

[tls]
# "self-signed" (made at init, in tls/ of the data directory), "files" (cert_file and key_file) or "acme" (see [tls.acme]).
mode = "self-signed"
# PEM certificate chain and private key, for mode = "files". Reloaded when they change.
# cert_file = "/etc/rampart/tls/fullchain.pem"
# key_file = "/etc/rampart/tls/privkey.pem"

[tls.acme]
# ACME directory of the CA, for mode = "acme". HTTP-01 challenges are answered on the HTTP listener, which must be reachable on port 80 under every name.
directory = "https://acme-v02.api.letsencrypt.org/directory"
# Contact email for the CA's expiry notices.
# contact = "security@example.com"
# PEM root of the ACME server's own HTTPS certificate, when it is not publicly trusted (a private CA).
# ca_file = "/etc/rampart/acme-root.pem"
# Names on the certificate; default: web.public_host.
# domains = ["gateway.example.com"]
# Renew this many days before the certificate expires (1 to 60).
renew_before_days = 30

[store]
# Several rampart nodes share one PostgreSQL database. Absent: SQLite in the data directory.
# url = "postgres://rampart@db.internal:5432/rampart"

[policy]
# "required": people and third parties must use a second factor (ACC-2). "optional" fails ACC-2 in the report.
mfa = "required"
# Minutes without a request after which a session ends (5 to 240).
session_idle_minutes = 30
# Hours after login after which a session ends whatever happens (1 to 24).
session_absolute_hours = 12
# Failed password or code checks before an account or address is locked (3 to 20).
lockout_failures = 5
# Seconds of the first lock; each further failure doubles it, up to an hour (10 to 3600).
lockout_seconds = 60
# Longest grant a third-party account may hold, in hours (1 to 168). Third parties never hold a standing grant: one without expiry is refused (EXT-1).
third_party_grant_hours = 8
# Longest grant an access request may ask for, in hours (1 to 168).
request_max_hours = 8
# Approvals by people other than the requester that grant a request (1 to 3); approvers hold the access.approve permission.
request_approvals = 1
# Hours a request waits for approvals before it lapses (1 to 168).
request_pending_hours = 24
# Days between access review campaigns over every grant that reaches the gateway (1 to 365, ACC-7).
review_interval_days = 30
# Days a campaign stays open for keep/revoke decisions (1 to 90).
review_days = 7
# A grant still undecided at the deadline: "revoke" removes it, "flag" keeps it and marks it in the campaign and the report.
review_missed = "revoke"

[network]
# Directory of inventory files to check (AWS CLI describe-* JSON, `terraform show -json` plans, rampart TOML). Re-checked when a file changes. Absent: the network controls are not checked.
# inventory = "/var/lib/rampart/inventory"
# The tag whose value names a VPC's environment.
environment_tag = "Environment"
# Peering ids allowed between our own VPCs (NET-1); provider peerings are declared with their provider.
# peerings = ["pcx-0aa11"]
# The gateway's addresses and security groups: the only sources allowed on administrative ports (ACC-5). Also: [network.gateway] addresses = ["10.10.0.10"].
# gateway = { security_groups = ["sg-0gateway"] }
# Resources allowed to be reachable from the internet and their ports (NET-3, ACC-4).
# internet = { front_door = ["sg-0alb"], ports = [80, 443] }
# Environments by VPC id or CIDR, winning over tags: [network.environments] production = ["vpc-0prod", "10.10.0.0/16"]. External parties (EXT-2): [[network.providers]] name, cidrs, peerings, ports. Application flows on admin ports: [[network.service_flows]] from, to, ports.

[logs]
# Days a day of application logs is kept before it is purged. The security page's bound (LOG-5): 15 to 30; anything else stops rampart at startup.
retention_days = 30
# Folder of the day files (one SQLite file per UTC day). Absent: logs/ in the data directory.
# dir = "/var/lib/rampart/logs"
# Longest message kept, in bytes (1024 to 1048576); longer ones are cut and end with a truncation marker.
max_line_bytes = 65536
# Lines per second one source may push on average (100 to 10000000); above it, pushes get 429.
rate_lines_per_second = 200000
# Lines one source may push at once above its rate (1000 to 100000000).
rate_burst_lines = 1000000
# Minutes a line's own timestamp may differ from the receive time before it is replaced by the receive time and flagged (1 to 1440).
clock_skew_minutes = 60
# Largest push body on /ingest/ndjson and /loki/api/v1/push, in KiB (64 to 65536).
max_body_kib = 16384
# Address of the syslog-over-TLS listener (RFC 5425, the front door's certificate). Each message carries its source's token as structured data: [rampart@32473 token="..."]. Absent: no listener.
# syslog_listen = "0.0.0.0:6514"

[logs.alerts]
# Seconds between evaluations of the alert rules (1 to 3600).
every_seconds = 30
# URL receiving a JSON POST when an alert fires and when it resolves (and when backups fail, when an access request is filed, approved, denied or expires, when an access review campaign opens or closes, and when an anomaly rule over the audit log fires), signed X-Rampart-Signature: sha256=<hex HMAC-SHA-256 of the body>.
# webhook_url = "https://hooks.example.com/rampart"
# File holding the HMAC key of the signature (required with webhook_url).
# webhook_secret_file = "/etc/rampart/webhook.key"
# Rules: [[logs.alerts.rules]] name, kind = "error_rate" (threshold lines of level error or worse within window_minutes), "silence" (source quiet for minutes) or "pattern" (lines holding every word of pattern within window_minutes); source limits a rule to one source (required for silence). Alerts show on /logs and in the audit log.
[backup]
# Time between base backups, like "6h" or "90m"; longer than 6h is refused (BAK-1).
interval = "6h"
# Back up rampart's own SQLite database as source "rampart".
own_database = true
# age X25519 public keys that can decrypt backups; `rampart backup keygen` makes a key pair. rampart holds no private key. No recipient: no backups.
# recipients = ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"]
# zstd compression level (1 to 19).
zstd_level = 3
# Hours between scheduled restore drills (1 to 168). With a drill identity (`rampart backup drill-identity set`), the newest backup of each PostgreSQL source is restored into a throwaway cluster and its row counts compared, and every other source is decrypted; without one, objects are read back and hashed only, and the report says restores are unverified.
drill_hours = 24

[backup.retention]
# Every backup is kept this many days (2 to 5, BAK-1).
base_days = 5
# The first (or newest) backup of each calendar day is kept this many days (7 to 365, BAK-2).
daily_days = 35
# The first (or newest) backup of each ISO week is kept this many weeks (4 to 52, BAK-3).
weekly_weeks = 12
# The first (or newest) backup of each month is kept this many months (13 to 36, BAK-4).
monthly_months = 13
# "first" or "newest": which backup stands for its day, week and month.
rule = "first"
# IANA time zone in which days, weeks and months are counted.
time_zone = "UTC"

[backup.storage]
# "dir" (a directory) or "s3" (S3-compatible; credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY).
kind = "dir"
# For "dir": the directory, relative to the data directory.
path = "backups"
# For "s3": the bucket.
# bucket = "rampart-backups"
# For "s3": an S3-compatible endpoint; absent: AWS.
# endpoint = "https://s3.example.com"
# For "s3": the region.
region = "us-east-1"
# Key prefix inside the directory or bucket.
prefix = "rampart"
# For "s3": allow a plain-HTTP endpoint (a storage server on loopback only).
dangerous_allow_http = false
# Sources, besides rampart's own database: [[backup.sources]] with name, kind = "postgres" (url; pg_dump and row counts in one snapshot), "sqlite" (path) or "command" (command = ["program", "arg"]; its stdout is the backup).

[ssh]
# Address of the SSH bastion (`ssh -p 2222 'alice:web-1@gateway'`). Absent: no bastion.
# listen = "0.0.0.0:2222"
# The port people use, when it differs from the listener's (shown in target lists and `rampart ssh config`).
# public_port = 22
# Minutes a successful TOTP is remembered for the same key and address, so scp loops and Ansible work (0 to 60; 0 disables).
mfa_remember_minutes = 10
# Minutes without traffic after which a session ends (1 to 240).
idle_minutes = 15
# Hours a session may last at most; a grant that expires earlier ends it earlier (1 to 24).
max_session_hours = 12
# Minutes the per-session certificate to the target is valid for logging in (1 to 60).
certificate_minutes = 5
# Seconds to connect and log in to a target (1 to 120).
connect_timeout_seconds = 10
# Seconds a client has from connecting to finishing authentication (10 to 600).
login_grace_seconds = 60
# SSH connections served at once; more are closed at once (1 to 100000).
max_connections = 1000
# Environment variables a client may pass to targets; "LC_*" matches a prefix.
env_allow = ["LANG", "LC_*"]
# Public key lines of CAs whose host certificates vouch for targets (naming the target's address as principal); a target without one has its host key pinned on first use.
target_host_cas = []
[postgres]
# Address of the PostgreSQL gateway (psql and drivers connect as person#target with a database token; TLS required). Absent: no gateway.
# listen = "0.0.0.0:6432"
# Largest protocol message accepted from a client or a server, in KiB (64 to 1048576).
max_message_kib = 1024
# Hours a database token lives when none is asked for (1 to 12).
token_hours = 1
# Seconds a statement's acknowledgement waits for its audit record before the session ends with an error (1 to 120).
audit_wait_seconds = 10
# Seconds allowed for a client's TLS handshake and login, and for reaching the database server (1 to 120).
handshake_seconds = 15
# How clients prove their database token: "scram-sha-256" (the token never crosses the wire) or "password" (the token inside TLS, for clients without SCRAM).
client_auth = "scram-sha-256"
# TLS to the database servers: "off", "prefer" (TLS when offered), "require" (TLS, certificate not checked) or "verify" (TLS, certificate checked against upstream_ca_file and the target's host).
upstream_tls = "prefer"
# PEM file of the CA that signs the database servers' certificates (required with upstream_tls = "verify").
# upstream_ca_file = "/etc/rampart/db-ca.pem"

# [[apps]]
# Internal tools behind the front door (ACC-1, ACC-4, ENC-2): one [[apps]] table each. A request reaches the tool only with a rampart session whose MFA is done (or an app token of a service account: `rampart apps token create APP --account SVC`, sent as Authorization: Bearer) and a grant on the app's http target (login "*"). The tool receives X-Rampart-User, X-Rampart-Email and X-Rampart-Assertion (an Ed25519 JWT valid 60 s; key at /.well-known/jwks.json), never rampart's cookie.
# Unique name; grants name it as an http target (registered at startup).
# name = "grafana"
# Its own host name on the front door (DNS and the certificate must cover it), matched by SNI/Host. Set host or prefix, not both.
# host = "grafana.example.com"
# Or a path prefix on the main host; the prefix is taken off before the request is forwarded.
# prefix = "/grafana"
# URL of the tool: http:// (loopback or a private network) or https://.
# upstream = "http://127.0.0.1:3000"
# PEM CA that signs an https upstream's certificate (default: the system's roots).
# ca_file = "/etc/rampart/grafana-ca.pem"
# PEM client certificate chain presented to an https upstream.
# client_cert_file = "/etc/rampart/grafana-client.pem"
# PEM private key of client_cert_file.
# client_key_file = "/etc/rampart/grafana-client.key"
# Environment of the tool; grants may be limited to one. Default production.
# environment = "production"
# Seconds allowed to connect to the upstream (1 to 60); it failing gives 502. Default 5.
# connect_timeout_seconds = 5
# Seconds the upstream may take to send its response headers (1 to 3600); longer gives 504. Default 60.
# response_timeout_seconds = 60
# Largest request body forwarded, in MiB (1 to 65536); larger gives 413. Bodies stream, never held whole. Default 1024.
# max_request_body_mib = 1024
# Largest response body relayed, in MiB (1 to 1048576); a longer one is cut off. Default 16384.
# max_response_body_mib = 16384
"#;

impl Config {
    /// Reads and validates a file. Paths inside are relative to the file's folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(format!(
                "cannot read the configuration {}: {e}",
                path.display()
            ))
        })?;
        let mut config = Self::parse(&text, path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.tls.cert_file = config.tls.cert_file.map(|p| base.join(p));
        config.tls.key_file = config.tls.key_file.map(|p| base.join(p));
        config.tls.acme.ca_file = config.tls.acme.ca_file.map(|p| base.join(p));
        config.network.inventory = config.network.inventory.map(|p| base.join(p));
        config.logs.dir = config.logs.dir.map(|p| base.join(p));
        config.postgres.upstream_ca_file = config.postgres.upstream_ca_file.map(|p| base.join(p));
        for app in &mut config.apps {
            app.ca_file = app.ca_file.take().map(|p| base.join(p));
            app.client_cert_file = app.client_cert_file.take().map(|p| base.join(p));
            app.client_key_file = app.client_key_file.take().map(|p| base.join(p));
        }
        config.logs.alerts.webhook_secret_file =
            config.logs.alerts.webhook_secret_file.map(|p| base.join(p));
        for source in &mut config.backup.sources {
            source.path = source.path.take().map(|p| base.join(p));
        }
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text; errors name the line, the key and the problem.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let place = e
                .span()
                .map(|span| {
                    let line_no = text
                        .get(..span.start)
                        .map(|t| t.matches('\n').count() + 1)
                        .unwrap_or(1);
                    let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
                    format!(" line {line_no} (`{line}`)")
                })
                .unwrap_or_default();
            ConfigError(format!("{}{place}: {}", path.display(), e.message().trim()))
        })
    }

    /// Checks what types cannot: files that must exist, names that must be host names.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let host = &self.web.public_host;
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
        if !host_ok {
            return Err(ConfigError(format!(
                "web.public_host = {host:?} is not a host name: use a bare name such as \"gateway.example.com\", without scheme, port or path"
            )));
        }
        let mut listeners = vec![
            ("web.https_listen", self.web.https_listen),
            ("web.http_listen", self.web.http_listen),
            ("web.metrics_listen", self.web.metrics_listen),
        ];
        if let Some(syslog) = self.logs.syslog_listen {
            listeners.push(("logs.syslog_listen", syslog));
        }
        if let Some(ssh) = self.ssh.listen {
            listeners.push(("ssh.listen", ssh));
        }
        if let Some(bad) = self
            .ssh
            .target_host_cas
            .iter()
            .find(|line| rampart_ssh::keys::parse_public(line).is_err())
        {
            return Err(ConfigError(format!(
                "ssh.target_host_cas holds {:?}, which is not an OpenSSH public key line",
                bad.chars().take(40).collect::<String>()
            )));
        }
        if let Some(bad) = self.ssh.env_allow.iter().find(|n| {
            n.is_empty()
                || n.len() > 64
                || !n
                    .trim_end_matches('*')
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
        }) {
            return Err(ConfigError(format!(
                "ssh.env_allow holds {bad:?}: use variable names of A-Z, 0-9 and '_', optionally ending in '*'"
            )));
        }
        if let Some(pg) = self.postgres.listen {
            listeners.push(("postgres.listen", pg));
        }
        self.postgres.validate().map_err(ConfigError)?;
        rampart_proxy::config::validate(&self.apps, &self.web.public_host)
            .map_err(|e| ConfigError(e.0))?;
        for (i, (a, x)) in listeners.iter().enumerate() {
            for (b, y) in listeners.iter().skip(i + 1) {
                if x == y {
                    return Err(ConfigError(format!(
                        "{a} and {b} are both {x}: each listener needs its own address"
                    )));
                }
            }
        }
        if !(1..=10_240).contains(&self.web.max_body_kib) {
            return Err(ConfigError(format!(
                "web.max_body_kib = {} is not allowed: use a value from 1 to 10240",
                self.web.max_body_kib
            )));
        }
        if self.tls.mode == TlsMode::Files {
            for (key, path) in [
                ("tls.cert_file", &self.tls.cert_file),
                ("tls.key_file", &self.tls.key_file),
            ] {
                match path {
                    None => return Err(ConfigError(format!("tls.mode = \"files\" needs {key}"))),
                    Some(p) if !p.is_file() => {
                        return Err(ConfigError(format!(
                            "{key} = {:?}: no such file",
                            p.display().to_string()
                        )));
                    }
                    Some(_) => {}
                }
            }
        }
        if self.tls.mode == TlsMode::Acme {
            let acme = &self.tls.acme;
            if !acme.directory.starts_with("https://") {
                return Err(ConfigError(format!(
                    "tls.acme.directory = {:?} must be an https:// URL",
                    acme.directory
                )));
            }
            if let Some(p) = &acme.ca_file
                && !p.is_file()
            {
                return Err(ConfigError(format!(
                    "tls.acme.ca_file = {:?}: no such file",
                    p.display().to_string()
                )));
            }
        }
        if let Some(dir) = &self.network.inventory
            && !dir.is_dir()
        {
            return Err(ConfigError(format!(
                "network.inventory = {:?}: no such directory",
                dir.display().to_string()
            )));
        }
        let alerts = &self.logs.alerts;
        if let Some(url) = &alerts.webhook_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(ConfigError(format!(
                    "logs.alerts.webhook_url = {url:?} must be an http:// or https:// URL"
                )));
            }
            match &alerts.webhook_secret_file {
                None => {
                    return Err(ConfigError(
                        "logs.alerts.webhook_url needs logs.alerts.webhook_secret_file: notices are always signed".into(),
                    ));
                }
                Some(p) if !p.is_file() => {
                    return Err(ConfigError(format!(
                        "logs.alerts.webhook_secret_file = {:?}: no such file",
                        p.display().to_string()
                    )));
                }
                Some(_) => {}
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for rule in &alerts.rules {
            if !names.insert(rule.name.as_str()) {
                return Err(ConfigError(format!(
                    "logs.alerts.rules: the name {:?} is used twice",
                    rule.name
                )));
            }
        }
        self.backup.validate().map_err(|e| ConfigError(e.0))?;
        if let Some(url) = &self.store.url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(ConfigError(
                "store.url must be a postgres:// URL (leave it out to use SQLite in the data directory)".into(),
            ));
        }
        Ok(())
    }

    /// The folder of the log day files: the configured one, or `logs/` in `data_dir`.
    pub fn logs_dir(&self, data_dir: &Path) -> PathBuf {
        self.logs
            .dir
            .clone()
            .unwrap_or_else(|| data_dir.join("logs"))
    }

    /// The database URL: the configured one, or SQLite in `data_dir`.
    pub fn store_url(&self, data_dir: &Path) -> String {
        self.store.url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                data_dir.join("rampart.db").display()
            )
        })
    }
}

/// The configuration reference in Markdown, generated from [`TEMPLATE`].
pub fn reference() -> String {
    let mut out = String::from(
        "# Configuration reference\n\n\
         Generated from the template that `rampart init` writes (`crates/rampart/src/config.rs`); \
         regenerate with `rampart config-reference > docs/config.md`. A test keeps this file in sync.\n\n\
         rampart reads one TOML file, `rampart.toml` in the data directory (or `--config PATH`). \
         Unknown keys are errors. The whole file is checked before any port is bound; a wrong value \
         stops rampart with exit code 64 and one sentence naming the key, the value and what is allowed.\n",
    );
    let mut comment: Vec<String> = Vec::new();
    let mut section = String::new();
    for line in TEMPLATE.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("# [[").and_then(|l| l.strip_suffix("]]")) {
            flush_note(&mut out, &mut comment);
            section = name.to_owned();
            out.push_str(&format!(
                "\n## `[[{section}]]` (one table per entry)\n\n| key | default | meaning |\n|---|---|---|\n"
            ));
            comment.clear();
        } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            flush_note(&mut out, &mut comment);
            section = name.to_owned();
            out.push_str(&format!(
                "\n## `[{section}]`\n\n| key | default | meaning |\n|---|---|---|\n"
            ));
            comment.clear();
        } else if let Some((key, value)) = key_value(line) {
            let default = if line.starts_with('#') {
                "(unset)".to_owned()
            } else {
                format!("`{value}`")
            };
            let example = if line.starts_with('#') {
                format!(" Example: `{value}`.")
            } else {
                String::new()
            };
            out.push_str(&format!(
                "| `{section}.{key}` | {default} | {}{example} |\n",
                comment.join(" ")
            ));
            comment.clear();
        } else if let Some(text) = line.strip_prefix('#')
            && !section.is_empty()
        {
            comment.push(text.trim().replace('|', "\\|"));
        }
    }
    flush_note(&mut out, &mut comment);
    out
}

/// Comments that no key follows close their section as a note.
fn flush_note(out: &mut String, comment: &mut Vec<String>) {
    if !comment.is_empty() {
        out.push_str(&format!("\n{}\n", comment.join(" ")));
        comment.clear();
    }
}

/// `key = value` or `# key = value` (a commented optional key).
fn key_value(line: &str) -> Option<(&str, &str)> {
    let bare = line.trim_start_matches('#').trim();
    let (key, value) = bare.split_once(" = ")?;
    let key_ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    key_ok.then_some((key, value.trim()))
}

/// Where the data directory's files live.
#[derive(Debug, Clone)]
pub struct DataDir(pub PathBuf);

impl DataDir {
    /// `rampart.toml`.
    pub fn config(&self) -> PathBuf {
        self.0.join("rampart.toml")
    }
    /// The master key for secrets at rest.
    pub fn master_key(&self) -> PathBuf {
        self.0.join("keys").join("master.key")
    }
    /// The audit checkpoint signing key (PKCS#8).
    pub fn audit_key(&self) -> PathBuf {
        self.0.join("keys").join("audit-signing.pk8")
    }
    /// The SSH host key of the bastion.
    pub fn ssh_host_key(&self) -> PathBuf {
        self.0.join("keys").join("ssh_host_ed25519_key")
    }
    /// The SSH user CA key that signs short-lived certificates for targets.
    pub fn ssh_user_ca(&self) -> PathBuf {
        self.0.join("keys").join("ssh_user_ca")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_template_is_the_default_configuration() {
        let parsed = Config::parse(TEMPLATE, Path::new("rampart.toml")).unwrap();
        assert_eq!(parsed, Config::default());
        parsed.validate().unwrap();
    }

    #[test]
    fn docs_config_md_is_generated_from_the_template() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/config.md");
        let on_disk = std::fs::read_to_string(&path).expect("docs/config.md exists");
        assert_eq!(
            on_disk,
            reference(),
            "docs/config.md is stale: run `rampart config-reference > docs/config.md`"
        );
        for key in [
            "web.public_host",
            "tls.cert_file",
            "store.url",
            "policy.session_idle_minutes",
        ] {
            assert!(on_disk.contains(key), "{key}");
        }
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_line() {
        let err = Config::parse("[web]\npublic_hots = \"x\"\n", Path::new("r.toml"))
            .unwrap_err()
            .0;
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("public_hots"), "{err}");
    }

    #[test]
    fn out_of_range_values_name_the_range() {
        let err = Config::parse(
            "[policy]\nsession_idle_minutes = 999\n",
            Path::new("r.toml"),
        )
        .unwrap_err()
        .0;
        assert!(err.contains("session_idle_minutes = 999"), "{err}");
        assert!(err.contains("from 5 to 240"), "{err}");
    }

    #[test]
    fn missing_certificate_files_are_named() {
        let mut c = Config::default();
        c.tls.mode = TlsMode::Files;
        c.tls.cert_file = Some("/nonexistent/cert.pem".into());
        c.tls.key_file = Some("/nonexistent/key.pem".into());
        let err = c.validate().unwrap_err().0;
        assert!(
            err.contains("tls.cert_file") && err.contains("/nonexistent/cert.pem"),
            "{err}"
        );
    }

    #[test]
    fn a_url_as_public_host_is_refused() {
        let mut c = Config::default();
        c.web.public_host = "https://gw.example.com/".into();
        assert!(c.validate().unwrap_err().0.contains("web.public_host"));
    }
}
