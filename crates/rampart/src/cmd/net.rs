//! `rampart net`: owned by the network checker work (issue 8); replaced there.

use std::process::ExitCode;

/// Subcommands of `rampart net`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run every check on an inventory directory.
    Check,
}

/// Runs `rampart net …`.
pub fn run(_command: Command) -> ExitCode {
    eprintln!("rampart net: not built yet");
    ExitCode::from(69)
}
