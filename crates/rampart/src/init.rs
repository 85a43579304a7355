//! `rampart init`: a data directory with secure defaults, made once and reused after.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine;
use rampart_access::{Binding, Permission, Role, RoleName};
use rampart_audit::{Action, Actor, AuditEvent, SigningKey};
use rampart_identity::sealed::MasterKey;
use rampart_store::Store;
use rampart_web::tls;

use crate::config::{Config, DataDir, TEMPLATE};

/// What init made, for the message it prints.
#[derive(Debug)]
pub struct Initialized {
    /// Whether anything was created (false: everything existed).
    pub created: bool,
    /// The first admin's enrollment URL, printed once.
    pub enroll_url: Option<String>,
}

/// Creates whatever part of the data directory is missing. Existing files are never
/// overwritten, so running it twice is harmless.
pub async fn run(dir: &DataDir, admin_email: &str) -> Result<Initialized> {
    let mut created = false;
    std::fs::create_dir_all(dir.0.join("keys"))
        .with_context(|| format!("cannot create {}", dir.0.display()))?;
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o700))?;
    std::fs::set_permissions(dir.0.join("keys"), std::fs::Permissions::from_mode(0o700))?;
    if !dir.config().exists() {
        write_new(&dir.config(), TEMPLATE.as_bytes(), 0o600)?;
        created = true;
    }
    let config = Config::load(&dir.config()).map_err(|e| anyhow::anyhow!(e.0))?;
    if !dir.master_key().exists() {
        let key = MasterKey::generate()?;
        write_new(&dir.master_key(), key.expose_secret(), 0o600)?;
        created = true;
    }
    if !dir.audit_key().exists() {
        write_new(&dir.audit_key(), &SigningKey::generate_pkcs8()?, 0o600)?;
        created = true;
    }
    for (path, comment) in [
        (dir.ssh_host_key(), "rampart host key"),
        (dir.ssh_user_ca(), "rampart user CA"),
    ] {
        if !path.exists() {
            let (private, public) = openssh_ed25519(comment)?;
            write_new(&path, private.as_bytes(), 0o600)?;
            write_new(&path.with_extension("pub"), public.as_bytes(), 0o644)?;
            created = true;
        }
    }
    let paths = config.tls.paths(&dir.0)?;
    if config.tls.mode == tls::TlsMode::SelfSigned && !paths.cert.exists() {
        tls::generate_self_signed(std::slice::from_ref(&config.web.public_host), &paths)?;
        created = true;
    }
    let db = dir.0.join("rampart.db");
    if config.store.url.is_none() && !db.exists() {
        // SQLite gives its -wal and -shm files the database file's mode.
        write_new(&db, b"", 0o600)?;
    }
    let store = Store::open(&config.store_url(&dir.0)).await?;
    let signing = SigningKey::from_pkcs8(&std::fs::read(dir.audit_key())?)?;
    store
        .set_meta("audit.public_key", &signing.public_key_hex())
        .await?;
    let mut enroll_url = None;
    if store.accounts().await?.is_empty() {
        enroll_url = Some(first_admin(&store, &config, admin_email).await?);
        created = true;
    }
    store.close().await;
    Ok(Initialized {
        created,
        enroll_url,
    })
}

/// Gives the `admin` role that `init` made the permissions added to rampart since (an
/// upgrade would otherwise keep its first administrator out of the new pages), audited as a
/// `role.create` by `system` with `via = upgrade`. A role a person has changed or made
/// (any `role.*` record for `admin` by someone other than `system`) is left as it is:
/// their choice stands.
pub async fn top_up_admin(store: &Store) -> Result<()> {
    let Some(mut role) = store
        .roles()
        .await?
        .into_iter()
        .find(|r| r.name.as_str() == "admin")
    else {
        return Ok(());
    };
    let missing: Vec<Permission> = Permission::ALL
        .iter()
        .copied()
        .filter(|p| !role.permissions.contains(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    // Role changes are rare: the records are read back page by page, a bounded number.
    let mut before = None;
    for _ in 0..1000 {
        let page = store
            .audit_search(&rampart_store::AuditQuery {
                action_prefix: Some("role.".into()),
                before_seq: before,
                limit: 1000,
                ..Default::default()
            })
            .await?;
        if page
            .iter()
            .any(|r| r.subject == "admin" && r.actor != Actor::System.to_string())
        {
            return Ok(());
        }
        match page.iter().map(|r| r.seq).min() {
            Some(oldest) if page.len() == 1000 => before = Some(oldest),
            _ => break,
        }
    }
    role.permissions.extend(missing.iter().copied());
    let added = missing
        .iter()
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(",");
    store
        .put_role(
            &role,
            AuditEvent::new(Actor::System, Action::RoleCreate, "admin")
                .detail("via", "upgrade")
                .detail("added", added),
        )
        .await?;
    Ok(())
}

/// The `admin` role with every permission, an account holding it, and its enrollment URL.
async fn first_admin(store: &Store, config: &Config, email: &str) -> Result<String> {
    let actor = Actor::System;
    let role = Role {
        name: RoleName::parse("admin")?,
        permissions: Permission::ALL.iter().copied().collect(),
        grants: Vec::new(),
    };
    store
        .put_role(
            &role,
            AuditEvent::new(actor.clone(), Action::RoleCreate, "admin").detail("via", "init"),
        )
        .await?;
    let (account, token) = rampart_web::ops::create_user(
        store,
        actor.clone(),
        "admin",
        email,
        "Administrator",
        "person",
        None,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let binding = Binding {
        account: account.username.to_string(),
        role: role.name.clone(),
        expires_at: None,
    };
    store
        .bind_role(
            &binding,
            AuditEvent::new(actor, Action::GrantAdd, "admin").detail("role", "admin"),
        )
        .await?;
    Ok(format!("{}/enroll/{token}", config.web.public_origin()))
}

/// Writes a new file with `mode`, refusing to replace one.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// A fresh ed25519 key in OpenSSH's private key format (unencrypted; the file is 0600),
/// and its `.pub` line. Format: PROTOCOL.key in the OpenSSH sources.
pub fn openssh_ed25519(comment: &str) -> Result<(String, String)> {
    let mut seed = [0u8; 32];
    aws_lc_rs::rand::fill(&mut seed).map_err(|_| anyhow::anyhow!("the random generator failed"))?;
    let pair = aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(&seed)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let public: Vec<u8> = aws_lc_rs::signature::KeyPair::public_key(&pair)
        .as_ref()
        .to_vec();
    let mut pub_blob = Vec::new();
    put_string(&mut pub_blob, b"ssh-ed25519");
    put_string(&mut pub_blob, &public);
    let mut check = [0u8; 4];
    aws_lc_rs::rand::fill(&mut check)
        .map_err(|_| anyhow::anyhow!("the random generator failed"))?;
    let mut private = Vec::new();
    private.extend_from_slice(&check);
    private.extend_from_slice(&check);
    put_string(&mut private, b"ssh-ed25519");
    put_string(&mut private, &public);
    let mut both = seed.to_vec();
    both.extend_from_slice(&public);
    put_string(&mut private, &both);
    put_string(&mut private, comment.as_bytes());
    let mut pad = 1u8;
    while private.len() % 8 != 0 {
        private.push(pad);
        pad += 1;
    }
    let mut body = b"openssh-key-v1\0".to_vec();
    put_string(&mut body, b"none");
    put_string(&mut body, b"none");
    put_string(&mut body, b"");
    body.extend_from_slice(&1u32.to_be_bytes());
    put_string(&mut body, &pub_blob);
    put_string(&mut body, &private);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&body);
    let mut pem = String::from("-----BEGIN OPENSSH PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(70) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str("-----END OPENSSH PRIVATE KEY-----\n");
    let line = format!(
        "ssh-ed25519 {} {comment}\n",
        base64::engine::general_purpose::STANDARD.encode(&pub_blob)
    );
    Ok((pem, line))
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// `ssh-keygen -y` derives the public key from our private key file: OpenSSH reads it.
    #[test]
    fn openssh_reads_the_generated_key() {
        let (private, public) = openssh_ed25519("test key").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        write_new(&path, private.as_bytes(), 0o600).unwrap();
        let out = std::process::Command::new("ssh-keygen")
            .arg("-y")
            .arg("-f")
            .arg(&path)
            .output()
            .expect("ssh-keygen runs (apt-get install -y openssh-client)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let derived = String::from_utf8(out.stdout).unwrap();
        let key_part = |s: &str| s.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        assert_eq!(key_part(&derived), key_part(&public));
    }
}
