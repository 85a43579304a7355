//! `rampart net`: network segmentation checks on an inventory directory (issue 8).
//!
//! The configuration comes from `--config FILE` (a `rampart.toml` whose `[network]` section
//! is used, or a bare `network.toml`), else from `DIR/network.toml`, else defaults.
//! Exit codes: 0 clean, 1 violations, 64 bad input or usage.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rampart_network::{
    CONFIG_FILE_NAME, CellState, Inventory, NetworkConfig, PortRange, Protocol, TrafficSet, check,
    explain, load_inventory, render_matrix_table, render_sarif, render_table, render_verdict,
};

/// Exit code for violations.
const VIOLATIONS: u8 = 1;
/// Exit code for bad input or usage (sysexits `EX_USAGE`).
const BAD_INPUT: u8 = 64;

/// Subcommands of `rampart net`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run every check (NET-1, NET-2, NET-3, ACC-4, ACC-5, EXT-2, CIS hygiene); exit 1 on violations.
    Check(Common),
    /// Show which flows exist between environments, the internet and providers; exit 1 on violations.
    Matrix(Common),
    /// Explain, hop by hop, whether one party reaches another on a port.
    Explain(ExplainArgs),
}

/// What every subcommand takes.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// Inventory directory: AWS CLI JSON, `terraform show -json` output, rampart TOML.
    dir: Option<PathBuf>,
    /// Config file: a rampart.toml (its [network] section) or a network.toml.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// Arguments of `rampart net explain`.
#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    common: Common,
    /// Source: endpoint, instance or database id, Name tag, address, provider name or `internet`.
    #[arg(long)]
    from: String,
    /// Destination, named the same way.
    #[arg(long)]
    to: String,
    /// Destination port or range (`22`, `1024-65535`); all ports when omitted.
    #[arg(long)]
    port: Option<String>,
    /// Protocol: tcp, udp, icmp, a number, or -1 for all.
    #[arg(long, default_value = "tcp")]
    protocol: String,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// A table for people.
    Table,
    /// The full report as JSON.
    Json,
    /// SARIF 2.1.0 for code-scanning UIs.
    Sarif,
}

/// Runs `rampart net …`.
pub fn run(command: Command) -> ExitCode {
    match execute(command) {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("rampart net: {message}");
            ExitCode::from(BAD_INPUT)
        }
    }
}

fn execute(command: Command) -> Result<u8, String> {
    match command {
        Command::Check(common) => {
            let (inv, cfg, dir) = load(&common)?;
            let report = check(&inv, &cfg);
            let text = match common.format {
                Format::Table => render_table(&report),
                Format::Json => serde_json::to_string_pretty(&report).map_err(json_error)?,
                Format::Sarif => {
                    serde_json::to_string_pretty(&render_sarif(&report, &artifact(&dir, &inv)))
                        .map_err(json_error)?
                }
            };
            println!("{}", text.trim_end());
            Ok(if report.has_violations() {
                VIOLATIONS
            } else {
                0
            })
        }
        Command::Matrix(common) => {
            let (inv, cfg, dir) = load(&common)?;
            let report = check(&inv, &cfg);
            let text = match common.format {
                Format::Table => render_matrix_table(&report.matrix),
                Format::Json => serde_json::to_string_pretty(&report.matrix).map_err(json_error)?,
                Format::Sarif => {
                    serde_json::to_string_pretty(&render_sarif(&report, &artifact(&dir, &inv)))
                        .map_err(json_error)?
                }
            };
            println!("{}", text.trim_end());
            let violation = report
                .matrix
                .cells
                .iter()
                .any(|c| c.state == CellState::Violation);
            Ok(if violation { VIOLATIONS } else { 0 })
        }
        Command::Explain(args) => {
            let (inv, cfg, _) = load(&args.common)?;
            let protocol = Protocol::parse(&args.protocol).map_err(|e| e.to_string())?;
            let ports = match &args.port {
                Some(p) => {
                    PortRange::parse(p).ok_or_else(|| format!("not a port or port range: {p:?}"))?
                }
                None => PortRange::all(),
            };
            let wanted = TrafficSet::of(protocol, ports);
            let verdict =
                explain(&inv, &cfg, &args.from, &args.to, &wanted).map_err(|e| e.to_string())?;
            let text = match args.common.format {
                Format::Table => render_verdict(&verdict),
                Format::Json => serde_json::to_string_pretty(&verdict).map_err(json_error)?,
                Format::Sarif => {
                    return Err("--format sarif is for `check` and `matrix`".to_owned());
                }
            };
            println!("{}", text.trim_end());
            // An answer, reachable or not, is a success; scripts read the verdict from JSON.
            Ok(0)
        }
    }
}

/// Reads the config, then the inventory; every failure is the user's input.
fn load(common: &Common) -> Result<(Inventory, NetworkConfig, PathBuf), String> {
    let beside = common.dir.as_ref().map(|d| d.join(CONFIG_FILE_NAME));
    let cfg = match (&common.config, &beside) {
        (Some(path), _) => NetworkConfig::load(path).map_err(|e| e.to_string())?,
        (None, Some(path)) if path.is_file() => {
            NetworkConfig::load(path).map_err(|e| e.to_string())?
        }
        _ => NetworkConfig::default(),
    };
    let dir = common
        .dir
        .clone()
        .or_else(|| cfg.inventory.clone())
        .ok_or("no inventory directory: give DIR or set network.inventory in the config")?;
    let inv = load_inventory(&dir).map_err(|e| e.to_string())?;
    Ok((inv, cfg, dir))
}

/// Where SARIF results point when a finding names no file: the first inventory file.
fn artifact(dir: &Path, inv: &Inventory) -> String {
    inv.files
        .first()
        .cloned()
        .unwrap_or_else(|| dir.display().to_string())
}

fn json_error(e: serde_json::Error) -> String {
    format!("cannot render JSON: {e}")
}
