//! Why a certificate fails the X509-SVID profile.

use std::fmt;

use crate::IdError;

/// Which certificate of a chain a [`ProfileError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertRole {
    /// The end-entity certificate (the SVID itself).
    Leaf,
    /// An intermediate from the presented chain, by index (0 = the leaf's issuer).
    Intermediate(usize),
    /// A root from the trust bundle, by index.
    Root(usize),
}

impl fmt::Display for CertRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertRole::Leaf => f.write_str("leaf"),
            CertRole::Intermediate(i) => write!(f, "intermediate #{i}"),
            CertRole::Root(i) => write!(f, "bundle root #{i}"),
        }
    }
}

/// A violation of the X509-SVID profile (SPIFFE X509-SVID spec §2, §4, §5) or of RFC 5280
/// path validation (decided by webpki, named here).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// A certificate is not valid DER X.509, or has trailing bytes.
    #[error("{role} is not a valid x.509 certificate: {reason}")]
    Malformed {
        /// Which certificate.
        role: CertRole,
        /// Parser message.
        reason: String,
    },
    /// The bundle has no roots, so nothing can be trusted.
    #[error("the trust bundle is empty")]
    EmptyBundle,
    /// The leaf has no URI SAN (X509-SVID §2).
    #[error("the leaf has no uri subject alternative name")]
    NoUriSan,
    /// The leaf has more than one URI SAN (X509-SVID §2: exactly one).
    #[error("the leaf has {count} uri subject alternative names, exactly one is allowed")]
    MultipleUriSans {
        /// How many were found.
        count: usize,
    },
    /// The SAN extension could not be read or is duplicated.
    #[error("the leaf's subject alternative name extension is malformed")]
    MalformedSan,
    /// The URI SAN is not an acceptable SPIFFE ID.
    #[error("the leaf's uri san is not a valid spiffe id: {0}")]
    InvalidId(#[source] IdError),
    /// The SPIFFE ID is not the one the caller expected.
    #[error("the leaf names {found}, expected {expected}")]
    UnexpectedId {
        /// Expected ID.
        expected: String,
        /// ID in the certificate.
        found: String,
    },
    /// The SPIFFE ID is not in the expected trust domain.
    #[error("the leaf's trust domain is {found}, expected {expected}")]
    WrongTrustDomain {
        /// Expected trust domain.
        expected: String,
        /// Trust domain in the certificate.
        found: String,
    },
    /// The leaf has no basicConstraints extension (sworn requires it, stating `cA=false`).
    #[error("the leaf has no basic constraints extension")]
    MissingBasicConstraints,
    /// The leaf says `cA=true` (X509-SVID §4.1).
    #[error("the leaf is a ca certificate")]
    LeafIsCa,
    /// The leaf has no key usage extension (X509-SVID §4.3).
    #[error("the leaf has no key usage extension")]
    MissingKeyUsage,
    /// The key usage extension is not critical (X509-SVID §4.3).
    #[error("the leaf's key usage extension is not critical")]
    KeyUsageNotCritical,
    /// Key usage lacks `digitalSignature` (X509-SVID §4.3).
    #[error("the leaf's key usage lacks digitalSignature")]
    NoDigitalSignature,
    /// Key usage has `keyCertSign` on a leaf (X509-SVID §4.3).
    #[error("the leaf's key usage has keyCertSign")]
    KeyCertSignOnLeaf,
    /// Key usage has `cRLSign` on a leaf (X509-SVID §4.3).
    #[error("the leaf's key usage has cRLSign")]
    CrlSignOnLeaf,
    /// The extended key usage extension is present but lacks `serverAuth` or `clientAuth`
    /// (sworn issues both, X509-SVID §4.4).
    #[error("the leaf's extended key usage lacks {missing}")]
    EkuIncomplete {
        /// `serverAuth`, `clientAuth`, or both.
        missing: &'static str,
    },
    /// A critical extension this checker does not understand (RFC 5280 §4.2).
    #[error("{role} has an unrecognised critical extension {oid}")]
    UnknownCriticalExtension {
        /// Which certificate.
        role: CertRole,
        /// The extension's OID.
        oid: String,
    },
    /// The certificate's NotBefore is after `now`.
    #[error("{role} is not yet valid")]
    NotYetValid {
        /// Which certificate.
        role: CertRole,
    },
    /// The certificate's NotAfter is before `now`.
    #[error("{role} has expired")]
    Expired {
        /// Which certificate.
        role: CertRole,
    },
    /// A certificate outlives the one that signed it.
    #[error("{role} expires after its issuer")]
    OutlivesIssuer {
        /// The certificate that outlives its issuer.
        role: CertRole,
    },
    /// An intermediate is not a CA (no `cA=true`, or key usage without `keyCertSign`).
    #[error("{role} is not allowed to sign certificates")]
    IssuerNotCa {
        /// Which certificate.
        role: CertRole,
    },
    /// The next certificate of the chain is not the issuer of the previous one (RFC 5246
    /// §7.4.2, RFC 8446 §4.4.2: each certificate certifies the one before it).
    #[error("{role} is not the issuer of the certificate before it")]
    ChainOutOfOrder {
        /// The certificate that does not fit.
        role: CertRole,
    },
    /// A signature does not verify with the issuer's key.
    #[error("the signature on {role} does not verify")]
    BadSignature {
        /// The certificate whose signature fails.
        role: CertRole,
    },
    /// No root of the bundle issued the chain.
    #[error("the chain does not lead to a root in the trust bundle")]
    NoTrustedRoot,
    /// More intermediates than webpki builds paths through.
    #[error("the chain is longer than {max} intermediates")]
    ChainTooLong {
        /// The limit.
        max: usize,
    },
    /// webpki refused the path for a reason none of the variants above names (a name or path
    /// length constraint, an unsupported signature algorithm, an intermediate's extended key
    /// usage, ...).
    #[error("the chain does not verify: {reason}")]
    PathRefused {
        /// webpki's error.
        reason: String,
    },
}

impl ProfileError {
    /// Whether this is about trusting the chain (validity, signatures, issuers, the bundle)
    /// rather than about what the leaf says (its SAN, basic constraints and key usages).
    /// A TLS verifier reports the first kind as an untrusted chain and the second as a
    /// certificate that is not an X509-SVID.
    pub fn is_chain_error(&self) -> bool {
        use ProfileError as E;
        match self {
            E::Malformed { role, .. } | E::UnknownCriticalExtension { role, .. } => {
                *role != CertRole::Leaf
            }
            E::EmptyBundle
            | E::NotYetValid { .. }
            | E::Expired { .. }
            | E::OutlivesIssuer { .. }
            | E::IssuerNotCa { .. }
            | E::ChainOutOfOrder { .. }
            | E::BadSignature { .. }
            | E::NoTrustedRoot
            | E::ChainTooLong { .. }
            | E::PathRefused { .. } => true,
            E::NoUriSan
            | E::MultipleUriSans { .. }
            | E::MalformedSan
            | E::InvalidId(_)
            | E::UnexpectedId { .. }
            | E::WrongTrustDomain { .. }
            | E::MissingBasicConstraints
            | E::LeafIsCa
            | E::MissingKeyUsage
            | E::KeyUsageNotCritical
            | E::NoDigitalSignature
            | E::KeyCertSignOnLeaf
            | E::CrlSignOnLeaf
            | E::EkuIncomplete { .. } => false,
        }
    }
}
