//! ECDSA P-256 private keys (docs/architecture.md, "The CA") held so that the secret is zeroized on drop
//! and never printed.
//!
//! The PKCS#8 bytes live in a [`Zeroizing`] buffer; the parsed `ring` key pair is what signs.
//! `Debug` prints only the algorithm.

use std::fmt;

use rcgen::{PKCS_ECDSA_P256_SHA256, PublicKeyData, SignatureAlgorithm, SigningKey};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use zeroize::Zeroizing;

/// An ECDSA P-256 private key, usable as an rcgen signer.
pub struct P256Key {
    pkcs8: Zeroizing<Vec<u8>>,
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

/// Why bytes are not a P-256 PKCS#8 key (no detail: `ring` gives none, and the bytes are
/// secret).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("not an ecdsa p-256 pkcs#8 private key")]
pub struct KeyRejected;

impl P256Key {
    /// A fresh key from the system RNG.
    pub fn generate() -> Result<Self, KeyRejected> {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(|_| KeyRejected)?;
        Self::from_pkcs8_der(doc.as_ref())
    }

    /// Parses a PKCS#8 DER key (copied into a zeroizing buffer).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyRejected> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der, &rng)
            .map_err(|_| KeyRejected)?;
        Ok(P256Key {
            pkcs8: Zeroizing::new(der.to_vec()),
            pair,
            rng,
        })
    }

    /// The PKCS#8 DER encoding. Secret: write it only to 0600 files.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The PKCS#8 PEM encoding (`PRIVATE KEY`), in a zeroizing string. Secret.
    pub fn pkcs8_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(pem::encode(&pem::Pem::new(
            "PRIVATE KEY",
            self.pkcs8.as_slice(),
        )))
    }

    /// The uncompressed public point (65 bytes).
    pub fn public_point(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }
}

impl PublicKeyData for P256Key {
    fn der_bytes(&self) -> &[u8] {
        self.public_point()
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

impl SigningKey for P256Key {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.pair
            .sign(&self.rng, msg)
            .map(|sig| sig.as_ref().to_vec())
            .map_err(|_| rcgen::Error::RingUnspecified)
    }
}

impl fmt::Debug for P256Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("P256Key")
            .field("algorithm", &"ecdsa-p256-sha256")
            .field("private_key", &"[redacted]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_and_round_trips() {
        let key = P256Key::generate().unwrap();
        let printed = format!("{key:?}");
        assert!(printed.contains("[redacted]"), "{printed}");
        let again = P256Key::from_pkcs8_der(key.pkcs8_der()).unwrap();
        assert_eq!(again.public_point(), key.public_point());
        assert!(key.pkcs8_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(P256Key::from_pkcs8_der(b"garbage").is_err());
    }
}
