//! Errors of the CA: [`CaError`] for loading, initialising and rotating the key store,
//! [`MintError`] for issuing SVIDs. Messages name the file and the reason; they never contain
//! key material.

use std::path::PathBuf;

use sworn_identity::ProfileError;

use super::csr::CsrError;

/// Why the CA could not be loaded, created or rotated. Every variant that concerns a file
/// names it, so an operator can tell what to restore.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// Reading, writing, renaming or syncing a file failed.
    #[error("ca store {path}: {action}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done (`read`, `write`, `rename`, `sync directory`, ...).
        action: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The caller said a CA exists (the datastore holds a bundle) but the directory has none.
    #[error(
        "ca store {dir} does not exist, but the datastore already holds a trust bundle; \
         restore the ca directory from backup instead of creating a new ca"
    )]
    ExpectedExisting {
        /// The CA directory.
        dir: PathBuf,
    },
    /// A file the state refers to (or the state file itself) is missing.
    #[error("ca store {path} is missing: {why}; refusing to create a new ca over a broken store")]
    Missing {
        /// The missing file.
        path: PathBuf,
        /// Why the file is needed.
        why: &'static str,
    },
    /// The state file cannot be parsed or is inconsistent.
    #[error("ca store {path} is corrupt: {reason}")]
    CorruptState {
        /// The state file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A private key file cannot be parsed, or does not match its certificate.
    #[error("ca store {path} is not a usable ca key: {reason}")]
    CorruptKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong (never the key itself).
        reason: String,
    },
    /// A certificate file cannot be parsed or is not a CA certificate.
    #[error("ca store {path} is not a usable ca certificate: {reason}")]
    CorruptCert {
        /// The certificate file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A private key file is readable by group or others.
    #[error("ca store {path} has mode {mode:o}; private keys must be 0600")]
    InsecurePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The store was created for another trust domain or CA mode than configured.
    #[error("ca store {path} belongs to {stored}, but the configuration says {configured}")]
    ConfigMismatch {
        /// The state file.
        path: PathBuf,
        /// What the store holds.
        stored: String,
        /// What the configuration asks for.
        configured: String,
    },
    /// The upstream CA files cannot be used.
    #[error("upstream ca {path}: {reason}")]
    Upstream {
        /// The upstream file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Generating a key or certificate failed.
    #[error("cannot generate a ca {what}: {reason}")]
    Generate {
        /// `key` or `certificate`.
        what: &'static str,
        /// The library's message.
        reason: String,
    },
    /// The CA configuration cannot be used.
    #[error("ca configuration: {0}")]
    Config(String),
    /// The startup self-test (mint one SVID and check it against the bundle) failed: the
    /// store or the upstream files cannot issue valid SVIDs.
    #[error("ca self-test failed: {0}")]
    SelfTest(String),
    /// A lock was poisoned by a panic elsewhere.
    #[error("internal error: ca state lock poisoned")]
    Poisoned,
}

/// Why an SVID was not minted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MintError {
    /// The CSR is malformed, not P-256, or its signature does not verify.
    #[error("csr refused: {0}")]
    Csr(#[from] CsrError),
    /// The SPIFFE ID belongs to another trust domain.
    #[error("spiffe id {id} is not in trust domain {trust_domain}")]
    WrongTrustDomain {
        /// The requested ID.
        id: String,
        /// The CA's trust domain.
        trust_domain: String,
    },
    /// A workload mint asked for a reserved `/sworn/` ID.
    #[error("spiffe id {0} uses the reserved /sworn/ prefix")]
    Reserved(String),
    /// An internal mint asked for an ID outside `/sworn/`.
    #[error("spiffe id {0} is not one of sworn's own identities")]
    NotReserved(String),
    /// The requested DNS names break the shared rule (`sworn_identity::dns`).
    #[error("{reason}")]
    InvalidDnsName {
        /// What is wrong, naming the name.
        reason: String,
    },
    /// The requested TTL is zero.
    #[error("ttl must be positive")]
    ZeroTtl,
    /// The active CA has expired (the server was down past its life and rotation has not
    /// run yet).
    #[error("the active ca has expired; rotation has not produced a new one yet")]
    CaExpired,
    /// The minted certificate failed the X509-SVID profile check. A bug in the CA: nothing
    /// was returned.
    #[error("internal error: minted certificate violates the x509-svid profile: {0}")]
    ProfileViolation(#[source] ProfileError),
    /// Certificate generation failed.
    #[error("internal error: cannot build the certificate: {0}")]
    Build(String),
    /// A lock was poisoned by a panic elsewhere.
    #[error("internal error: ca state lock poisoned")]
    Poisoned,
}
