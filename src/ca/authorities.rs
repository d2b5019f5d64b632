//! The live CA generations and the trust bundle they imply (docs/architecture.md, "The CA").
//!
//! [`Authorities`] is what the CA holds behind its lock: loading builds it, rotation changes
//! it, minting reads it. It lives in its own file so that all three depend on it and none on
//! each other.

use spiffe::TrustDomain;

use super::bundle::Bundle;
use super::generation::Generation;
use super::keystore::State;
use super::upstream::Upstream;

/// The live CA generations.
#[derive(Debug)]
pub(crate) struct Authorities {
    /// `state.json` as last written; in-memory state changes only after it is durable.
    pub state: State,
    /// The generation that signs.
    pub active: Generation,
    /// Published in the bundle and waiting to sign.
    pub prepared: Option<Generation>,
    /// Former active generations whose roots stay in the bundle (self-signed mode).
    pub retired: Vec<Generation>,
}

impl Authorities {
    /// The bundle of these generations: self-signed roots oldest first, or the upstream roots.
    pub(crate) fn bundle(&self, trust_domain: &TrustDomain, upstream: Option<&Upstream>) -> Bundle {
        let roots_der = match upstream {
            Some(up) => up.roots.clone(),
            None => self
                .retired
                .iter()
                .chain(std::iter::once(&self.active))
                .chain(self.prepared.iter())
                .map(|g| g.cert_der().to_vec())
                .collect(),
        };
        Bundle {
            trust_domain: trust_domain.clone(),
            roots_der,
            sequence: self.state.bundle_sequence,
        }
    }
}
