//! sworn server: the CA, attestation verifiers, policy, datastore, the agent
//! API (mTLS) and the admin API (unix socket). See DESIGN.md §2–§7.

pub mod admin;
// pub mod audit;
pub mod config;
pub mod policy;
pub mod store;
pub mod telemetry;

pub mod ca;
pub mod clock;
