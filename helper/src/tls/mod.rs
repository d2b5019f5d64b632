//! rustls configurations that follow the Workload API and rotate (issue 7, item 3).
//!
//! Invariants:
//! - Every handshake reads the *current* [`Material`] from a [`MaterialWatch`]: the
//!   certificate we present comes from a resolver, and the peer is checked against the current
//!   bundle of *its* trust domain, so a rotation applies to the next handshake and never
//!   touches established connections.
//! - A peer is accepted only if its leaf satisfies the X509-SVID profile (exactly one URI SAN
//!   holding a SPIFFE ID, not a CA; X509-SVID spec §4), its chain verifies to that bundle
//!   (RFC 5280 path validation by webpki, including validity dates and the EKU for the role),
//!   and the [`crate::Authorizer`] allows its ID. Hostnames are never checked: the SPIFFE ID
//!   replaces them (X509-SVID spec §5).
//! - Every refusal produces a TLS alert, one audit event (target `sworn_helper::audit`, with
//!   the peer's SPIFFE ID when it has one) and a call to the optional denial hook.
//! - TLS 1.3 only unless `danger_allow_tls12` is set; session resumption is off, because a
//!   resumed session skips the verifier and would outlive a bundle change or a revoked rule.

mod config;
mod material;
mod peer;
mod verify;
mod watch;

pub use config::{
    Denial, DenialHook, DenialReason, TlsError, TlsOptions, client_config, server_config,
};
pub use material::{Material, MaterialError};
pub use peer::{PeerError, peer_spiffe_id};
pub use watch::{MaterialUpdater, MaterialWatch};

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;

/// The crypto provider for everything in this crate (ring, as in the rest of the workspace);
/// passed explicitly so no process-wide default is installed behind the caller's back.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}
