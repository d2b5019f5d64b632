//! Certificate signing requests: the CSR contributes its public key and proof of possession,
//! nothing else (docs/architecture.md, "The CA").
//!
//! [`verify_p256_csr`] accepts only ECDSA P-256 keys with an ecdsa-with-SHA256 self-signature
//! that verifies; subject, attributes and requested extensions are ignored without being read.
//! [`SvidKeyPair`] is the client side: a fresh P-256 key and a CSR for it.

use rcgen::{CertificateParams, PKCS_ECDSA_P256_SHA256, PublicKeyData, SignatureAlgorithm};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_SIG_ECDSA_WITH_SHA256,
};
use x509_parser::prelude::{FromDer, X509CertificationRequest};
use zeroize::Zeroizing;

use super::key::{KeyRejected, P256Key};

/// Largest CSR accepted; a P-256 CSR is about 250 bytes.
const MAX_CSR_BYTES: usize = 8 * 1024;

/// Why a CSR was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CsrError {
    /// Larger than any legitimate P-256 CSR.
    #[error("csr is {len} bytes, larger than {MAX_CSR_BYTES}")]
    TooLarge {
        /// Size of the CSR.
        len: usize,
    },
    /// Not a DER PKCS#10 request (or trailing bytes after it).
    #[error("csr is not a der pkcs#10 request: {0}")]
    Malformed(String),
    /// The key is not an EC key (RSA, Ed25519, ...).
    #[error("csr key algorithm {oid} is not ecdsa; only p-256 keys are accepted")]
    UnsupportedKeyAlgorithm {
        /// OID of the key algorithm.
        oid: String,
    },
    /// The key is EC but not on P-256 (e.g. P-384).
    #[error("csr key curve {curve} is not p-256")]
    UnsupportedCurve {
        /// OID of the curve, or `absent`.
        curve: String,
    },
    /// The public point is not an uncompressed P-256 point.
    #[error("csr public key is not an uncompressed p-256 point")]
    MalformedPublicKey,
    /// The CSR is signed with something other than ecdsa-with-SHA256.
    #[error("csr signature algorithm {oid} is not ecdsa-with-sha256")]
    UnsupportedSignatureAlgorithm {
        /// OID of the signature algorithm.
        oid: String,
    },
    /// The self-signature does not verify: no proof of possession.
    #[error("csr signature does not verify with its own public key")]
    BadSignature,
}

/// The public key of a verified CSR, to be placed in a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrPublicKey {
    point: Vec<u8>,
}

impl PublicKeyData for CsrPublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.point
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

/// Verifies a DER CSR and returns its P-256 public key. Checks the key type before the
/// signature so an RSA or P-384 CSR is reported as such, not as a bad signature.
pub fn verify_p256_csr(der: &[u8]) -> Result<CsrPublicKey, CsrError> {
    if der.len() > MAX_CSR_BYTES {
        return Err(CsrError::TooLarge { len: der.len() });
    }
    let csr = match X509CertificationRequest::from_der(der) {
        Ok(([], csr)) => csr,
        Ok(_) => return Err(CsrError::Malformed("trailing bytes".to_string())),
        Err(e) => return Err(CsrError::Malformed(e.to_string())),
    };
    let spki = &csr.certification_request_info.subject_pki;
    if spki.algorithm.algorithm != OID_KEY_TYPE_EC_PUBLIC_KEY {
        return Err(CsrError::UnsupportedKeyAlgorithm {
            oid: spki.algorithm.algorithm.to_id_string(),
        });
    }
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok());
    match curve {
        Some(c) if c == OID_EC_P256 => {}
        Some(c) => {
            return Err(CsrError::UnsupportedCurve {
                curve: c.to_id_string(),
            });
        }
        None => {
            return Err(CsrError::UnsupportedCurve {
                curve: "absent".to_string(),
            });
        }
    }
    let point = spki.subject_public_key.data.as_ref();
    if point.len() != 65 || point.first() != Some(&0x04) {
        return Err(CsrError::MalformedPublicKey);
    }
    if csr.signature_algorithm.algorithm != OID_SIG_ECDSA_WITH_SHA256 {
        return Err(CsrError::UnsupportedSignatureAlgorithm {
            oid: csr.signature_algorithm.algorithm.to_id_string(),
        });
    }
    // ring also checks that the point is on the curve here.
    csr.verify_signature().map_err(|_| CsrError::BadSignature)?;
    Ok(CsrPublicKey {
        point: point.to_vec(),
    })
}

/// A fresh P-256 key for an SVID, with a CSR proving possession of it. Used by the server for
/// its own TLS identity and by clients such as `sworn-server x509 mint`.
#[derive(Debug)]
pub struct SvidKeyPair {
    key: P256Key,
}

impl SvidKeyPair {
    /// Generates a key from the system RNG.
    pub fn generate() -> Result<Self, KeyRejected> {
        Ok(SvidKeyPair {
            key: P256Key::generate()?,
        })
    }

    /// A DER CSR for this key. Carries no names: the CA takes identity from policy.
    pub fn csr_der(&self) -> Result<Vec<u8>, rcgen::Error> {
        let csr = CertificateParams::default().serialize_request(&self.key)?;
        Ok(csr.der().to_vec())
    }

    /// The private key as PKCS#8 DER. Secret.
    pub fn pkcs8_der(&self) -> &[u8] {
        self.key.pkcs8_der()
    }

    /// The private key as PKCS#8 PEM (`svid.key`). Secret.
    pub fn private_key_pem(&self) -> Zeroizing<String> {
        self.key.pkcs8_pem()
    }

    /// The key as an rcgen signer (e.g. for rustls via its PKCS#8 bytes).
    pub fn key(&self) -> &P256Key {
        &self.key
    }
}
