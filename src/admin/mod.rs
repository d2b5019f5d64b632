//! The admin API on a 0600 unix socket (DESIGN.md §5); the `sworn-server`
//! CLI subcommands are its clients.

pub mod client;
pub mod socket;
