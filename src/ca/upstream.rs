//! An upstream CA given as PEM files, under which every sworn CA generation is an
//! intermediate (docs/architecture.md, "The CA"). The bundle is then the upstream roots, and SVID chains carry
//! the sworn intermediate and the upstream certificates below the root.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rcgen::{Issuer, KeyPair, PublicKeyData};
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::bundle::certs_from_pem;
use super::error::CaError;
use crate::clock::from_unix_secs;

/// Where the upstream CA's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// PEM: the upstream signing CA certificate, optionally followed by the intermediates
    /// between it and the root (the "full chain" convention; the root itself may be omitted).
    pub cert_file: PathBuf,
    /// PEM PKCS#8 private key of the upstream signing CA (P-256, P-384, Ed25519 or RSA).
    pub key_file: PathBuf,
    /// PEM roots to publish as the bundle. Default: the self-signed certificates of
    /// `cert_file` (the upstream CA is itself a root).
    pub bundle_file: Option<PathBuf>,
}

/// The loaded upstream CA.
pub(crate) struct Upstream {
    /// Signs new intermediates. rcgen's key pair redacts itself in `Debug`.
    pub issuer: Issuer<'static, KeyPair>,
    /// Upstream certificates appended to every sworn CA chain (signing cert first, roots
    /// excluded).
    pub chain: Vec<Vec<u8>>,
    /// The roots published as the bundle.
    pub roots: Vec<Vec<u8>>,
    /// Earliest NotAfter of the upstream chain: no intermediate may outlive it.
    pub not_after: SystemTime,
    /// For error messages.
    pub cert_path: PathBuf,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("cert_path", &self.cert_path)
            .field("chain_len", &self.chain.len())
            .field("roots", &self.roots.len())
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// Reads and cross-checks the upstream files.
    pub(crate) fn load(config: &UpstreamConfig) -> Result<Self, CaError> {
        let bad = |path: &Path, reason: String| CaError::Upstream {
            path: path.to_path_buf(),
            reason,
        };
        let certs = read_certs(&config.cert_file)?;
        let (roots_in_chain, chain): (Vec<_>, Vec<_>) =
            certs.into_iter().partition(|der| is_self_signed(der));
        let signing = match (chain.first(), roots_in_chain.first()) {
            (Some(first), _) => first.clone(),
            (None, Some(root)) => root.clone(),
            (None, None) => return Err(bad(&config.cert_file, "no certificate".into())),
        };
        let key_pem = zeroize::Zeroizing::new(std::fs::read_to_string(&config.key_file).map_err(
            |source| CaError::Io {
                path: config.key_file.clone(),
                action: "read",
                source,
            },
        )?);
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| bad(&config.key_file, format!("not a pkcs#8 private key: {e}")))?;
        let (_, cert) = X509Certificate::from_der(&signing)
            .map_err(|e| bad(&config.cert_file, e.to_string()))?;
        if !matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca) {
            return Err(bad(
                &config.cert_file,
                "the first certificate is not a ca".into(),
            ));
        }
        if cert.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(bad(
                &config.key_file,
                format!(
                    "does not match the certificate in {}",
                    config.cert_file.display()
                ),
            ));
        }
        let roots = match &config.bundle_file {
            Some(path) => read_certs(path)?,
            None if !roots_in_chain.is_empty() => roots_in_chain,
            None => {
                return Err(bad(
                    &config.cert_file,
                    "contains no self-signed root; set bundle_file to the upstream roots".into(),
                ));
            }
        };
        let mut not_after = from_unix_secs(cert.validity().not_after.timestamp());
        for der in &chain {
            if let Ok((_, c)) = X509Certificate::from_der(der) {
                not_after = not_after.min(from_unix_secs(c.validity().not_after.timestamp()));
            }
        }
        let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(signing.as_slice()), key)
            .map_err(|e| bad(&config.cert_file, e.to_string()))?;
        Ok(Upstream {
            issuer,
            chain,
            roots,
            not_after,
            cert_path: config.cert_file.clone(),
        })
    }
}

fn read_certs(path: &Path) -> Result<Vec<Vec<u8>>, CaError> {
    let bytes = std::fs::read(path).map_err(|source| CaError::Io {
        path: path.to_path_buf(),
        action: "read",
        source,
    })?;
    let certs = certs_from_pem(&bytes).map_err(|e| CaError::Upstream {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    for der in &certs {
        if let Err(e) = X509Certificate::from_der(der) {
            return Err(CaError::Upstream {
                path: path.to_path_buf(),
                reason: format!("not an x.509 certificate: {e}"),
            });
        }
    }
    Ok(certs)
}

/// Subject equals issuer and the signature verifies with the certificate's own key.
fn is_self_signed(der: &[u8]) -> bool {
    match X509Certificate::from_der(der) {
        Ok((_, c)) => c.subject() == c.issuer() && c.verify_signature(None).is_ok(),
        Err(_) => false,
    }
}
