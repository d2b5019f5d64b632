//! The description of a refused peer that the verifier hands to the denial hook.

use std::sync::Arc;

use spiffe::SpiffeId;

/// Why a peer was refused: the shared verifier's reasons (`label()` gives the metric label:
/// `not_svid`, `unknown_trust_domain`, `chain`, `not_authorized`).
pub use sworn_identity::tls::Rejection as DenialReason;

/// A refused peer.
#[derive(Debug, Clone, PartialEq)]
pub struct Denial {
    /// The peer's SPIFFE ID, when its leaf carried one.
    pub peer_id: Option<SpiffeId>,
    /// Why it was refused.
    pub reason: DenialReason,
}

/// Called once per refused peer, from inside the handshake (keep it cheap).
pub type DenialHook = Arc<dyn Fn(&Denial) + Send + Sync>;
