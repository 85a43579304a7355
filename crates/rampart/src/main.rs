//! `rampart`: one program that makes a SaaS security page true and proves it.
//!
//! This binary only parses the command line and wires the crates together; every decision
//! lives in a domain crate.

mod cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// rampart: access gateway, audit log, log store, backups and network checks that make a
/// security page true, with live evidence.
#[derive(Debug, Parser)]
#[command(name = "rampart", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Scrub personal data from text or JSON lines (LOG-2).
    Scrub(cmd::scrub::Args),
    /// Check network inventories: segmentation, exposure, provider peering (NET-*, ACC-4/5, EXT-2).
    #[command(subcommand)]
    Net(cmd::net::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Scrub(args) => cmd::scrub::run(args),
        Command::Net(command) => cmd::net::run(command),
    }
}
