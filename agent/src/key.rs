//! Key pairs and CSRs made on the agent (docs/architecture.md, "Outcomes").
//!
//! Every SVID key, the agent's own and each workload's, is ECDSA P-256 generated here; only
//! the CSR (public key plus proof of possession) goes to the server, so a private key never
//! leaves the agent. The CSR subject is empty: the server builds the certificate from policy.

use zeroize::Zeroizing;

/// Why a key or CSR could not be made.
#[derive(Debug, thiserror::Error)]
#[error("generating a key or csr: {0}")]
pub struct KeyError(#[from] rcgen::Error);

/// A fresh P-256 key (PKCS#8 DER, zeroized on drop) and a CSR (DER) for it.
#[derive(Debug)]
pub struct KeyAndCsr {
    /// The private key, PKCS#8 DER.
    pub key: Zeroizing<Vec<u8>>,
    /// The PKCS#10 request, DER.
    pub csr: Vec<u8>,
}

/// Generates a key and its CSR.
pub fn generate() -> Result<KeyAndCsr, KeyError> {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&pair)?;
    Ok(KeyAndCsr {
        key: Zeroizing::new(pair.serialize_der()),
        csr: csr.der().to_vec(),
    })
}
