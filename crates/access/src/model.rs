//! Targets, roles, grants and bindings: plain data, parsed on the way in.

use std::collections::BTreeSet;

use jiff::Timestamp;
use rampart_core::Environment;
use serde::{Deserialize, Serialize};

use crate::Request;

/// A name that is not 1–64 characters of `[A-Za-z0-9._-]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {what} is 1 to 64 characters of letters, digits, '.', '_' and '-'; got {value:?}")]
pub struct BadName {
    /// What kind of name.
    pub what: &'static str,
    /// What was given.
    pub value: String,
}

macro_rules! name_type {
    ($ty:ident, $what:literal, $extra:literal) => {
        #[doc = concat!("A valid ", $what, ".")]
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        pub struct $ty(String);

        impl $ty {
            #[doc = concat!("Parses a ", $what, ".")]
            pub fn parse(raw: &str) -> Result<Self, BadName> {
                let ok = !raw.is_empty()
                    && raw.len() <= 64
                    && raw.chars().all(|c| {
                        c.is_ascii_alphanumeric()
                            || matches!(c, '.' | '_' | '-')
                            || $extra.contains(c)
                    });
                if ok {
                    Ok(Self(raw.to_owned()))
                } else {
                    Err(BadName {
                        what: $what,
                        value: raw.to_owned(),
                    })
                }
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(TargetName, "target name", "");
name_type!(RoleName, "role name", "");
name_type!(TargetPattern, "target pattern", "*");

/// What protocol a target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// An SSH server behind the bastion.
    Ssh,
    /// A PostgreSQL server behind the gateway.
    Postgres,
    /// An internal web tool behind the front door.
    Http,
}

impl TargetKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ssh => "ssh",
            Self::Postgres => "postgres",
            Self::Http => "http",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "ssh" => Some(Self::Ssh),
            "postgres" => Some(Self::Postgres),
            "http" => Some(Self::Http),
            _ => None,
        }
    }
}

/// A server or tool reached through rampart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Unique name, used in `alice:web-1@gateway`.
    pub name: TargetName,
    /// Protocol.
    pub kind: TargetKind,
    /// `host:port` or URL.
    pub address: String,
    /// The environment it lives in.
    pub environment: Environment,
}

macro_rules! permissions {
    ($( $variant:ident = $name:literal, $doc:literal; )*) => {
        /// Admin permissions a role can hold.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum Permission {
            $( #[doc = $doc] #[serde(rename = $name)] $variant, )*
        }

        impl Permission {
            /// Every permission.
            pub const ALL: &'static [Permission] = &[$(Permission::$variant),*];

            /// The stored name.
            pub fn as_str(self) -> &'static str {
                match self { $(Permission::$variant => $name,)* }
            }

            /// Parses a stored name.
            pub fn parse(raw: &str) -> Option<Self> {
                match raw { $($name => Some(Permission::$variant),)* _ => None }
            }
        }
    };
}

permissions! {
    ManageUsers = "users.manage", "Create, disable and enable accounts; reset MFA; issue enrollment links.";
    ManageRoles = "roles.manage", "Create roles and grant them to accounts.";
    ManageTargets = "targets.manage", "Register and remove targets.";
    ViewAudit = "audit.view", "Read and export the audit log.";
    ViewReport = "report.view", "Read the control report.";
    ApproveAccess = "access.approve", "Approve or deny other people's access requests.";
    ReviewAccess = "access.review", "Start access reviews and keep or revoke other people's grants in them (ACC-7).";
    ViewLogs = "logs.view", "Search and tail application logs and see their alerts.";
    BackupView = "backup.view", "List backups and their retention plan (BAK-5).";
    BackupRun = "backup.run", "Start a backup run.";
    BackupRestore = "backup.restore", "Restore or download a backup.";
    BackupPrune = "backup.prune", "Delete backups as the retention plan says.";
    BackupPin = "backup.pin", "Pin and unpin backups (legal hold).";
}

/// Permission to reach targets matching a pattern, in an environment, as a login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetGrant {
    /// A target name, or a pattern with `*` wildcards (`web-*`, `*`).
    pub target: TargetPattern,
    /// Only targets in this environment; any environment when absent.
    pub environment: Option<Environment>,
    /// The SSH login or database role; `*` for http tools.
    pub login: String,
    /// `host:port` destinations an SSH session under this grant may forward to (`ssh -L`);
    /// none by default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forward: Vec<String>,
}

impl TargetGrant {
    /// Whether this grant names `host:port` as a forwarding destination.
    pub fn allows_forward(&self, host: &str, port: u32) -> bool {
        let wanted = format!("{}:{port}", host.to_ascii_lowercase());
        self.forward
            .iter()
            .any(|f| f.to_ascii_lowercase() == wanted)
    }

    /// Whether this grant admits `login` on `target`.
    pub fn admits(&self, target: &Target, login: &str) -> bool {
        glob_match(self.target.as_str(), target.name.as_str())
            && self
                .environment
                .as_ref()
                .is_none_or(|env| *env == target.environment)
            && (self.login == login || (self.login == "*" && target.kind == TargetKind::Http))
    }
}

/// A named set of permissions and target grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// Unique name.
    pub name: RoleName,
    /// Admin permissions.
    pub permissions: BTreeSet<Permission>,
    /// Target grants.
    pub grants: Vec<TargetGrant>,
}

impl Role {
    /// Whether the role allows the request (expiry of bindings aside).
    pub fn allows(&self, request: Request<'_>) -> bool {
        match request {
            Request::Admin(p) => self.permissions.contains(&p),
            Request::Target { target, login } => {
                self.grants.iter().any(|g| g.admits(target, login))
            }
        }
    }
}

/// A role granted to an account, perhaps until a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// The account's user name.
    pub account: String,
    /// The role.
    pub role: RoleName,
    /// When it stops counting.
    pub expires_at: Option<Timestamp>,
}

/// `*` matches any run of characters; everything else matches itself.
fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return pattern == name;
    };
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = rest.get(at + part.len()..).unwrap_or(""),
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs_match_like_shell_patterns() {
        for (pattern, name, want) in [
            ("web-1", "web-1", true),
            ("web-1", "web-10", false),
            ("web-*", "web-10", true),
            ("*", "anything", true),
            ("*-db", "orders-db", true),
            ("*-db", "orders-dbx", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxc", false),
            ("ab*ba", "aba", false),
        ] {
            assert_eq!(glob_match(pattern, name), want, "{pattern} vs {name}");
        }
    }
}
