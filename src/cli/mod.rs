//! The `sworn-server` command line (docs/architecture.md, "Command line"). `run` starts
//! the server; every other subcommand is a client of the admin socket.

mod args;
mod commands;
mod output;

pub use args::*;
pub use commands::{CliError, execute, exit_code};
pub use output::write_atomic;
