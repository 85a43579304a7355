//! What the SSH user name asks for: `person`, `person:target`, `person#target`, or with a
//! login, `person:login@target` (the client splits `user@host` at the last `@`, so
//! `ssh 'alice:root@web-1@gateway'` sends `alice:root@web-1`).

use rampart_access::TargetName;

/// The longest user name looked at; OpenSSH itself allows far less in practice.
pub const MAX_USER_LEN: usize = 256;

/// A parsed SSH user name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The rampart account (as typed; looked up case-insensitively by the store).
    pub person: String,
    /// The target, or none to ask for the list of reachable targets.
    pub target: Option<TargetName>,
    /// The login on the target, when the user named one.
    pub login: Option<Login>,
}

/// A login (Unix user) on a target: 1–32 characters of `[a-z0-9._-]`, not starting with `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Login(String);

impl Login {
    /// Parses a login.
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = !raw.is_empty()
            && raw.len() <= 32
            && !raw.starts_with('-')
            && raw.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            });
        ok.then(|| Self(raw.to_owned()))
    }

    /// The login as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a user name was not understood. Never echoes the typed text (it may be 64 KB of
/// anything); the message says what the shape should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadUser {
    /// Longer than [`MAX_USER_LEN`].
    #[error("the user name is too long")]
    TooLong,
    /// Not one of the accepted shapes.
    #[error("use PERSON:TARGET, PERSON#TARGET or PERSON:LOGIN@TARGET as the SSH user name")]
    Shape,
}

impl Destination {
    /// Parses an SSH user name.
    pub fn parse(raw: &str) -> Result<Self, BadUser> {
        if raw.len() > MAX_USER_LEN {
            return Err(BadUser::TooLong);
        }
        let (person, rest) = match raw.find([':', '#']) {
            Some(at) => (
                raw.get(..at).ok_or(BadUser::Shape)?,
                Some(raw.get(at + 1..).ok_or(BadUser::Shape)?),
            ),
            None => (raw, None),
        };
        if !valid_person(person) {
            return Err(BadUser::Shape);
        }
        let (target, login) = match rest {
            None => (None, None),
            Some(rest) => match rest.rsplit_once('@') {
                Some((login, target)) => (
                    Some(TargetName::parse(target).map_err(|_| BadUser::Shape)?),
                    Some(Login::parse(login).ok_or(BadUser::Shape)?),
                ),
                None => (
                    Some(TargetName::parse(rest).map_err(|_| BadUser::Shape)?),
                    None,
                ),
            },
        };
        Ok(Self {
            person: person.to_owned(),
            target,
            login,
        })
    }
}

/// Account names are 1–64 characters of `[A-Za-z0-9._-]` (see `identity::Username`); the
/// store decides whether one exists.
fn valid_person(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= 64
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest(person: &str, target: Option<&str>, login: Option<&str>) -> Destination {
        Destination {
            person: person.into(),
            target: target.map(|t| TargetName::parse(t).unwrap()),
            login: login.map(|l| Login::parse(l).unwrap()),
        }
    }

    #[test]
    fn user_names_name_person_target_and_login() {
        for (raw, want) in [
            ("alice", dest("alice", None, None)),
            ("alice:web-1", dest("alice", Some("web-1"), None)),
            ("alice#web-1", dest("alice", Some("web-1"), None)),
            (
                "alice:root@web-1",
                dest("alice", Some("web-1"), Some("root")),
            ),
            (
                "alice#deploy@db.prod",
                dest("alice", Some("db.prod"), Some("deploy")),
            ),
        ] {
            assert_eq!(Destination::parse(raw), Ok(want), "{raw}");
        }
    }

    #[test]
    fn malformed_user_names_are_refused_without_echo() {
        for raw in [
            "",
            ":web-1",
            "alice:",
            "alice#",
            "al ice:web-1",
            "alice:web 1",
            "alice:@web-1",
            "alice:-x@web-1",
            "alice:Root@web-1",
            "alice:root@",
            "alice:a@b@c",
            "ålice:web-1",
        ] {
            assert_eq!(Destination::parse(raw), Err(BadUser::Shape), "{raw:?}");
        }
    }

    #[test]
    fn a_64_kb_user_name_is_refused_as_too_long() {
        let raw = "a".repeat(64 * 1024);
        assert_eq!(Destination::parse(&raw), Err(BadUser::TooLong));
        assert!(!BadUser::TooLong.to_string().contains("aaaa"));
    }
}
