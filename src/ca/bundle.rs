//! The X.509 trust bundle of the trust domain and PEM helpers.
//!
//! The bundle holds every root that may have signed a still-valid SVID, plus the prepared next
//! root, published before anything it signs is issued (docs/architecture.md, "The CA").

use spiffe::TrustDomain;

/// The trust bundle: the roots relying parties trust for this trust domain. `Debug` prints
/// counts, not certificates.
#[derive(Clone, PartialEq, Eq)]
pub struct Bundle {
    /// The trust domain the roots speak for.
    pub trust_domain: TrustDomain,
    /// DER roots, oldest first.
    pub roots_der: Vec<Vec<u8>>,
    /// Increases by one on every change, persisted across restarts (like the SPIFFE bundle
    /// sequence number), so receivers can ignore stale copies.
    pub sequence: u64,
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle")
            .field("trust_domain", &self.trust_domain.as_str())
            .field("roots", &self.roots_der.len())
            .field("sequence", &self.sequence)
            .finish()
    }
}

impl Bundle {
    /// The roots as concatenated PEM `CERTIFICATE` blocks (`bundle.pem`).
    pub fn to_pem(&self) -> String {
        certs_to_pem(&self.roots_der)
    }
}

/// Concatenated PEM `CERTIFICATE` blocks, in order.
pub fn certs_to_pem<T: AsRef<[u8]>>(ders: &[T]) -> String {
    ders.iter()
        .map(|der| pem::encode(&pem::Pem::new("CERTIFICATE", der.as_ref())))
        .collect()
}

/// Why PEM text did not yield certificates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    /// Not parseable as PEM.
    #[error("not pem: {0}")]
    Syntax(String),
    /// A block other than `CERTIFICATE`.
    #[error("unexpected pem block {0:?}, expected CERTIFICATE")]
    UnexpectedTag(String),
    /// No block at all.
    #[error("no certificate in pem")]
    Empty,
}

/// Parses concatenated PEM `CERTIFICATE` blocks into DER, in order.
pub fn certs_from_pem(text: &[u8]) -> Result<Vec<Vec<u8>>, PemError> {
    let blocks = pem::parse_many(text).map_err(|e| PemError::Syntax(e.to_string()))?;
    if blocks.is_empty() {
        return Err(PemError::Empty);
    }
    blocks
        .into_iter()
        .map(|b| {
            if b.tag() == "CERTIFICATE" {
                Ok(b.into_contents())
            } else {
                Err(PemError::UnexpectedTag(b.tag().to_string()))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_keeps_order() {
        let ders = vec![b"first".to_vec(), b"second".to_vec()];
        let text = certs_to_pem(&ders);
        assert_eq!(certs_from_pem(text.as_bytes()).unwrap(), ders);
        assert_eq!(certs_from_pem(b""), Err(PemError::Empty));
        let key = pem::encode(&pem::Pem::new("PRIVATE KEY", b"x".to_vec()));
        assert_eq!(
            certs_from_pem(key.as_bytes()),
            Err(PemError::UnexpectedTag("PRIVATE KEY".into()))
        );
    }
}
