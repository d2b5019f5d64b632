//! What the cache is keyed by: a workload scope and an entry (docs/architecture.md, "The
//! agent's SVID cache").
//!
//! The scope is a function of the evidence a mint carries, so the SVID a caller gets is
//! always one the server issued for evidence equal to its own:
//! - a unix caller: everything the server re-verifies (uid, gids, executable path and
//!   digest). Callers with equal evidence share SVIDs; a caller with other facts (another
//!   binary, another uid) has its own, its own retries and its own remembered denials;
//! - a Kubernetes caller: the pod UID and the container ID. A restarted container has a new
//!   container ID, so it never inherits its predecessor's SVIDs.

use std::fmt;

use sworn_identity::Grant;
use sworn_proto::agent::{UnixEvidence, mint_item};

/// The evidence of one mint item.
pub type Evidence = mint_item::Evidence;

/// Whose SVIDs these are.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// A unix caller, by the facts the server re-verifies.
    Unix(UnixEvidence),
    /// A container of a pod on this node.
    Container {
        /// The pod UID.
        pod_uid: String,
        /// The container ID (runtime prefix removed).
        container_id: String,
    },
}

impl Scope {
    /// The scope of a mint carrying `evidence`.
    pub fn of(evidence: &Evidence) -> Self {
        match evidence {
            Evidence::Unix(u) => Scope::Unix(u.clone()),
            Evidence::K8s(k) => Scope::Container {
                pod_uid: k.pod_uid.clone(),
                container_id: k.container_id.clone(),
            },
        }
    }

    /// The pod this scope belongs to, for a Kubernetes caller.
    pub fn pod_uid(&self) -> Option<&str> {
        match self {
            Scope::Unix(_) => None,
            Scope::Container { pod_uid, .. } => Some(pod_uid),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Unix(u) => write!(f, "uid {} {}", u.uid, u.path),
            Scope::Container {
                pod_uid,
                container_id,
            } => {
                let short = container_id.get(..12).unwrap_or(container_id);
                write!(f, "pod {pod_uid} container {short}")
            }
        }
    }
}

/// One slot of the cache: a scope and an entry, or a pod's default identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    /// Whose.
    pub scope: Scope,
    /// Which identity.
    pub entry: Grant,
}

impl Key {
    /// The key of `entry` for `scope`.
    pub fn new(scope: Scope, entry: Grant) -> Self {
        Key { scope, entry }
    }
}

/// What rotation does with a scope whose SVIDs fall due.
#[derive(Debug)]
pub enum Renewal {
    /// Re-mint with this evidence.
    Mint(Evidence),
    /// The workload is gone: drop the scope's SVIDs (the reason is logged).
    Drop(String),
}

/// The mode-specific half of the cache: which workloads still exist, and the evidence to
/// renew their SVIDs with. Unix callers and pods differ only here.
pub trait Workloads: Send + Sync + fmt::Debug {
    /// Whether the workload of `scope` still exists. A scope that is not live is never
    /// served, and a mint that finishes for it is discarded.
    fn live(&self, scope: &Scope) -> bool;

    /// What to do when `scope`'s SVIDs fall due; `served` says whether any caller was handed
    /// one of them since it was issued.
    fn renewal(&self, scope: &Scope, served: bool) -> Renewal;
}
