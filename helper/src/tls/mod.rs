//! rustls configurations that follow the Workload API and rotate.
//!
//! Invariants:
//! - Every handshake reads the *current* [`Material`] from a [`MaterialWatch`]: the
//!   certificate we present comes from a resolver, and the peer is checked against the current
//!   bundle of *its* trust domain, so a rotation applies to the next handshake and never
//!   touches established connections.
//! - A peer is checked by the workspace's one SPIFFE verifier (`sworn_identity::tls`): its
//!   leaf names one SPIFFE ID, its chain verifies to that trust domain's bundle (webpki, with
//!   the extended key usage for its role) and satisfies the X509-SVID profile, and the
//!   [`crate::Authorizer`] allows its ID. Hostnames are never checked: the SPIFFE ID replaces
//!   them (X509-SVID spec §5).
//! - Every refusal produces a TLS alert, one audit event (target `sworn_helper::audit`, with
//!   the peer's SPIFFE ID when it has one) and a call to the optional denial hook.
//! - TLS 1.3 only unless `danger_allow_tls12` is set; session resumption is off, because a
//!   resumed session skips the verifier and would outlive a bundle change or a revoked rule.

mod config;
mod denial;
mod material;
mod options;
mod verify;
mod watch;

pub use config::{TlsError, client_config, server_config};
pub use denial::{Denial, DenialHook, DenialReason};
pub use material::{Material, MaterialError};
pub use options::TlsOptions;
pub use sworn_identity::tls::provider;
pub use watch::{MaterialUpdater, MaterialWatch};
