//! The `[postgres]` section of `rampart.toml`.

use std::net::SocketAddr;

use serde::Deserialize;

/// Gateway settings. The listener is off until `listen` is set.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// Address of the gateway's listener (PostgreSQL clients connect here; 6432 by
    /// convention). Absent: no listener.
    pub listen: Option<SocketAddr>,
    /// Largest protocol message accepted from a client or a server, in KiB (64 to 1048576).
    pub max_message_kib: u32,
    /// Hours a database token lives when none is asked for (1 to 12).
    pub token_hours: u32,
    /// Seconds a statement's `ReadyForQuery` waits for its audit record before the session
    /// ends with an error (1 to 120).
    pub audit_wait_seconds: u32,
    /// Seconds allowed for a client's TLS handshake and login, and for reaching the
    /// upstream server (1 to 120).
    pub handshake_seconds: u32,
    /// How clients prove their token.
    pub client_auth: ClientAuth,
    /// TLS towards the database servers.
    pub upstream_tls: UpstreamTls,
    /// PEM file of the CA(s) that sign the database servers' certificates (required with
    /// `upstream_tls = "verify"`).
    pub upstream_ca_file: Option<std::path::PathBuf>,
}

/// TLS from the gateway to the database servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum UpstreamTls {
    /// Plaintext (a server on the same host or a trusted link only).
    #[serde(rename = "off")]
    Off,
    /// TLS when the server offers it, plaintext otherwise (libpq's default, `prefer`).
    #[serde(rename = "prefer")]
    Prefer,
    /// TLS always; the certificate is not checked (`sslmode=require`).
    #[serde(rename = "require")]
    Require,
    /// TLS always, with the certificate checked against `upstream_ca_file` and the target's
    /// host name or address (`sslmode=verify-full`).
    #[serde(rename = "verify")]
    Verify,
}

/// How a client proves its database token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ClientAuth {
    /// SCRAM-SHA-256: the token never crosses the wire, and the client checks that the
    /// gateway knew its verifier.
    #[serde(rename = "scram-sha-256")]
    Scram,
    /// The token as a password inside TLS, for clients without SCRAM.
    #[serde(rename = "password")]
    Password,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            listen: None,
            max_message_kib: 1024,
            token_hours: 1,
            audit_wait_seconds: 10,
            handshake_seconds: 15,
            client_auth: ClientAuth::Scram,
            upstream_tls: UpstreamTls::Prefer,
            upstream_ca_file: None,
        }
    }
}

/// Longest a database token may live, in hours.
pub const MAX_TOKEN_HOURS: u32 = 12;

impl PostgresConfig {
    /// Checks every bound; the error names the key, the value and the range.
    pub fn validate(&self) -> Result<(), String> {
        let check = |key: &str, value: u32, lo: u32, hi: u32| {
            if (lo..=hi).contains(&value) {
                Ok(())
            } else {
                Err(format!(
                    "postgres.{key} = {value} is out of range: allowed {lo} to {hi}"
                ))
            }
        };
        check("max_message_kib", self.max_message_kib, 64, 1_048_576)?;
        check("token_hours", self.token_hours, 1, MAX_TOKEN_HOURS)?;
        check("audit_wait_seconds", self.audit_wait_seconds, 1, 120)?;
        check("handshake_seconds", self.handshake_seconds, 1, 120)?;
        if self.upstream_tls == UpstreamTls::Verify && self.upstream_ca_file.is_none() {
            return Err(
                "postgres.upstream_tls = \"verify\" needs postgres.upstream_ca_file: the CA that signs the database servers' certificates".into(),
            );
        }
        Ok(())
    }

    /// The message size limit in bytes.
    pub fn max_message_bytes(&self) -> usize {
        usize::try_from(self.max_message_kib).unwrap_or(1024) * 1024
    }
}
