//! age identities: `rampart backup keygen` and reading an identity file for a restore.

use std::io::Write;
use std::path::Path;
use std::str::FromStr;

use age::secrecy::ExposeSecret;

use crate::BackupError;

/// Writes a new X25519 identity to `path` (mode 0600, never over an existing file) and
/// returns its public key.
pub fn keygen(path: &Path, now: jiff::Timestamp) -> Result<String, BackupError> {
    let identity = age::x25519::Identity::generate();
    let public = identity.to_public().to_string();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| BackupError::Sink(format!("cannot create {}: {e}", path.display())))?;
    let secret = identity.to_string();
    let text = format!(
        "# created: {now}\n# public key: {public}\n{}\n",
        secret.expose_secret()
    );
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| BackupError::Sink(format!("cannot write {}: {e}", path.display())))?;
    Ok(public)
}

/// Reads the X25519 identities (`AGE-SECRET-KEY-1…` lines) of an identity file.
pub fn read_identities(path: &Path) -> Result<Vec<age::x25519::Identity>, BackupError> {
    let meta = std::fs::metadata(path).map_err(|e| {
        BackupError::NotFound(format!(
            "cannot read the identity file {}: {e}",
            path.display()
        ))
    })?;
    if meta.len() > 1 << 20 {
        return Err(BackupError::NotFound(format!(
            "{} is too large to be an age identity file",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        BackupError::NotFound(format!(
            "cannot read the identity file {}: {e}",
            path.display()
        ))
    })?;
    let ids = parse_identities(&text);
    if ids.is_empty() {
        return Err(BackupError::NotFound(format!(
            "{} holds no age X25519 identity (AGE-SECRET-KEY-1…)",
            path.display()
        )));
    }
    Ok(ids)
}

/// The X25519 identities (`AGE-SECRET-KEY-1…` lines) of an identity file's text; other
/// lines (comments, public keys) are skipped.
pub fn parse_identities(text: &str) -> Vec<age::x25519::Identity> {
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .filter_map(|l| age::x25519::Identity::from_str(l).ok())
        .collect()
}

/// The identities as text, one per line, for sealing at rest.
pub fn identities_text(ids: &[age::x25519::Identity]) -> String {
    ids.iter()
        .map(|i| i.to_string().expose_secret().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}
