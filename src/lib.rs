//! sworn server: the CA, attestation verifiers, policy, datastore, the agent
//! API (mTLS) and the admin API (unix socket). See docs/architecture.md, "Components" and "Server modules".

pub mod admin;
pub mod agentapi;
pub mod audit;
pub mod ca;
pub mod cli;
pub mod clock;
pub mod config;
pub mod join_token;
pub mod k8s;
pub mod policy;
pub mod server;
pub mod shared;
pub mod store;
pub mod telemetry;
