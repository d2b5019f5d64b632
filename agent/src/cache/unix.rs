//! The unix half of the cache: callers identified by the facts the server re-verifies
//! (docs/architecture.md, "The agent's SVID cache").
//!
//! The agent has no signal that a unix caller is gone, so a scope is live while its entry
//! is, and rotation keeps only what is used: an SVID that no caller was handed since it was
//! issued is dropped when it falls due instead of renewed. An open stream is handed every
//! renewal, so it keeps its SVIDs; a caller that asks again after the drop is minted anew.

use super::scope::{Evidence, Renewal, Scope, Workloads};

/// Unix callers of a join-token agent.
#[derive(Debug, Default)]
pub struct UnixCallers;

impl Workloads for UnixCallers {
    fn live(&self, scope: &Scope) -> bool {
        matches!(scope, Scope::Unix(_))
    }

    fn renewal(&self, scope: &Scope, served: bool) -> Renewal {
        match scope {
            Scope::Unix(evidence) if served => Renewal::Mint(Evidence::Unix(evidence.clone())),
            Scope::Unix(_) => Renewal::Drop("no caller asked for it since its last renewal".into()),
            Scope::Container { .. } => Renewal::Drop("a pod's svid on a unix agent".into()),
        }
    }
}
