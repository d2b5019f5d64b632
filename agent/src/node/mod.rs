//! Node attestation, client side (docs/architecture.md, "Node attestation").
//!
//! The agent proves which node it runs on with a one-time join token (unix mode) or its pod's
//! projected service-account token (Kubernetes) and receives an agent SVID for a key it made
//! itself. Invariants:
//! - the key is generated on the agent; key and SVID are persisted in `data_dir` (key 0600,
//!   atomic writes), so a join-token agent restarts without a new token while its SVID is
//!   valid;
//! - the SVID is renewed at half-life with jitter: `RenewAgent` over mTLS for join-token agents
//!   (the token is spent), a full re-attestation with a freshly read token for Kubernetes;
//! - the new SVID reaches the server on a new channel; the old one serves in-flight calls.

mod attest;
mod renewal;
mod store;
mod svid;

pub use attest::NodeError;
pub(crate) use renewal::NodeTask;
pub use store::NodeStore;
