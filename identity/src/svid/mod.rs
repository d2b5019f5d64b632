//! The X509-SVID profile check
//! (<https://github.com/spiffe/spiffe/blob/main/standards/X509-SVID.md>).
//!
//! [`check_x509_svid`] accepts a leaf only if every item of the checklist holds:
//!
//! - §2: exactly one URI SAN, a valid SPIFFE ID (sworn's rules, reserved IDs allowed) with a
//!   non-empty path, equal to / in the trust domain the caller expects;
//! - §4.1: basicConstraints present with `cA=false`;
//! - §4.3: key usage present and critical, with `digitalSignature`, without `keyCertSign` and
//!   `cRLSign`;
//! - §4.4: extended key usage, when present, has both `serverAuth` and `clientAuth` (sworn
//!   issues both, and peers use SVIDs on both sides of mTLS);
//! - §5 / RFC 5280 §6, decided by webpki: the signatures chain to a root of the bundle (any
//!   of several roots sharing a subject), every certificate is valid at `now`, intermediates
//!   are CAs allowed to sign, the presented chain is in order, and no certificate outlives its
//!   issuer;
//! - RFC 5280 §4.2: no critical extension the checker does not understand.
//!
//! [`leaf_spiffe_id`] is the one place a SPIFFE ID is read out of a certificate.

mod cert;
mod check;
mod error;
mod leaf;
mod path;

#[cfg(feature = "tls")]
pub(crate) use check::check_for;
pub use check::{Expected, VerifiedSvid, check_x509_svid};
pub use error::{CertRole, ProfileError};
pub use leaf::{check_svid_leaf, leaf_spiffe_id};
#[cfg(feature = "tls")]
pub(crate) use path::{Purpose, usable_root};
