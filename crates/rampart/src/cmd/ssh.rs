//! `rampart ssh …` (keys, the user CA, client config) and `rampart sessions …` (list,
//! replay and end SSH sessions).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use rampart_audit::{Action, AuditEvent};
use rampart_identity::sealed::MasterKey;
use rampart_ssh::{keys, reach, recording};

use super::{Ctx, table};
use crate::{Exit, exit_usage};

/// SSH bastion commands.
#[derive(Debug, clap::Subcommand)]
pub enum SshCommand {
    /// Registered public keys: one key belongs to one account only (ACC-1).
    #[command(subcommand)]
    Key(KeyCommand),
    /// Print the user CA's public key line for the targets' `TrustedUserCAKeys` file.
    Ca,
    /// Print a ready `~/.ssh/config` block with the targets an account may reach.
    Config {
        /// User name or email.
        user: String,
    },
    /// Set a target's static login key: the fallback for a target that does not trust the
    /// user CA (sealed at rest; its public half goes in the target's authorized_keys).
    StaticKey {
        /// Target name.
        target: String,
        /// OpenSSH private key file (unencrypted); omit with --remove.
        file: Option<PathBuf>,
        /// Remove the target's static key.
        #[arg(long)]
        remove: bool,
    },
    /// Forget a target's pinned host key after a planned key change (the next connection
    /// pins the new one).
    Unpin {
        /// Target name.
        target: String,
    },
}

/// Key commands.
#[derive(Debug, clap::Subcommand)]
pub enum KeyCommand {
    /// Register a public key (an `authorized_keys` line, e.g. `~/.ssh/id_ed25519.pub`).
    Add {
        /// User name or email.
        user: String,
        /// File with the public key; `-` reads standard input.
        file: PathBuf,
    },
    /// List registered keys.
    List {
        /// Only this account's keys.
        user: Option<String>,
    },
    /// Remove a key by its fingerprint (`SHA256:…`).
    Remove {
        /// The fingerprint.
        fingerprint: String,
    },
}

/// Session commands.
#[derive(Debug, clap::Subcommand)]
pub enum SessionsCommand {
    /// List SSH sessions (live ones, or the last 30 days with --all).
    List {
        /// Include ended sessions of the last 30 days.
        #[arg(long)]
        all: bool,
    },
    /// Replay a session's recording in this terminal (or print it as asciicast v2 with --raw,
    /// for `asciinema play`).
    Play {
        /// Session id.
        id: String,
        /// Print the asciicast v2 text instead of replaying it.
        #[arg(long)]
        raw: bool,
        /// Replay speed factor.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
    },
    /// End a live session: its client sees the connection close.
    Kill {
        /// Session id.
        id: String,
    },
}

/// Runs an `ssh` command.
pub async fn run(ctx: &Ctx, command: SshCommand) -> Result<Exit> {
    match command {
        SshCommand::Key(KeyCommand::Add { user, file }) => {
            let text = if file.as_os_str() == "-" {
                let mut s = String::new();
                std::io::Read::read_to_string(
                    &mut std::io::Read::take(std::io::stdin(), 16 * 1024),
                    &mut s,
                )?;
                s
            } else {
                std::fs::read_to_string(&file)
                    .map_err(|e| exit_usage(format!("cannot read {}: {e}", file.display())))?
            };
            let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            let key = keys::parse_public(line)
                .map_err(|e| exit_usage(format!("{}: {e}", file.display())))?;
            let comment = line
                .split_whitespace()
                .nth(2)
                .map(|c| rampart_scrub::scrub_default(&c.chars().take(64).collect::<String>()))
                .unwrap_or_default();
            let account = account(ctx, &user).await?;
            let fp = keys::fingerprint(&key);
            let ev = AuditEvent::new(ctx.actor(), Action::SshKeyAdd, account.username.to_string())
                .detail("fingerprint", fp.clone())
                .detail("algorithm", key.algorithm().to_string());
            ctx.store
                .add_ssh_key(&account.id, &fp, &keys::public_line(&key), &comment, ev)
                .await
                .map_err(|e| exit_usage(e.to_string()))?;
            println!("registered {fp} to {}", account.username);
        }
        SshCommand::Key(KeyCommand::List { user }) => {
            let id = match user {
                Some(u) => Some(account(ctx, &u).await?.id),
                None => None,
            };
            let rows = ctx
                .store
                .ssh_keys(id.as_deref())
                .await?
                .into_iter()
                .map(|k| {
                    vec![
                        k.username,
                        k.fingerprint,
                        k.comment,
                        time(k.created_us),
                        k.last_used_us.map(time).unwrap_or_else(|| "never".into()),
                    ]
                })
                .collect();
            println!(
                "{}",
                table(
                    &["account", "fingerprint", "comment", "added", "last used"],
                    rows
                )
            );
        }
        SshCommand::Key(KeyCommand::Remove { fingerprint }) => {
            let owner = ctx
                .store
                .ssh_key(&fingerprint)
                .await?
                .map(|k| k.username)
                .ok_or_else(|| exit_usage(format!("no key {fingerprint} is registered")))?;
            let ev = AuditEvent::new(ctx.actor(), Action::SshKeyRemove, owner)
                .detail("fingerprint", fingerprint.clone());
            ctx.store
                .remove_ssh_key(&fingerprint, ev)
                .await
                .map_err(|e| exit_usage(e.to_string()))?;
            println!("removed {fingerprint}");
        }
        SshCommand::Ca => {
            let ca = read_private(&ctx.dir.ssh_user_ca())?;
            println!(
                "# rampart user CA. On each target: save the next line as /etc/ssh/rampart_user_ca.pub and add"
            );
            println!("#   TrustedUserCAKeys /etc/ssh/rampart_user_ca.pub");
            println!(
                "# to sshd_config. Certificates name the login as principal and rampart:PERSON:SESSION as key id."
            );
            println!("{} rampart-user-ca", keys::public_line(ca.public_key()));
        }
        SshCommand::Config { user } => {
            let account = account(ctx, &user).await?;
            let person = account.username.to_string();
            let roles = ctx.store.roles().await?;
            let bindings = ctx.store.bindings(Some(&person)).await?;
            let targets = ctx.store.targets().await?;
            let pairs: Vec<_> = bindings
                .iter()
                .filter_map(|b| {
                    roles
                        .iter()
                        .find(|r| r.name == b.role)
                        .map(|r| (b.clone(), r))
                })
                .collect();
            let who = rampart_access::Principal {
                name: person.clone(),
                active: account.active,
                mfa_satisfied: true,
            };
            let reach = reach::reachable(&who, &pairs, &targets, jiff::Timestamp::now());
            let port = ctx
                .config
                .ssh
                .public_port
                .or(ctx.config.ssh.listen.map(|a| a.port()))
                .unwrap_or(22);
            print!(
                "{}",
                reach::ssh_config(&person, &ctx.config.web.public_host, port, &reach)
            );
        }
        SshCommand::StaticKey {
            target,
            file,
            remove,
        } => {
            if !ctx
                .store
                .targets()
                .await?
                .iter()
                .any(|t| t.name.as_str() == target)
            {
                return Err(exit_usage(format!("no target {target:?}")));
            }
            let sealed = match (file, remove) {
                (Some(file), false) => {
                    let key = read_private(&file)?;
                    let master = std::fs::read(ctx.dir.master_key()).with_context(|| {
                        format!("cannot read {}", ctx.dir.master_key().display())
                    })?;
                    let master =
                        MasterKey::from_bytes(&master).map_err(|e| exit_usage(e.to_string()))?;
                    let text =
                        keys::private_to_text(&key).map_err(|e| exit_usage(e.to_string()))?;
                    Some(
                        master
                            .seal(
                                &rampart_ssh::server::static_key_context(&target),
                                text.as_bytes(),
                            )
                            .map_err(|e| exit_usage(e.to_string()))?,
                    )
                }
                (None, true) => None,
                _ => return Err(exit_usage("give a key file, or --remove")),
            };
            let ev = AuditEvent::new(ctx.actor(), Action::TargetAdd, target.clone()).detail(
                "static_key",
                if sealed.is_some() { "set" } else { "removed" },
            );
            ctx.store
                .set_ssh_static_key(&target, sealed.as_deref(), ev)
                .await?;
            println!(
                "{} the static key of {target}",
                if sealed.is_some() { "set" } else { "removed" }
            );
        }
        SshCommand::Unpin { target } => {
            let ev = AuditEvent::new(ctx.actor(), Action::SshHostKey, target.clone())
                .detail("unpinned", "by operator");
            ctx.store
                .unpin_host_key(&target, ev)
                .await
                .map_err(|e| exit_usage(e.to_string()))?;
            println!("forgot the host key of {target}; the next connection pins the one it shows");
        }
    }
    Ok(Exit::Ok)
}

/// Runs a `sessions` command.
pub async fn run_sessions(ctx: &Ctx, command: SessionsCommand) -> Result<Exit> {
    match command {
        SessionsCommand::List { all } => {
            let since = jiff::Timestamp::now().as_microsecond() - 30 * 86_400 * 1_000_000;
            let rows = ctx
                .store
                .ssh_sessions(since, !all, 1000)
                .await?
                .into_iter()
                .map(|s| {
                    vec![
                        s.id,
                        s.account,
                        format!("{}@{}", s.login, s.target),
                        s.environment,
                        s.source,
                        time(s.started_us),
                        s.ended_us.map(time).unwrap_or_else(|| "live".into()),
                        format!("{} / {}", s.bytes_up, s.bytes_down),
                        s.exit_status.map(|c| c.to_string()).unwrap_or_default(),
                    ]
                })
                .collect();
            println!(
                "{}",
                table(
                    &[
                        "id",
                        "account",
                        "login@target",
                        "env",
                        "source",
                        "started",
                        "ended",
                        "bytes up/down",
                        "exit"
                    ],
                    rows
                )
            );
        }
        SessionsCommand::Play { id, raw, speed } => {
            let master = std::fs::read(ctx.dir.master_key())
                .with_context(|| format!("cannot read {}", ctx.dir.master_key().display()))?;
            let master = MasterKey::from_bytes(&master).map_err(|e| exit_usage(e.to_string()))?;
            let cast = recording::open(&ctx.dir.0.join("recordings"), &id, &master)
                .map_err(|e| exit_usage(e.to_string()))?;
            let ev = AuditEvent::new(
                ctx.actor(),
                Action::AuditExport,
                format!("ssh-recording:{id}"),
            );
            ctx.store.append_audit(&[ev]).await?;
            if raw {
                print!("{cast}");
            } else {
                play(&cast, speed.clamp(0.1, 100.0))?;
            }
        }
        SessionsCommand::Kill { id } => {
            let ev = AuditEvent::new(ctx.actor(), Action::SshSessionKill, id.clone());
            ctx.store
                .kill_ssh_session(&id, ev)
                .await
                .map_err(|e| exit_usage(e.to_string()))?;
            println!("asked the bastion to end session {id}");
        }
    }
    Ok(Exit::Ok)
}

/// Writes the output events with their timing (pauses capped at two seconds).
fn play(cast: &str, speed: f64) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let mut last = 0.0f64;
    for line in cast.lines().skip(1) {
        let Ok(serde_json::Value::Array(ev)) = serde_json::from_str::<serde_json::Value>(line)
        else {
            continue;
        };
        let (Some(t), Some(code), Some(data)) = (
            ev.first().and_then(|v| v.as_f64()),
            ev.get(1).and_then(|v| v.as_str()),
            ev.get(2).and_then(|v| v.as_str()),
        ) else {
            continue;
        };
        if code != "o" {
            continue;
        }
        let pause = ((t - last) / speed).clamp(0.0, 2.0);
        last = t;
        std::thread::sleep(std::time::Duration::from_secs_f64(pause));
        out.write_all(data.as_bytes())?;
        out.flush()?;
    }
    Ok(())
}

async fn account(ctx: &Ctx, user: &str) -> Result<rampart_store::Account> {
    ctx.store
        .account_by_login(user)
        .await?
        .ok_or_else(|| exit_usage(format!("no account {user:?}")))
}

fn read_private(path: &std::path::Path) -> Result<rampart_ssh::PrivateKey> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        exit_usage(format!(
            "cannot read {}: {e}; run `rampart init`",
            path.display()
        ))
    })?;
    keys::private_from_text(&text).map_err(|e| exit_usage(format!("{}: {e}", path.display())))
}

fn time(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}
