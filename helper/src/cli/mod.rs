//! The `sworn-helper` command line and what each subcommand runs. Parsed once
//! into types at the edge; `main.rs` only installs tracing, calls [`run`] and maps errors to
//! exit codes.

mod args;
mod run;

pub use args::{
    Cli, ClientArgs, Command, FilesArgs, LogFormat, ProxyArgs, ProxyMode, ServerArgs, SourceArgs,
};
pub use run::{EXIT_UNAVAILABLE, EXIT_USAGE, RunError, run};
