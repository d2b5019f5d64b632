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
//! - [`Factor`] and [`outcome`]: the closed set of attestation factors every denial names,
//!   and the three outcomes of a decision (issued, denied, unavailable).
//! - [`dns::check_dns_names`]: the one rule for DNS SANs, used at entry creation and by the CA.
//! - [`leaf_spiffe_id`]: the one reader of a certificate's SPIFFE ID (its single URI SAN).
//! - [`tls`] (feature `tls`): the one rustls verifier for SPIFFE peers, on top of
//!   [`check_x509_svid`].
//! - [`fs::write_atomic`]: the one way a file (a key, a bundle) is replaced on disk.
//! - [`socket::bind_in_place`]: the one way a listening unix socket is put at its path.
//! - [`PodUid`] and [`ContainerId`]: the Kubernetes identifiers of a workload, one spelling each.
//! - [`AgentId`] (a node agent's SPIFFE ID, `/sworn/agent/...`) and [`EntryId`] (a
//!   registration entry's UUID), one spelling each; [`Grant`]: an entry or a pod's default
//!   identity, what a mint item asks for.
//! - [`pod::PodFacts`] (read from a Pod with the `k8s` feature) and [`unix::UnixFacts`]: the
//!   facts of a caller, and the one function from each to its selectors, used by both sides.
//! - [`evidence::K8sEvidence`]: what an agent sends for a Kubernetes caller, and (with the
//!   `proto` feature) its one encoding on the wire; [`evidence_bounds`]: the limit of every
//!   field an agent sends, and [`evidence_node`] (feature `proto`): node attestation
//!   requests, bounded before the server uses them.

mod agent_id;
pub mod dns;
mod entry_id;
pub mod evidence;
pub mod evidence_bounds;
#[cfg(feature = "proto")]
pub mod evidence_node;
#[cfg(feature = "proto")]
mod evidence_unix;
pub mod factor;
pub mod fs;
mod id;
pub mod outcome;
pub mod pod;
pub mod pod_id;
#[cfg(feature = "k8s")]
mod pod_k8s;
pub mod selector;
mod serial;
pub mod socket;
mod svid;
#[cfg(feature = "tls")]
pub mod tls;
pub mod unix;
mod uuid_text;

pub use agent_id::{AgentId, AgentIdError};
pub use entry_id::{EntryId, EntryIdError, Grant};
pub use factor::Factor;
pub use id::{IdError, MAX_SPIFFE_ID_BYTES, RESERVED_SEGMENT, SpiffeIdentity, parse_trust_domain};
pub use pod_id::{ContainerId, PodIdError, PodUid};
#[cfg(feature = "k8s")]
pub use pod_k8s::PodFactsError;
pub use serial::{MAX_SERIAL_OCTETS, Serial, SerialError};
pub use spiffe::{SpiffeId, TrustDomain};
pub use svid::{
    CertRole, Expected, ProfileError, VerifiedSvid, check_svid_leaf, check_x509_svid,
    leaf_spiffe_id,
};
