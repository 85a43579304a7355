//! `[[apps]]` in `rampart.toml`: each internal tool, how it is reached on the front door and
//! where its upstream is. Validated whole before any port is bound.

use std::path::PathBuf;
use std::time::Duration;

use rampart_access::{Target, TargetKind, TargetName};
use rampart_core::Environment;
use serde::Deserialize;

/// One `[[apps]]` entry as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// Unique name; also the name of the `http` target that grants name.
    pub name: String,
    /// Its own host name on the front door (matched by SNI/Host), e.g. `grafana.example.com`.
    pub host: Option<String>,
    /// Or a path prefix on the main host, e.g. `/grafana`.
    pub prefix: Option<String>,
    /// `http://` or `https://` URL of the tool, e.g. `http://127.0.0.1:3000`.
    pub upstream: String,
    /// PEM file of the CA that signs an https upstream's certificate (default: the system's roots).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain presented to an https upstream.
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
    /// The environment the tool lives in (grants may be limited to one); default production.
    pub environment: Option<Environment>,
    /// Seconds allowed to connect to the upstream (1 to 60).
    #[serde(default = "default_connect")]
    pub connect_timeout_seconds: u64,
    /// Seconds the upstream may take to send its response headers (1 to 3600).
    #[serde(default = "default_response")]
    pub response_timeout_seconds: u64,
    /// Largest request body forwarded, in MiB (1 to 65536); larger: 413.
    #[serde(default = "default_request_mib")]
    pub max_request_body_mib: u64,
    /// Largest response body relayed, in MiB (1 to 1048576); a longer one is cut off.
    #[serde(default = "default_response_mib")]
    pub max_response_body_mib: u64,
}

fn default_connect() -> u64 {
    5
}
fn default_response() -> u64 {
    60
}
fn default_request_mib() -> u64 {
    1024
}
fn default_response_mib() -> u64 {
    16384
}

/// Where an app lives on the front door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// Its own host name (lower case, no port).
    Host(String),
    /// A path prefix on the main host: starts with `/`, no trailing `/`.
    Prefix(String),
}

/// The upstream's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP (loopback or a private network).
    Http,
    /// HTTPS, verified against `ca_file` or the system's roots.
    Https,
}

/// A validated app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// Name (a valid target name).
    pub name: TargetName,
    /// Where it is reached.
    pub mount: Mount,
    /// Scheme of the upstream.
    pub scheme: Scheme,
    /// `host:port` of the upstream.
    pub authority: http::uri::Authority,
    /// Path the upstream is mounted at, without trailing `/` (empty for the root).
    pub base_path: String,
    /// The URL as configured (shown to admins only).
    pub upstream: String,
    /// Environment.
    pub environment: Environment,
    /// CA file for https upstreams.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key for https upstreams.
    pub client_identity: Option<(PathBuf, PathBuf)>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Response-header timeout.
    pub response_timeout: Duration,
    /// Request body limit in bytes.
    pub max_request_body: u64,
    /// Response body limit in bytes.
    pub max_response_body: u64,
}

impl App {
    /// The `http` target grants refer to.
    pub fn target(&self) -> Target {
        Target {
            name: self.name.clone(),
            kind: TargetKind::Http,
            address: self.upstream.clone(),
            environment: self.environment.clone(),
        }
    }

    /// The host name of the upstream (without port, brackets removed).
    pub fn upstream_host(&self) -> &str {
        self.authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
    }
}

/// A configuration of apps that cannot be used: one sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AppConfigError(pub String);

/// A host name as matched against SNI/Host: 1–253 characters of letters, digits, `.`, `-`.
pub fn valid_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && !host.starts_with(['.', '-'])
        && !host.contains("..")
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

fn clean_prefix(prefix: &str) -> bool {
    prefix.len() >= 2
        && prefix.len() <= 128
        && prefix.starts_with('/')
        && !prefix.ends_with('/')
        && prefix.split('/').skip(1).all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
        })
}

/// Paths of the main host that no app may take.
const RESERVED: &[&str] = &[
    "/login",
    "/logout",
    "/static",
    "/apps",
    "/.well-known",
    "/enroll",
    "/mfa",
    "/healthz",
];

/// Checks every app and returns them validated. `main_host` is `web.public_host`.
pub fn validate(apps: &[AppConfig], main_host: &str) -> Result<Vec<App>, AppConfigError> {
    let err = |s: String| Err(AppConfigError(s));
    let mut out: Vec<App> = Vec::with_capacity(apps.len());
    for a in apps {
        let name = TargetName::parse(&a.name).map_err(|e| {
            AppConfigError(format!("apps: the name {:?} is not allowed: {e}", a.name))
        })?;
        let n = &a.name;
        let mount = match (&a.host, &a.prefix) {
            (Some(h), None) => {
                let h = h.to_ascii_lowercase();
                if !valid_host_name(&h) {
                    return err(format!(
                        "apps {n}: host = {h:?} is not a host name: use a bare name such as \"grafana.example.com\", without scheme, port or path"
                    ));
                }
                if h.eq_ignore_ascii_case(main_host) {
                    return err(format!(
                        "apps {n}: host = {h:?} is web.public_host; give the app its own host name or a prefix"
                    ));
                }
                Mount::Host(h)
            }
            (None, Some(p)) => {
                if !clean_prefix(p) {
                    return err(format!(
                        "apps {n}: prefix = {p:?} is not a clean absolute path: use something like \"/grafana\" (no trailing '/', no '.' or '..' segments)"
                    ));
                }
                if RESERVED
                    .iter()
                    .any(|r| p == r || p.starts_with(&format!("{r}/")))
                {
                    return err(format!(
                        "apps {n}: prefix = {p:?} is used by rampart itself"
                    ));
                }
                Mount::Prefix(p.clone())
            }
            _ => {
                return err(format!(
                    "apps {n}: set exactly one of host (its own host name) or prefix (a path on the main host)"
                ));
            }
        };
        let uri: http::Uri = a.upstream.parse().map_err(|_| {
            AppConfigError(format!(
                "apps {n}: upstream = {:?} is not a URL",
                a.upstream
            ))
        })?;
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            _ => {
                return err(format!(
                    "apps {n}: upstream = {:?} must start with http:// or https://",
                    a.upstream
                ));
            }
        };
        let Some(authority) = uri.authority().cloned() else {
            return err(format!("apps {n}: upstream = {:?} has no host", a.upstream));
        };
        if authority.as_str().contains('@') {
            return err(format!(
                "apps {n}: upstream must not carry user information"
            ));
        }
        if uri.query().is_some() {
            return err(format!("apps {n}: upstream must not carry a query"));
        }
        let base_path = uri.path().trim_end_matches('/').to_owned();
        if scheme == Scheme::Http
            && (a.ca_file.is_some() || a.client_cert_file.is_some() || a.client_key_file.is_some())
        {
            return err(format!(
                "apps {n}: ca_file and client certificates need an https:// upstream"
            ));
        }
        let client_identity = match (&a.client_cert_file, &a.client_key_file) {
            (Some(c), Some(k)) => Some((c.clone(), k.clone())),
            (None, None) => None,
            _ => {
                return err(format!(
                    "apps {n}: client_cert_file and client_key_file go together"
                ));
            }
        };
        for p in [&a.ca_file, &a.client_cert_file, &a.client_key_file]
            .into_iter()
            .flatten()
        {
            if !p.is_file() {
                return err(format!(
                    "apps {n}: {:?}: no such file",
                    p.display().to_string()
                ));
            }
        }
        let bounded = |key: &str, v: u64, lo: u64, hi: u64| {
            if (lo..=hi).contains(&v) {
                Ok(v)
            } else {
                Err(AppConfigError(format!(
                    "apps {n}: {key} = {v} is not allowed: use a value from {lo} to {hi}"
                )))
            }
        };
        let connect = bounded("connect_timeout_seconds", a.connect_timeout_seconds, 1, 60)?;
        let response = bounded(
            "response_timeout_seconds",
            a.response_timeout_seconds,
            1,
            3600,
        )?;
        let req = bounded("max_request_body_mib", a.max_request_body_mib, 1, 65_536)?;
        let resp = bounded(
            "max_response_body_mib",
            a.max_response_body_mib,
            1,
            1_048_576,
        )?;
        for other in &out {
            if other.name == name {
                return err(format!("apps: the name {n:?} is used twice"));
            }
            if other.mount == mount {
                return err(format!(
                    "apps {n} and {}: both are mounted at the same {}",
                    other.name,
                    match &mount {
                        Mount::Host(h) => format!("host {h:?}"),
                        Mount::Prefix(p) => format!("prefix {p:?}"),
                    }
                ));
            }
            if let (Mount::Prefix(a), Mount::Prefix(b)) = (&other.mount, &mount)
                && (a.starts_with(&format!("{b}/")) || b.starts_with(&format!("{a}/")))
            {
                return err(format!(
                    "apps {n} and {}: prefixes {b:?} and {a:?} overlap",
                    other.name
                ));
            }
        }
        out.push(App {
            name,
            mount,
            scheme,
            authority,
            base_path,
            upstream: a.upstream.clone(),
            environment: match &a.environment {
                Some(e) => e.clone(),
                None => {
                    Environment::parse("production").map_err(|e| AppConfigError(e.to_string()))?
                }
            },
            ca_file: a.ca_file.clone(),
            client_identity,
            connect_timeout: Duration::from_secs(connect),
            response_timeout: Duration::from_secs(response),
            max_request_body: req * 1024 * 1024,
            max_response_body: resp * 1024 * 1024,
        });
    }
    Ok(out)
}

/// An app for tests, with the default limits and timeouts.
#[cfg(test)]
pub(crate) fn test_app(
    name: &str,
    host: Option<&str>,
    prefix: Option<&str>,
    upstream: &str,
) -> AppConfig {
    AppConfig {
        name: name.into(),
        host: host.map(Into::into),
        prefix: prefix.map(Into::into),
        upstream: upstream.into(),
        ca_file: None,
        client_cert_file: None,
        client_key_file: None,
        environment: None,
        connect_timeout_seconds: 5,
        response_timeout_seconds: 60,
        max_request_body_mib: 1024,
        max_response_body_mib: 1024,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;

    use super::test_app as app;

    fn fails(apps: &[AppConfig], needle: &str) {
        let e = validate(apps, "gw.example.com").unwrap_err().0;
        assert!(e.contains(needle), "{e}");
    }

    #[test]
    fn good_apps_validate() {
        let apps = validate(
            &[
                app(
                    "grafana",
                    Some("Grafana.example.com"),
                    None,
                    "http://127.0.0.1:3000/",
                ),
                app(
                    "meta",
                    None,
                    Some("/metabase"),
                    "https://10.0.0.5:8443/base/",
                ),
            ],
            "gw.example.com",
        )
        .unwrap();
        assert_eq!(apps[0].mount, Mount::Host("grafana.example.com".into()));
        assert_eq!(apps[0].base_path, "");
        assert_eq!(apps[1].base_path, "/base");
        assert_eq!(apps[1].scheme, Scheme::Https);
        assert_eq!(apps[1].authority.as_str(), "10.0.0.5:8443");
    }

    #[test]
    fn bad_apps_are_refused_with_a_reason() {
        fails(
            &[app("a", Some("x.test"), None, "ftp://h/")],
            "http:// or https://",
        );
        fails(
            &[app("a", Some("gw.example.com"), None, "http://h/")],
            "web.public_host",
        );
        fails(
            &[app("a", None, Some("/x/../y"), "http://h/")],
            "clean absolute path",
        );
        fails(
            &[app("a", None, Some("/x/"), "http://h/")],
            "clean absolute path",
        );
        fails(
            &[app("a", None, Some("x"), "http://h/")],
            "clean absolute path",
        );
        fails(
            &[app("a", None, Some("/login"), "http://h/")],
            "rampart itself",
        );
        fails(&[app("a", None, None, "http://h/")], "exactly one");
        fails(&[app("a b", None, Some("/a"), "http://h/")], "name");
        fails(
            &[
                app("a", Some("x.test"), None, "http://h/"),
                app("b", Some("X.test"), None, "http://h/"),
            ],
            "same host",
        );
        fails(
            &[
                app("a", None, Some("/t"), "http://h/"),
                app("b", None, Some("/t"), "http://h/"),
            ],
            "same prefix",
        );
        fails(
            &[
                app("a", None, Some("/t"), "http://h/"),
                app("b", None, Some("/t/u"), "http://h/"),
            ],
            "overlap",
        );
        fails(
            &[
                app("a", None, Some("/t"), "http://h/"),
                app("a", None, Some("/u"), "http://h/"),
            ],
            "used twice",
        );
        fails(
            &[app("a", Some("a/b"), None, "http://h/")],
            "not a host name",
        );
        fails(
            &[app("a", Some("x.test"), None, "http://u@h/")],
            "user information",
        );
    }
}
