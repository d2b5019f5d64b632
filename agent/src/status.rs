//! The agent's readiness, shared by `/readyz`, the Workload API and embedders
//!.
//!
//! The agent is *attested* once it holds a valid agent SVID and has received the server's
//! first Sync message (bundle and entries); only then can it answer workloads. Until then the
//! Workload API answers `Unavailable` and `/readyz` says "not attested". A join-token agent
//! whose certificate the server refuses is *rejected*: it keeps serving cached SVIDs but is
//! not ready, because it cannot recover without an operator.

use sworn_identity::AgentId;
use tokio::sync::watch;

/// A snapshot of the agent's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Readiness {
    /// The agent's SPIFFE ID once attested.
    pub agent_id: Option<AgentId>,
    /// Holds a currently valid agent SVID.
    pub attested: bool,
    /// Has received at least one Sync message.
    pub synced: bool,
    /// The server refuses the agent's certificate and the agent cannot re-attest by itself.
    pub rejected: bool,
    /// The agent stopped because of an unrecoverable error (its message).
    pub failed: Option<String>,
}

impl Readiness {
    /// Ready to serve workloads.
    pub fn is_ready(&self) -> bool {
        self.attested && self.synced && !self.rejected && self.failed.is_none()
    }
}

/// Shared, observable readiness.
#[derive(Debug, Default)]
pub struct Status(watch::Sender<Readiness>);

impl Status {
    /// Applies `f` to the state, notifying watchers if it changed.
    pub fn update(&self, f: impl FnOnce(&mut Readiness)) {
        self.0.send_if_modified(|r| {
            let before = r.clone();
            f(r);
            *r != before
        });
    }

    /// The current state.
    pub fn get(&self) -> Readiness {
        self.0.borrow().clone()
    }

    /// Watches the state.
    pub fn subscribe(&self) -> watch::Receiver<Readiness> {
        self.0.subscribe()
    }
}
