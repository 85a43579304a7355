//! One module per group of subcommands, and what they share.

pub mod access;
pub mod anomaly;
pub mod apps;
pub mod audit;
pub mod backup;
pub mod db;
pub mod logs;
pub mod net;
pub mod report;
pub mod requests;
pub mod review;
pub mod scrub;
pub mod ssh;
pub mod user;

use std::path::Path;

use std::io::IsTerminal;

use anyhow::Result;
use rampart_access::Permission;
use rampart_audit::{Action, Actor, AuditEvent, Outcome};
use rampart_identity::sealed::MasterKey;
use rampart_store::Store;
use rampart_web::ops::MfaRefusal;

use crate::config::{Config, DataDir};
use crate::{Exit, exit_usage};

/// Arguments of `rampart init` and `rampart up`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Email of the first administrator (account `admin`).
    #[arg(long, default_value = "admin@rampart.localhost")]
    pub admin_email: String,
}

/// Creates the data directory and prints the first admin's enrollment link once.
pub async fn init(dir: &DataDir, args: &InitArgs) -> Result<Exit> {
    let done = crate::init::run(dir, &args.admin_email).await?;
    if done.created {
        eprintln!("rampart: initialized {}", dir.0.display());
    } else {
        eprintln!(
            "rampart: {} already initialized; nothing changed",
            dir.0.display()
        );
    }
    if let Some(url) = done.enroll_url {
        println!(
            "First administrator: open this one-time link within 24 hours to set a password and an authenticator:"
        );
        println!("  {url}");
        println!("(It is shown only now. `rampart admin enroll-link admin` makes a new one.)");
    }
    Ok(Exit::Ok)
}

/// What a command that works on the store needs.
#[derive(Debug)]
pub struct Ctx {
    /// The data directory.
    pub dir: DataDir,
    /// The configuration.
    pub config: Config,
    /// The store.
    pub store: Store,
}

impl Ctx {
    /// Loads the configuration and opens the store.
    pub async fn open(dir: &DataDir, config_path: &Path) -> Result<Ctx> {
        if !config_path.exists() {
            return Err(exit_usage(format!(
                "{} does not exist: run `rampart init` (or pass --data-dir)",
                config_path.display()
            )));
        }
        let config = crate::load(config_path)?;
        let store = Store::open(&config.store_url(&dir.0)).await?;
        Ok(Ctx {
            dir: dir.clone(),
            config,
            store,
        })
    }

    /// The operator at this terminal, for audit records.
    pub fn actor(&self) -> Actor {
        let user = std::env::var("SUDO_USER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| "unknown".into());
        Actor::Cli(
            user.chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                .take(32)
                .collect(),
        )
    }
}

/// The person behind a sensitive change (restoring or pruning backups, approving access,
/// changing roles and grants): `--as` and a second-factor check within 5 minutes (ACC-2, BAK-5).
#[derive(Debug, clap::Args)]
pub struct Person {
    /// The rampart account doing this: it must hold the permission and have passed a
    /// second-factor check within the last 5 minutes (a web login counts), or give --code.
    #[arg(long = "as", value_name = "USER")]
    pub who: String,
    /// A current authenticator code of that account. Also read from RAMPART_MFA_CODE;
    /// asked for when needed on a terminal.
    #[arg(
        long,
        value_name = "CODE",
        env = "RAMPART_MFA_CODE",
        hide_env_values = true
    )]
    pub code: Option<String>,
}

/// Checks that `person` exists, is active, holds `permission` and has a second-factor check
/// within the last 5 minutes (asking for a code on a terminal when needed). Refusals are
/// audited and exit 64 with the reason.
pub async fn person_may(ctx: &Ctx, person: &Person, permission: Permission) -> Result<Actor> {
    let account = ctx
        .store
        .account_by_login(&person.who)
        .await?
        .ok_or_else(|| exit_usage(format!("no account is named {:?}", person.who)))?;
    let actor = Actor::User(account.username.to_string());
    // A store error refuses too (`?`): the check fails closed.
    if let Err(denial) =
        rampart_web::ops::check_permission(&ctx.store, &account, permission).await?
    {
        let ev = AuditEvent::new(actor, Action::PermissionDenied, permission.as_str())
            .outcome(Outcome::Denied)
            .detail("reason", denial.to_string())
            .detail("via", "cli");
        ctx.store.append_audit(&[ev]).await?;
        return Err(exit_usage(format!(
            "{} may not do this: {denial}",
            account.username
        )));
    }
    let master = crate::serve::read_key(&ctx.dir.master_key())?;
    let master = MasterKey::from_bytes(&master)
        .map_err(|e| exit_usage(format!("{}: {e}", ctx.dir.master_key().display())))?;
    let throttle = ctx.config.policy.throttle();
    let purpose = permission.as_str();
    let check = |code: Option<String>| {
        let (store, master, account, throttle) = (&ctx.store, &master, &account, &throttle);
        async move {
            rampart_web::ops::recent_mfa(
                store,
                master,
                throttle,
                account,
                code.as_deref(),
                purpose,
                None,
            )
            .await
        }
    };
    let mut result = check(person.code.clone()).await?;
    if result == Err(MfaRefusal::CodeNeeded) && std::io::stdin().is_terminal() {
        eprint!("authenticator code for {}: ", account.username);
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        result = check(Some(line.trim().to_owned())).await?;
    }
    result.map_err(|refusal| exit_usage(format!("{}: {refusal}", account.username)))?;
    Ok(actor)
}

/// A progress bar of `len` steps on stderr, drawn with `template` (indicatif's syntax), when
/// stderr is a terminal; none otherwise.
pub fn terminal_bar(len: u64, template: &str) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    Some(bar)
}

/// A table with a header row, for terminals.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_header(header.iter().copied());
    for row in rows {
        t.add_row(row);
    }
    t.to_string()
}
