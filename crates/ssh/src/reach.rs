//! Which targets an account may reach over SSH and as which logins (pure), for the target
//! list shown to a user who names no target and for `rampart ssh config`.

use jiff::Timestamp;
use rampart_access::{Binding, Principal, Request, Role, Target, TargetKind, authorize};

/// A target the account may reach, with the logins it may use there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reachable {
    /// The target.
    pub target: Target,
    /// Logins granted there, sorted.
    pub logins: Vec<String>,
}

/// Every SSH target `who` may reach now, with its logins.
pub fn reachable(
    who: &Principal,
    bindings: &[(Binding, &Role)],
    targets: &[Target],
    now: Timestamp,
) -> Vec<Reachable> {
    let mut out = Vec::new();
    for target in targets.iter().filter(|t| t.kind == TargetKind::Ssh) {
        let mut logins: Vec<String> = bindings
            .iter()
            .flat_map(|(_, role)| role.grants.iter())
            .map(|g| g.login.clone())
            .filter(|login| {
                authorize(
                    who,
                    bindings,
                    Request::Target {
                        target,
                        login: login.as_str(),
                    },
                    now,
                )
                .is_ok()
            })
            .collect();
        logins.sort();
        logins.dedup();
        if !logins.is_empty() {
            out.push(Reachable {
                target: target.clone(),
                logins,
            });
        }
    }
    out
}

/// What a user who names no target sees: each target and the command that reaches it.
pub fn target_list(person: &str, host: &str, port: u16, reach: &[Reachable]) -> String {
    if reach.is_empty() {
        return "rampart: you hold no SSH grant; ask for one with `rampart access request` or on the access page.\r\n".into();
    }
    let mut out = String::from("rampart: targets you may reach:\r\n");
    for r in reach {
        for login in &r.logins {
            out.push_str(&format!(
                "  {:<20} {:<12} ssh -p {port} '{person}:{login}@{}@{host}'\r\n",
                r.target.name, r.target.environment, r.target.name
            ));
        }
    }
    out.push_str("`rampart ssh config` prints these as a ~/.ssh/config block.\r\n");
    out
}

/// A `~/.ssh/config` block with one `Host` per target (the first login of each).
pub fn ssh_config(person: &str, host: &str, port: u16, reach: &[Reachable]) -> String {
    let mut out = format!(
        "# rampart SSH targets for {person}: `ssh TARGET`, `scp FILE TARGET:`, `sftp TARGET`\n"
    );
    for r in reach {
        for (i, login) in r.logins.iter().enumerate() {
            let alias = if i == 0 {
                r.target.name.to_string()
            } else {
                format!("{}-{login}", r.target.name)
            };
            out.push_str(&format!(
                "Host {alias}\n    HostName {host}\n    Port {port}\n    User {person}:{login}@{}\n    HostKeyAlias rampart-{host}\n\n",
                r.target.name
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_access::{RoleName, TargetGrant, TargetName, TargetPattern};
    use rampart_core::Environment;

    fn target(name: &str, env: &str) -> Target {
        Target {
            name: TargetName::parse(name).unwrap(),
            kind: TargetKind::Ssh,
            address: "127.0.0.1:22".into(),
            environment: Environment::parse(env).unwrap(),
        }
    }

    #[test]
    fn only_granted_live_targets_and_logins_are_listed() {
        let role = Role {
            name: RoleName::parse("web").unwrap(),
            permissions: Default::default(),
            grants: vec![TargetGrant {
                target: TargetPattern::parse("web-*").unwrap(),
                environment: Some(Environment::parse("prod").unwrap()),
                login: "deploy".into(),
                forward: Vec::new(),
            }],
        };
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let live = Binding {
            account: "alice".into(),
            role: role.name.clone(),
            expires_at: None,
        };
        let who = Principal {
            name: "alice".into(),
            active: true,
            mfa_satisfied: true,
        };
        let targets = [
            target("web-1", "prod"),
            target("web-2", "staging"),
            target("db-1", "prod"),
        ];
        let reach = reachable(&who, &[(live.clone(), &role)], &targets, now);
        assert_eq!(reach.len(), 1);
        assert_eq!(reach[0].target.name.as_str(), "web-1");
        assert_eq!(reach[0].logins, vec!["deploy".to_string()]);
        let text = target_list("alice", "gw.example.com", 2222, &reach);
        assert!(
            text.contains("ssh -p 2222 'alice:deploy@web-1@gw.example.com'"),
            "{text}"
        );
        let config = ssh_config("alice", "gw.example.com", 2222, &reach);
        assert!(config.contains("Host web-1\n    HostName gw.example.com\n    Port 2222\n    User alice:deploy@web-1\n"), "{config}");

        let expired = Binding {
            expires_at: Some(now),
            ..live
        };
        assert!(reachable(&who, &[(expired, &role)], &targets, now).is_empty());
    }
}
