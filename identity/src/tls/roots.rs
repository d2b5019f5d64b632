//! Bundle roots as the verifier reads them.

use std::fmt;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use spiffe::TrustDomain;

use crate::svid::usable_root;

/// The roots of one trust domain's bundle, each usable as a trust anchor. Cheap to clone.
/// Roots may share a subject (a rotation that kept the CA's name): all of them are trusted.
#[derive(Clone, PartialEq, Eq)]
pub struct TrustRoots(Arc<[CertificateDer<'static>]>);

/// A bundle none of whose certificates can serve as a root.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("none of the {given} bundle certificate(s) is a usable root")]
pub struct NoUsableRoot {
    /// How many certificates the bundle had.
    pub given: usize,
}

impl TrustRoots {
    /// Keeps the certificates that parse as X.509 and as trust anchors, in order; fails if
    /// none does. (A bundle may carry a root this verifier cannot read next to ones it can.)
    pub fn new<D: Into<CertificateDer<'static>>>(
        roots: impl IntoIterator<Item = D>,
    ) -> Result<Self, NoUsableRoot> {
        let mut given = 0;
        let usable: Vec<CertificateDer<'static>> = roots
            .into_iter()
            .map(Into::into)
            .inspect(|_| given += 1)
            .filter(|der| usable_root(der))
            .collect();
        if usable.is_empty() {
            return Err(NoUsableRoot { given });
        }
        Ok(TrustRoots(usable.into()))
    }

    /// The roots, DER.
    pub fn as_slice(&self) -> &[CertificateDer<'static>] {
        &self.0
    }
}

impl fmt::Debug for TrustRoots {
    /// Counts; certificates are not logged.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TrustRoots").field(&self.0.len()).finish()
    }
}

/// Where a verifier finds the roots of a peer's trust domain, asked at every handshake.
pub trait TrustSource: Send + Sync + fmt::Debug {
    /// The current roots of `trust_domain`'s bundle, or `None` if none is held.
    fn roots(&self, trust_domain: &TrustDomain) -> Option<TrustRoots>;
}
