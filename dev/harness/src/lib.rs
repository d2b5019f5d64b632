//! What a failing test leaves behind, and how tests wait (docs/architecture.md, testing).
//!
//! - [`RunDir`]: a temporary directory whose children write their stdout, stderr and logs
//!   into files ([`ChildOutput`]). Dropped normally it is removed; dropped while the thread
//!   panics (a failing test unwinding) it prints the last [`TAIL_LINES`] lines of every
//!   file it knows, each labelled with the child's name and path, and is kept.
//! - [`trace`]: in-process tracing (servers and agents running inside the test) kept in a
//!   bounded in-memory buffer, printed by the same report and saved into the kept directory.
//! - [`metrics`]: one series' value from a process's `/metrics` text.
//! - [`wait`]: bounded waits on a condition that fail naming the condition and the time
//!   spent, instead of fixed sleeps.
//!
//! Invariant: nothing here decides whether a test passed; the report is printed exactly
//! when a [`RunDir`] is dropped during a panic, so a passing test prints nothing.

pub mod metrics;
mod output;
mod report;
mod run_dir;
pub mod trace;
pub mod wait;

pub use output::{ChildOutput, LogFile, Logs};
pub use report::{TAIL_LINES, tail_lines};
pub use run_dir::RunDir;
pub use wait::{
    POLL, TimedOut, poll_blocking, poll_for, wait_for, wait_until, wait_until_async,
    wait_until_blocking,
};
