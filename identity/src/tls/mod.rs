//! The one rustls verifier for SPIFFE peers (feature `tls`), used by the agent towards the
//! server and by the helper in both directions.
//!
//! Invariants:
//! - A peer is accepted only if its leaf names exactly one SPIFFE ID ([`crate::leaf_spiffe_id`]),
//!   a bundle is held for that ID's trust domain, the chain passes [`crate::check_x509_svid`]
//!   against that bundle (webpki path validation plus the X509-SVID profile, with the
//!   extended key usage of the peer's role), and the caller's authorizer allows the ID.
//!   Host names are never checked: the SPIFFE ID replaces them (X509-SVID §5).
//! - Roots are read from a [`TrustSource`] at every handshake, so a bundle rotation applies
//!   to the next handshake; several roots with the same subject may be trusted at once.
//! - Every refusal is a TLS alert chosen in one place ([`Rejection::certificate_error`]), and
//!   every decision can be observed (audit, metrics) through one callback.

mod provider;
mod rejection;
mod roots;
mod verifier;

pub use provider::provider;
pub use rejection::{PeerSide, Rejection, Verdict};
pub use roots::{NoUsableRoot, TrustRoots, TrustSource};
pub use verifier::{Authorize, HandshakeSignatures, Observer, SvidVerifier};
