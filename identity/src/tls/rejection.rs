//! What the verifier decided about a peer, and the one mapping from a refusal to the
//! certificate error rustls turns into a TLS alert.

use std::fmt;

use rustls::CertificateError;

use crate::{ProfileError, SpiffeIdentity};

/// Which side of the handshake the peer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerSide {
    /// The peer connected to us.
    Client,
    /// We connected to the peer.
    Server,
}

impl PeerSide {
    /// `client` or `server`, for audit lines.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerSide::Client => "client",
            PeerSide::Server => "server",
        }
    }
}

/// Why a peer was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Rejection {
    /// Its leaf names no SPIFFE ID (no or several URI SANs, not a SPIFFE ID, not X.509).
    NoSpiffeId(ProfileError),
    /// No bundle is held for its trust domain.
    UnknownTrustDomain,
    /// Its chain does not verify to that bundle (expired, unknown issuer, bad signature, ...).
    Chain(ProfileError),
    /// Its chain verifies but the leaf is not an X509-SVID (a CA, wrong key usages, ...).
    NotSvid(ProfileError),
    /// The authorizer does not allow its SPIFFE ID.
    NotAuthorized,
}

impl Rejection {
    /// A short stable label (metrics, audit).
    pub fn label(&self) -> &'static str {
        match self {
            Rejection::NoSpiffeId(_) | Rejection::NotSvid(_) => "not_svid",
            Rejection::UnknownTrustDomain => "unknown_trust_domain",
            Rejection::Chain(_) => "chain",
            Rejection::NotAuthorized => "not_authorized",
        }
    }

    /// The certificate error rustls sends the peer as an alert: `unknown_ca` for an untrusted
    /// chain, `certificate_expired` for dates, `bad_certificate` for a leaf that is not an
    /// SVID, `access_denied` for an ID the authorizer refuses.
    pub fn certificate_error(&self) -> CertificateError {
        use ProfileError as E;
        match self {
            Rejection::NoSpiffeId(e) | Rejection::NotSvid(e) | Rejection::Chain(e) => match e {
                E::Expired { .. } => CertificateError::Expired,
                E::NotYetValid { .. } => CertificateError::NotValidYet,
                E::BadSignature { .. } => CertificateError::BadSignature,
                E::UnknownCriticalExtension { .. } => CertificateError::UnhandledCriticalExtension,
                E::EkuIncomplete { .. } => CertificateError::InvalidPurpose,
                E::UnexpectedId { .. } | E::WrongTrustDomain { .. } => {
                    CertificateError::ApplicationVerificationFailure
                }
                e if e.is_chain_error() => CertificateError::UnknownIssuer,
                _ => CertificateError::BadEncoding,
            },
            Rejection::UnknownTrustDomain => CertificateError::UnknownIssuer,
            Rejection::NotAuthorized => CertificateError::ApplicationVerificationFailure,
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::NoSpiffeId(e) | Rejection::NotSvid(e) => {
                write!(f, "not an x509-svid: {e}")
            }
            Rejection::UnknownTrustDomain => f.write_str("no bundle for its trust domain"),
            Rejection::Chain(e) => write!(f, "chain does not verify: {e}"),
            Rejection::NotAuthorized => f.write_str("spiffe id not authorized"),
        }
    }
}

/// One decision, as an [`super::Observer`] sees it.
#[derive(Debug, Clone, Copy)]
pub enum Verdict<'a> {
    /// The peer was accepted.
    Allowed {
        /// Its side of the handshake.
        side: PeerSide,
        /// Its SPIFFE ID.
        peer: &'a SpiffeIdentity,
    },
    /// The peer was refused.
    Denied {
        /// Its side of the handshake.
        side: PeerSide,
        /// Its SPIFFE ID, when its leaf named one.
        peer: Option<&'a SpiffeIdentity>,
        /// Why.
        reason: &'a Rejection,
    },
}
