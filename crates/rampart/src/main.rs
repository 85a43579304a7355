//! `rampart`: one program that makes a SaaS security page true and proves it.
//!
//! This binary parses the command line, loads and checks `rampart.toml`, and wires the
//! crates together; every decision lives in a domain crate. Exit codes: 0 success, 1 a
//! failed check (a broken audit chain, violations), 64 a usage or configuration error.

mod cmd;
mod config;
mod init;
mod logs;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{Config, DataDir};

// The front door allocates per request (headers, bodies); mimalloc keeps that off the
// request path's profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// rampart: access gateway, audit log, log store, backups and network checks that make a
/// security page true, with live evidence.
#[derive(Debug, Parser)]
#[command(name = "rampart", version, about, long_about = None)]
struct Cli {
    /// Data directory: configuration, keys, certificates, the SQLite database.
    #[arg(
        long,
        global = true,
        env = "RAMPART_DATA_DIR",
        default_value = "./rampart-data"
    )]
    data_dir: PathBuf,
    /// Configuration file (default: rampart.toml in the data directory).
    #[arg(long, global = true, env = "RAMPART_CONFIG")]
    config: Option<PathBuf>,
    /// Format of rampart's own operational log on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Initialize the data directory if needed, then serve. The first command to run.
    Up(cmd::InitArgs),
    /// Create the data directory: configuration, keys, certificate, database, first admin.
    Init(cmd::InitArgs),
    /// Serve the front door (the data directory must exist).
    Serve,
    /// Check the configuration file and exit (64 with one sentence when it is wrong).
    CheckConfig,
    /// Print the configuration reference (docs/config.md) generated from the template.
    ConfigReference,
    /// Manage accounts (ACC-1, ACC-2).
    #[command(subcommand)]
    User(cmd::user::UserCommand),
    /// Administrative helpers.
    #[command(subcommand)]
    Admin(cmd::user::AdminCommand),
    /// Manage targets: the servers and tools reached through rampart.
    #[command(subcommand)]
    Target(cmd::access::TargetCommand),
    /// Manage roles: permissions and target grants.
    #[command(subcommand)]
    Role(cmd::access::RoleCommand),
    /// Grant roles to accounts, with optional expiry (ACC-3, ACC-6).
    #[command(subcommand)]
    Grant(cmd::access::GrantCommand),
    /// Access requests: ask for a role for a few hours, approved by someone else (EXT-1).
    #[command(subcommand)]
    Access(cmd::requests::AccessCommand),
    /// Access review campaigns: keep or revoke every grant that reaches a target (ACC-7).
    #[command(subcommand)]
    Review(cmd::review::ReviewCommand),
    /// Anomaly rules over the audit log: failed-login bursts, new addresses, first targets (ACC-7).
    #[command(subcommand)]
    Anomaly(cmd::anomaly::AnomalyCommand),
    /// Read, verify and export the audit log (LOG-3).
    #[command(subcommand)]
    Audit(cmd::audit::AuditCommand),
    /// The security page with live evidence for every control.
    Report(cmd::report::ReportArgs),
    /// Scrub personal data from text or JSON lines (LOG-2).
    Scrub(cmd::scrub::Args),
    /// Check network inventories: segmentation, exposure, provider peering (NET-*, ACC-4/5, EXT-2).
    #[command(subcommand)]
    Net(cmd::net::Command),
    /// Application logs: source tokens, ingest, search, tail (LOG-1, LOG-2, LOG-5).
    #[command(subcommand)]
    Logs(cmd::logs::LogsCommand),
    /// Internal tools behind the front door: list them, issue app tokens for API clients.
    #[command(subcommand)]
    Apps(cmd::apps::AppsCommand),
    /// Database backups: run, list, plan, prune, pin, restore, verify, keygen (BAK-1..5).
    #[command(subcommand)]
    Backup(cmd::backup::BackupCommand),
    /// The SSH bastion: registered keys, the user CA line for targets, client config.
    #[command(subcommand)]
    Ssh(cmd::ssh::SshCommand),
    /// SSH sessions: list live ones, replay recordings, end one (LOG-3).
    #[command(subcommand)]
    Sessions(cmd::ssh::SessionsCommand),
    /// The PostgreSQL gateway: database tokens, upstream credentials, sessions, changes (LOG-4).
    #[command(subcommand)]
    Db(cmd::db::DbCommand),
}

/// How a command ended, when it did not fail outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success.
    Ok,
    /// A check found a problem (exit 1).
    Failed,
}

/// An error that is the operator's to fix: printed as one sentence, exit 64.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Wraps a sentence as an exit-64 error.
pub fn exit_usage(sentence: impl Into<String>) -> anyhow::Error {
    UsageError(sentence.into()).into()
}

fn main() -> ExitCode {
    // Before anything builds a TLS config: a dependency enabling rustls' ring feature
    // would otherwise make the default provider ambiguous.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Scrub(args) => return cmd::scrub::run(args),
        Command::Net(command) => return cmd::net::run(command),
        Command::Backup(cmd::backup::BackupCommand::Keygen { out }) => {
            return cmd::backup::keygen(&out);
        }
        Command::ConfigReference => {
            print!("{}", config::reference());
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rampart: cannot start the async runtime: {e}");
            return ExitCode::from(70);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(Exit::Ok) => ExitCode::SUCCESS,
        Ok(Exit::Failed) => ExitCode::from(1),
        Err(e) => {
            if let Some(usage) = e.downcast_ref::<UsageError>() {
                eprintln!("rampart: {usage}");
                ExitCode::from(64)
            } else {
                eprintln!("rampart: {e:#}");
                ExitCode::from(1)
            }
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<Exit> {
    let dir = DataDir(cli.data_dir.clone());
    let config_path = cli.config.clone().unwrap_or_else(|| dir.config());
    match cli.command {
        Command::Up(args) => {
            if !dir.config().exists() || !dir.master_key().exists() {
                cmd::init(&dir, &args).await?;
            }
            let config = load(&config_path)?;
            serve::run(&dir, config, rampart_identity::password::Cost::OWASP).await
        }
        Command::Init(args) => cmd::init(&dir, &args).await,
        Command::Serve => {
            let config = load(&config_path)?;
            serve::run(&dir, config, rampart_identity::password::Cost::OWASP).await
        }
        Command::CheckConfig => {
            load(&config_path)?;
            println!("{}: ok", config_path.display());
            Ok(Exit::Ok)
        }
        command => {
            let ctx = cmd::Ctx::open(&dir, &config_path).await?;
            let result = match command {
                Command::User(c) => cmd::user::run(&ctx, c).await,
                Command::Admin(c) => cmd::user::run_admin(&ctx, c).await,
                Command::Target(c) => cmd::access::run_target(&ctx, c).await,
                Command::Role(c) => cmd::access::run_role(&ctx, c).await,
                Command::Grant(c) => cmd::access::run_grant(&ctx, c).await,
                Command::Access(c) => cmd::requests::run(&ctx, c).await,
                Command::Review(c) => cmd::review::run(&ctx, c).await,
                Command::Anomaly(c) => cmd::anomaly::run(&ctx, c).await,
                Command::Audit(c) => cmd::audit::run(&ctx, c).await,
                Command::Report(args) => cmd::report::run(&ctx, args).await,
                Command::Logs(c) => cmd::logs::run(&ctx, c).await,
                Command::Apps(c) => cmd::apps::run(&ctx, c).await,
                Command::Backup(c) => cmd::backup::run(&ctx, c).await,
                Command::Ssh(c) => cmd::ssh::run(&ctx, c).await,
                Command::Sessions(c) => cmd::ssh::run_sessions(&ctx, c).await,
                Command::Db(c) => cmd::db::run(&ctx, c).await,
                _ => Ok(Exit::Ok),
            };
            // A clean close lets SQLite fold its WAL back into the database file.
            ctx.store.close().await;
            result
        }
    }
}

/// Loads the configuration; any problem is an exit-64 sentence.
fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|e| exit_usage(e.0))
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RAMPART_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,rampart=info,rampart_web=info,rampart_store=info")
    });
    // rampart's own log passes the scrubber too (LOG-2): an error message may quote input.
    let writer = match rampart_scrub::Scrubber::new(&rampart_scrub::ScrubConfig::default(), None) {
        Ok(scrubber) => {
            rampart_scrub::ScrubMakeWriter::new(std::sync::Arc::new(scrubber), std::io::stderr)
        }
        Err(e) => {
            eprintln!("rampart: cannot build the log scrubber: {e}");
            return;
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
