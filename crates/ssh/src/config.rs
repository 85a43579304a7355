//! The `[ssh]` section of `rampart.toml`.

use std::net::SocketAddr;

use rampart_core::Bounded;
use serde::Deserialize;

/// How the bastion listens and what it allows.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SshConfig {
    /// Address of the SSH listener; absent: no bastion.
    pub listen: Option<SocketAddr>,
    /// The port people use, when it differs from the listener's (for `rampart ssh config`).
    pub public_port: Option<u16>,
    /// Minutes a successful TOTP is remembered for the same key and address (0 to 60; 0
    /// disables).
    pub mfa_remember_minutes: Bounded<0, 60>,
    /// Minutes without traffic after which a session ends (1 to 240).
    pub idle_minutes: Bounded<1, 240>,
    /// Hours a session may last at most, whatever its grant says (1 to 24).
    pub max_session_hours: Bounded<1, 24>,
    /// Minutes the per-session certificate to the target is valid for logging in (1 to 60).
    pub certificate_minutes: Bounded<1, 60>,
    /// Seconds to connect to a target and log in (1 to 120).
    pub connect_timeout_seconds: Bounded<1, 120>,
    /// Seconds a client has from connecting to finishing authentication (10 to 600).
    pub login_grace_seconds: Bounded<10, 600>,
    /// Connections served at once; more are closed at once (1 to 100000).
    pub max_connections: Bounded<1, 100_000>,
    /// Environment variables a client may pass to the target (`LC_*` matches a prefix).
    pub env_allow: Vec<String>,
    /// Public key lines of CAs whose host certificates vouch for targets; a target without
    /// a certificate has its host key pinned on first use.
    pub target_host_cas: Vec<String>,
}

impl Default for SshConfig {
    fn default() -> Self {
        Self {
            listen: None,
            public_port: None,
            mfa_remember_minutes: bounded(10),
            idle_minutes: bounded(15),
            max_session_hours: bounded(12),
            certificate_minutes: bounded(5),
            connect_timeout_seconds: bounded(10),
            login_grace_seconds: bounded(60),
            max_connections: bounded(1000),
            env_allow: vec!["LANG".into(), "LC_*".into()],
            target_host_cas: Vec::new(),
        }
    }
}

impl SshConfig {
    /// Whether a client may set this environment variable on the target.
    pub fn env_allowed(&self, name: &str) -> bool {
        self.env_allow
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => pattern == name,
            })
    }
}

fn bounded<const LO: i64, const HI: i64>(v: i64) -> Bounded<LO, HI> {
    Bounded::clamped(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_allow_list_matches_names_and_prefixes() {
        let c = SshConfig::default();
        assert!(c.env_allowed("LANG"));
        assert!(c.env_allowed("LC_ALL"));
        assert!(!c.env_allowed("LD_PRELOAD"));
        assert!(!c.env_allowed("LANGUAGE"));
    }
}
