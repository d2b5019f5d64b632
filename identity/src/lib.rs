//! Domain types shared by the sworn server and agent.
//!
//! - [`SpiffeIdentity`]: a SPIFFE ID that passed the SPIFFE-ID spec *and* sworn's own rules
//!   (2048-byte limit, lower-case scheme and trust domain, the reserved `/sworn/` prefix).
//!   Parsing is delegated to the public `spiffe` crate; this crate only adds rules on top.
//! - [`check_x509_svid`]: the X509-SVID profile checklist (SPIFFE X509-SVID spec §4 and §5),
//!   applied by the server to every certificate it mints and by anyone who receives an SVID.
//!
//! - [`selector::Selector`]: the facts an entry requires of a workload (`unix:uid:1000`,
//!   `k8s:ns:default`), shared because the agent pre-matches and the server re-verifies.

mod id;
pub mod selector;
mod svid;

pub use id::{IdError, MAX_SPIFFE_ID_BYTES, RESERVED_SEGMENT, SpiffeIdentity, parse_trust_domain};
pub use spiffe::{SpiffeId, TrustDomain};
pub use svid::{CertRole, Expected, ProfileError, VerifiedSvid, check_x509_svid};
