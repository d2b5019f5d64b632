//! The certificate authority and X509-SVID minting (docs/architecture.md, "The CA").
//!
//! - [`CertificateAuthority::load_or_init`] opens `<data_dir>/ca/` or creates it on first
//!   start; a missing or corrupt store is never silently replaced by a fresh CA.
//! - Each CA generation is an ECDSA P-256 self-signed root (default) or an intermediate under
//!   an upstream CA ([`UpstreamConfig`]). Keys are 0600 files written atomically.
//! - [`CertificateAuthority::rotate_if_due`] prepares the next generation when 1/2 of the
//!   active CA's life remains (publishing it in the bundle at once), activates it when 1/6
//!   remains, and drops old roots once nothing they signed can be valid;
//!   [`CertificateAuthority::subscribe`] streams bundle changes.
//! - [`CertificateAuthority::run_rotation`] is the one loop that calls it, woken by the clock;
//!   a [`RotationObserver`] publishes each step (the server's writes the bundle file).
//! - [`CertificateAuthority::mint_x509_svid`] builds SVIDs from policy; the CSR contributes its
//!   key and proof of possession only. Every minted certificate passes the X509-SVID profile
//!   check before it is returned.
//!
//! Private keys are zeroized on drop where this crate holds them ([`P256Key`]) and redacted
//! in `Debug`; they are never logged.

mod authorities;
mod authority;
mod bundle;
mod csr;
mod error;
mod generation;
mod key;
mod keystore;
mod load;
mod mint;
mod open;
mod rotation;
mod upstream;

pub use authority::{CaConfig, CaStatus, CertificateAuthority, DEFAULT_CA_TTL};
pub use bundle::{Bundle, PemError, certs_from_pem, certs_to_pem};
pub use csr::{CsrError, CsrPublicKey, SvidKeyPair, verify_p256_csr};
pub use error::{CaError, MintError};
pub use key::{KeyRejected, P256Key};
pub use mint::{IssuedSvid, MAX_DNS_NAMES, MintRequest};
pub use rotation::{RotationObserver, RotationReport};
pub use upstream::UpstreamConfig;
