//! The `[backup]` section of `rampart.toml`: what to back up, how often, how long each tier
//! is kept, where the objects go and who can decrypt them.
//!
//! Every number the page states is a bound in the type: an interval over 6 hours or a
//! tier outside its range does not parse (BAK-1..4).

use std::path::PathBuf;
use std::str::FromStr;

use jiff::SignedDuration;
use jiff::tz::TimeZone;
use rampart_core::Bounded;
use serde::{Deserialize, Deserializer};

/// The whole `[backup]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// Time between base backups (at most 6 hours, BAK-1).
    pub interval: Interval,
    /// Whether rampart's own SQLite database is a source (named `rampart`).
    pub own_database: bool,
    /// age X25519 public keys (`age1…`) that can decrypt the backups. rampart holds no
    /// private key; `rampart backup keygen` makes one for operators to keep offline.
    pub recipients: Vec<Recipient>,
    /// zstd level (1 to 19).
    pub zstd_level: Bounded<1, 19>,
    /// Hours between scheduled restore drills (1 to 168).
    pub drill_hours: Bounded<1, 168>,
    /// How long each tier is kept.
    pub retention: RetentionPolicy,
    /// Where the objects go.
    pub storage: StorageConfig,
    /// The databases and commands to back up.
    pub sources: Vec<SourceConfig>,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            interval: Interval::default(),
            own_database: true,
            recipients: Vec::new(),
            zstd_level: Bounded::clamped(3),
            drill_hours: Bounded::clamped(24),
            retention: RetentionPolicy::default(),
            storage: StorageConfig::default(),
            sources: Vec::new(),
        }
    }
}

/// A configuration that cannot be used, as one sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BackupConfigError(pub String);

impl BackupConfig {
    /// Checks what the types cannot: unique source names, storage settings that fit the kind.
    pub fn validate(&self) -> Result<(), BackupConfigError> {
        let mut names = std::collections::BTreeSet::new();
        if self.own_database {
            names.insert("rampart".to_owned());
        }
        for s in &self.sources {
            if !names.insert(s.name.as_str().to_owned()) {
                return Err(BackupConfigError(format!(
                    "backup.sources: the name {:?} is used twice (own_database = true takes \"rampart\")",
                    s.name.as_str()
                )));
            }
            let (needs, ok) = match s.kind {
                SourceKind::Postgres => ("url", s.url.is_some()),
                SourceKind::Sqlite => ("path", s.path.is_some()),
                SourceKind::Command => ("command", !s.command.is_empty()),
            };
            if !ok {
                return Err(BackupConfigError(format!(
                    "backup source {:?} of kind \"{}\" needs {needs}",
                    s.name.as_str(),
                    s.kind.as_str()
                )));
            }
            if let Some(url) = &s.url
                && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
            {
                return Err(BackupConfigError(format!(
                    "backup source {:?}: url must be a postgres:// URL",
                    s.name.as_str()
                )));
            }
        }
        if self.storage.kind == StorageKind::S3 && self.storage.bucket.is_none() {
            return Err(BackupConfigError(
                "backup.storage.kind = \"s3\" needs backup.storage.bucket".into(),
            ));
        }
        if let Some(endpoint) = &self.storage.endpoint {
            let http = endpoint.starts_with("http://");
            if !(http || endpoint.starts_with("https://")) {
                return Err(BackupConfigError(format!(
                    "backup.storage.endpoint = {endpoint:?} must be an https:// URL"
                )));
            }
            if http && !self.storage.dangerous_allow_http {
                return Err(BackupConfigError(format!(
                    "backup.storage.endpoint = {endpoint:?} is plain HTTP: use https://, or set dangerous_allow_http = true for a storage server on loopback"
                )));
            }
        }
        Ok(())
    }
}

/// Time between base backups: at most 6 hours (BAK-1), at least 5 minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval(SignedDuration);

impl Interval {
    /// The page's longest interval.
    pub const MAX: SignedDuration = SignedDuration::from_hours(6);
    /// The shortest accepted.
    pub const MIN: SignedDuration = SignedDuration::from_mins(5);

    /// Checks a duration.
    pub fn new(d: SignedDuration) -> Result<Self, BackupConfigError> {
        if d > Self::MAX {
            return Err(BackupConfigError(format!(
                "backup.interval = \"{d:#}\" is longer than 6h: the page promises a base backup at least every 6 hours (BAK-1)"
            )));
        }
        if d < Self::MIN {
            return Err(BackupConfigError(format!(
                "backup.interval = \"{d:#}\" is shorter than 5m"
            )));
        }
        Ok(Self(d))
    }

    /// The duration.
    pub fn get(self) -> SignedDuration {
        self.0
    }
}

impl Default for Interval {
    fn default() -> Self {
        Self(Self::MAX)
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let duration = SignedDuration::from_str(&text).map_err(|_| {
            serde::de::Error::custom(format!(
                "{text:?} is not a duration: write it like \"6h\" or \"90m\""
            ))
        })?;
        Interval::new(duration).map_err(serde::de::Error::custom)
    }
}

/// First or newest backup of each day, week and month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The earliest good backup of the period.
    #[default]
    First,
    /// The latest good backup of the period.
    Newest,
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::First => "first",
            Self::Newest => "newest",
        })
    }
}

/// A time zone by IANA name, checked against the system's time zone database.
#[derive(Debug, Clone)]
pub struct Zone {
    name: String,
    zone: TimeZone,
}

impl Zone {
    /// Looks a name up (`UTC`, `Europe/Paris`).
    pub fn new(name: &str) -> Result<Self, BackupConfigError> {
        let zone = if name == "UTC" {
            TimeZone::UTC
        } else {
            TimeZone::get(name).map_err(|_| {
                BackupConfigError(format!(
                    "{name:?} is not a time zone name: use an IANA name such as \"Europe/Paris\" or \"UTC\""
                ))
            })?
        };
        Ok(Self {
            name: name.to_owned(),
            zone,
        })
    }

    /// The zone.
    pub fn zone(&self) -> &TimeZone {
        &self.zone
    }

    /// The name as configured.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl PartialEq for Zone {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Default for Zone {
    fn default() -> Self {
        Self {
            name: "UTC".into(),
            zone: TimeZone::UTC,
        }
    }
}

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Zone::new(&text).map_err(serde::de::Error::custom)
    }
}

/// How long each tier is kept (BAK-1..4), within the page's bounds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionPolicy {
    /// Base backups are kept this many days (2 to 5).
    pub base_days: Bounded<2, 5>,
    /// One backup per day is kept this many days (7 to 365).
    pub daily_days: Bounded<7, 365>,
    /// One backup per ISO week is kept this many weeks (4 to 52).
    pub weekly_weeks: Bounded<4, 52>,
    /// One backup per month is kept this many months (13 to 36).
    pub monthly_months: Bounded<13, 36>,
    /// Which backup stands for its day, week and month.
    pub rule: Rule,
    /// The calendar days, weeks and months are counted in.
    pub time_zone: Zone,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            base_days: Bounded::clamped(5),
            daily_days: Bounded::clamped(35),
            weekly_weeks: Bounded::clamped(12),
            monthly_months: Bounded::clamped(13),
            rule: Rule::First,
            time_zone: Zone::default(),
        }
    }
}

/// Local directory or S3-compatible object storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageKind {
    /// A directory on this machine (or a mounted volume).
    #[default]
    Dir,
    /// An S3-compatible bucket.
    S3,
}

/// Where backup objects are written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `dir` or `s3`.
    pub kind: StorageKind,
    /// For `dir`: the directory (relative paths are under the data directory).
    pub path: PathBuf,
    /// For `s3`: the bucket.
    pub bucket: Option<String>,
    /// For `s3`: the endpoint of an S3-compatible server; absent: AWS.
    pub endpoint: Option<String>,
    /// For `s3`: the region.
    pub region: String,
    /// Key prefix inside the bucket or directory.
    pub prefix: String,
    /// For `s3`: allow a plain-HTTP endpoint (a storage server on loopback only).
    pub dangerous_allow_http: bool,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            kind: StorageKind::Dir,
            path: PathBuf::from("backups"),
            bucket: None,
            endpoint: None,
            region: "us-east-1".into(),
            prefix: "rampart".into(),
            dangerous_allow_http: false,
        }
    }
}

/// A database or command to back up.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Unique name (a-z, 0-9, `-`, `_`).
    pub name: SourceName,
    /// `postgres`, `sqlite` or `command`.
    pub kind: SourceKind,
    /// For `postgres`: the connection URL.
    #[serde(default)]
    pub url: Option<String>,
    /// For `sqlite`: the database file.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// For `command`: the program and its arguments; its stdout is the backup.
    #[serde(default)]
    pub command: Vec<String>,
}

/// What kind of source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// `pg_dump -Fc` with row counts taken in the same snapshot.
    Postgres,
    /// An SQLite file, copied online with `VACUUM INTO`.
    Sqlite,
    /// Any command's stdout.
    Command,
}

impl SourceKind {
    /// The configured text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
            Self::Command => "command",
        }
    }
}

/// A source name: 1 to 32 of `a-z 0-9 - _`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceName(String);

impl SourceName {
    /// Checks a name.
    pub fn parse(raw: &str) -> Result<Self, BackupConfigError> {
        let ok = !raw.is_empty()
            && raw.len() <= 32
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(BackupConfigError(format!(
                "backup source name {raw:?} must be 1 to 32 characters of a-z, 0-9, '-' and '_'"
            )))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SourceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SourceName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        SourceName::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// An age X25519 public key (`age1…`).
#[derive(Clone)]
pub struct Recipient {
    text: String,
    key: age::x25519::Recipient,
}

impl Recipient {
    /// Parses `age1…`.
    pub fn parse(text: &str) -> Result<Self, BackupConfigError> {
        let key = age::x25519::Recipient::from_str(text.trim()).map_err(|_| {
            BackupConfigError(format!(
                "backup.recipients: {text:?} is not an age X25519 public key (age1…): `rampart backup keygen` makes one"
            ))
        })?;
        Ok(Self {
            text: text.trim().to_owned(),
            key,
        })
    }

    /// The key.
    pub fn key(&self) -> &age::x25519::Recipient {
        &self.key
    }

    /// The `age1…` text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl std::fmt::Debug for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for Recipient {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl<'de> Deserialize<'de> for Recipient {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Recipient::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn parse(text: &str) -> Result<BackupConfig, String> {
        toml::from_str::<BackupConfig>(text).map_err(|e| e.message().to_owned())
    }

    #[test]
    fn defaults_are_within_the_page() {
        let c = parse("").unwrap();
        assert_eq!(c.interval.get(), SignedDuration::from_hours(6));
        assert_eq!(c.retention.time_zone.name(), "UTC");
        assert_eq!(c.retention.rule, Rule::First);
        c.validate().unwrap();
    }

    #[test]
    fn an_interval_over_six_hours_is_refused() {
        let err = parse("interval = \"12h\"").unwrap_err();
        assert!(err.contains("longer than 6h"), "{err}");
        assert!(parse("interval = \"6h\"").is_ok());
        assert!(parse("interval = \"90m\"").is_ok());
        assert!(parse("interval = \"6h 1m\"").is_err());
        assert!(parse("interval = \"soon\"").unwrap_err().contains("6h"));
    }

    #[test]
    fn tiers_outside_the_page_are_refused() {
        for (key, bad, good) in [
            ("base_days", 6, 2),
            ("base_days", 1, 5),
            ("daily_days", 400, 365),
            ("daily_days", 6, 7),
            ("weekly_weeks", 53, 52),
            ("weekly_weeks", 3, 4),
            ("monthly_months", 12, 13),
            ("monthly_months", 37, 36),
        ] {
            let err = parse(&format!("[retention]\n{key} = {bad}\n")).unwrap_err();
            assert!(err.contains("is not allowed"), "{key}: {err}");
            parse(&format!("[retention]\n{key} = {good}\n")).unwrap();
        }
    }

    #[test]
    fn time_zone_and_rule_are_checked() {
        let c = parse("[retention]\ntime_zone = \"Europe/Paris\"\nrule = \"newest\"\n").unwrap();
        assert_eq!(c.retention.time_zone.name(), "Europe/Paris");
        assert_eq!(c.retention.rule, Rule::Newest);
        assert!(
            parse("[retention]\ntime_zone = \"Mars/Olympus\"\n")
                .unwrap_err()
                .contains("not a time zone")
        );
        assert!(parse("[retention]\nrule = \"last\"\n").is_err());
    }

    #[test]
    fn recipients_must_be_age_keys() {
        let id = age::x25519::Identity::generate();
        let key = id.to_public().to_string();
        let c = parse(&format!("recipients = [\"{key}\"]")).unwrap();
        assert_eq!(c.recipients.len(), 1);
        assert!(
            parse("recipients = [\"ssh-ed25519 AAAA\"]")
                .unwrap_err()
                .contains("not an age")
        );
    }

    #[test]
    fn sources_and_storage_are_validated() {
        let c = parse("[[sources]]\nname = \"app\"\nkind = \"postgres\"\n").unwrap();
        assert!(c.validate().unwrap_err().0.contains("needs url"));
        let c =
            parse("[[sources]]\nname = \"rampart\"\nkind = \"sqlite\"\npath = \"x.db\"\n").unwrap();
        assert!(c.validate().unwrap_err().0.contains("used twice"));
        assert!(parse("[[sources]]\nname = \"App DB\"\nkind = \"command\"\n").is_err());
        let c = parse("[storage]\nkind = \"s3\"\n").unwrap();
        assert!(c.validate().unwrap_err().0.contains("bucket"));
        let c =
            parse("[storage]\nkind = \"s3\"\nbucket = \"b\"\nendpoint = \"http://127.0.0.1:1\"\n")
                .unwrap();
        assert!(c.validate().unwrap_err().0.contains("dangerous_allow_http"));
    }
}
