//! One consistent snapshot of what the Workload API gave us: our SVID (chain and key) and the
//! trust bundles, converted once into what rustls needs.
//!
//! Invariant: a `Material` always holds a key that matches the leaf (checked at construction)
//! and at least the bundle of our own trust domain.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use spiffe::{SpiffeId, TrustDomain, X509BundleSet, X509Svid};
use sworn_identity::ProfileError;
use sworn_identity::tls::{TrustRoots, provider};
use zeroize::Zeroizing;

/// Why material could not be used.
#[derive(Debug, thiserror::Error)]
pub enum MaterialError {
    /// The SVID chain is empty.
    #[error("the svid chain is empty")]
    EmptyChain,
    /// Our own leaf is not a usable X509-SVID.
    #[error("our svid: {0}")]
    Leaf(#[from] ProfileError),
    /// The key does not load or does not match the leaf.
    #[error("our svid key: {0}")]
    Key(rustls::Error),
    /// A bundle has no usable root.
    #[error("bundle for {trust_domain}: {reason}")]
    Bundle {
        /// The trust domain.
        trust_domain: TrustDomain,
        /// What is wrong.
        reason: String,
    },
    /// The Workload API source holds no usable SVID or bundle set.
    #[error("workload api source: {0}")]
    Source(#[from] spiffe::X509SourceError),
    /// There is no bundle for our own trust domain.
    #[error("no bundle for our own trust domain {0}")]
    NoOwnBundle(TrustDomain),
}

/// Our SVID and the bundles, as of one Workload API update.
pub struct Material {
    spiffe_id: SpiffeId,
    chain: Vec<CertificateDer<'static>>,
    key_pkcs8: Zeroizing<Vec<u8>>,
    certified_key: Arc<CertifiedKey>,
    bundles: BTreeMap<TrustDomain, TrustRoots>,
}

impl fmt::Debug for Material {
    /// Names the ID and counts; never prints the key or certificates.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Material")
            .field("spiffe_id", &self.spiffe_id)
            .field("chain", &self.chain.len())
            .field("bundles", &self.bundles.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Material {
    /// Builds material from DER: our chain (leaf first), our PKCS#8 key, and roots per trust
    /// domain.
    pub fn from_der(
        chain: Vec<Vec<u8>>,
        key_pkcs8: Vec<u8>,
        bundles: impl IntoIterator<Item = (TrustDomain, Vec<Vec<u8>>)>,
    ) -> Result<Self, MaterialError> {
        let key_pkcs8 = Zeroizing::new(key_pkcs8);
        let chain: Vec<CertificateDer<'static>> =
            chain.into_iter().map(CertificateDer::from).collect();
        let leaf = chain.first().ok_or(MaterialError::EmptyChain)?;
        let spiffe_id = sworn_identity::check_svid_leaf(leaf)?.spiffe_id().clone();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pkcs8.to_vec()));
        let certified_key =
            CertifiedKey::from_der(chain.clone(), key, &provider()).map_err(MaterialError::Key)?;
        let mut map = BTreeMap::new();
        for (td, roots) in bundles {
            let roots = TrustRoots::new(roots).map_err(|e| MaterialError::Bundle {
                trust_domain: td.clone(),
                reason: e.to_string(),
            })?;
            map.insert(td, roots);
        }
        if !map.contains_key(spiffe_id.trust_domain()) {
            return Err(MaterialError::NoOwnBundle(spiffe_id.trust_domain().clone()));
        }
        Ok(Material {
            spiffe_id,
            chain,
            key_pkcs8,
            certified_key: Arc::new(certified_key),
            bundles: map,
        })
    }

    /// Builds material from what the `spiffe` crate's `X509Source` holds.
    pub fn from_x509(svid: &X509Svid, bundles: &X509BundleSet) -> Result<Self, MaterialError> {
        Self::from_der(
            svid.cert_chain()
                .iter()
                .map(|c| c.as_ref().to_vec())
                .collect(),
            svid.private_key().as_ref().to_vec(),
            bundles.iter().map(|(td, b)| {
                (
                    td.clone(),
                    b.authorities()
                        .iter()
                        .map(|c| c.as_ref().to_vec())
                        .collect(),
                )
            }),
        )
    }

    /// Our SPIFFE ID.
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.spiffe_id
    }

    /// Our chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// Our private key, PKCS#8 DER. Never log it.
    pub fn private_key_pkcs8(&self) -> &[u8] {
        &self.key_pkcs8
    }

    /// The roots of a trust domain, if we have its bundle.
    pub fn roots(&self, td: &TrustDomain) -> Option<&[CertificateDer<'static>]> {
        self.bundles.get(td).map(TrustRoots::as_slice)
    }

    /// The trust domains we hold bundles for.
    pub fn trust_domains(&self) -> impl Iterator<Item = &TrustDomain> {
        self.bundles.keys()
    }

    pub(crate) fn certified_key(&self) -> Arc<CertifiedKey> {
        self.certified_key.clone()
    }

    pub(crate) fn bundle(&self, td: &TrustDomain) -> Option<&TrustRoots> {
        self.bundles.get(td)
    }

    /// Whether `other` holds the same SVID, key and bundles (so nothing needs republishing).
    pub fn same_as(&self, other: &Material) -> bool {
        self.chain == other.chain
            && *self.key_pkcs8 == *other.key_pkcs8
            && self.bundles.len() == other.bundles.len()
            && self
                .bundles
                .iter()
                .zip(other.bundles.iter())
                .all(|((a, ab), (b, bb))| a == b && ab == bb)
    }
}
