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

use anyhow::Result;
use rampart_audit::Actor;
use rampart_store::Store;

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
