//! `rampart scrub`: owned by the scrubber work (issue 3); replaced there.

use std::process::ExitCode;

/// Arguments of `rampart scrub`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `rampart scrub`.
pub fn run(_args: Args) -> ExitCode {
    eprintln!("rampart scrub: not built yet");
    ExitCode::from(69)
}
