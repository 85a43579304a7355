//! One module per top-level subcommand.

pub mod net;
pub mod scrub;
