//! The workload SVID cache, one for unix callers and pods (docs/architecture.md, "The
//! agent's SVID cache").
//!
//! Keyed by (workload scope, entry). On a miss the agent makes a key, sends a CSR with the
//! caller's evidence to `MintX509SVIDs` and caches the result; rotation (at half-life with
//! jitter) re-mints with the evidence of the same scope. Invariants:
//! - a private key never leaves the agent: only CSRs go to the server;
//! - a key has at most one mint in flight, shared by its callers; other keys never wait on
//!   it, and no lock is held across a call;
//! - items waiting to be minted, first mints and rotations alike, share requests of at most
//!   256 items, with at most 4 requests in flight on the one channel to the server;
//! - every change (new SVID, rotation, removal, expiry) is published to the scope whose key
//!   changed (`watch`), which that caller's open Workload API streams follow and answer with
//!   the complete state; other callers' streams are not woken;
//! - an entry gone from the Sync state, and a workload gone from the node, lose their SVIDs
//!   at once;
//! - only the server's `Denied` for an item drops its SVID (and is remembered for a while).
//!   `Unavailable` (the server, its datastore or the call failed) keeps a valid SVID until
//!   its `notAfter`, never past it, and retries that item on its own backoff
//!   (from 1 s, doubling, capped at min(5 s, TTL/10)); a caller that needs a mint and has nothing valid gets
//!   `Unavailable`, never `PermissionDenied`.

mod entitlement;
mod mint;
mod queue;
mod rotation;
mod scope;
mod sender;
mod state;
mod svid;
mod svid_cache;
mod unix;
mod watch;

pub use entitlement::EntryIndex;
pub use scope::{Evidence, Renewal, Scope, Workloads};
pub use svid::WorkloadSvid;
pub use svid_cache::SvidCache;
pub use unix::UnixCallers;
