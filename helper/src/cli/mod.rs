//! The `sworn-helper` command line (DESIGN.md §8) and what each subcommand runs. Parsed once
//! into types at the edge; `main.rs` only installs tracing, calls [`run`] and maps errors to
//! exit codes.

mod args;
mod run;

pub use args::{
    Cli, ClientArgs, Command, FilesArgs, LogFormat, ProxyArgs, ProxyMode, ServerArgs, SourceArgs,
};
pub use run::{RunError, run};

/// Exit code for bad flags or values (EX_USAGE).
pub const EXIT_USAGE: i32 = 64;
/// Exit code when the Workload API gave no usable SVID in time (EX_UNAVAILABLE).
pub const EXIT_UNAVAILABLE: i32 = 69;
