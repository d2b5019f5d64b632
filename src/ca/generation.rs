//! One CA generation: a P-256 key and its CA certificate, either a self-signed root or an
//! intermediate under the upstream CA (docs/architecture.md, "The CA").
//!
//! Invariant: a [`Generation`] with a signer has a key that matches its certificate, and the
//! certificate is a CA (`cA=true`, `pathLen=0`, keyCertSign) whose validity was read back from
//! the DER, so rotation decisions use exactly the times relying parties see.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyUsagePurpose,
    SanType, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use rustls_pki_types::CertificateDer;
use spiffe::TrustDomain;
use sworn_identity::Serial;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::error::CaError;
use super::key::P256Key;
use super::upstream::Upstream;
use crate::clock::from_unix_secs;

/// How far certificates are backdated, for relying parties whose clocks run slightly behind
/// (docs/architecture.md, "The CA").
pub(crate) const BACKDATE: Duration = Duration::from_secs(10);

/// A CA generation as loaded or created.
pub(crate) struct Generation {
    /// Generation number (file names `ca-<n>.*`).
    pub number: u64,
    /// The CA certificate, then the upstream certificates above it (none when self-signed).
    pub chain: Vec<Vec<u8>>,
    /// NotBefore of the CA certificate.
    pub not_before: SystemTime,
    /// NotAfter of the CA certificate.
    pub not_after: SystemTime,
    /// The signer; `None` once the generation is retired and its key deleted.
    pub signer: Option<Issuer<'static, P256Key>>,
}

impl std::fmt::Debug for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generation")
            .field("number", &self.number)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("has_key", &self.signer.is_some())
            .finish()
    }
}

impl Generation {
    /// Assembles a generation from its stored chain and (optional) key. `cert_path` and
    /// `key_path` only name files in errors.
    pub(crate) fn from_parts(
        number: u64,
        chain: Vec<Vec<u8>>,
        key: Option<P256Key>,
        cert_path: &std::path::Path,
        key_path: &std::path::Path,
    ) -> Result<Self, CaError> {
        let corrupt = |reason: &str| CaError::CorruptCert {
            path: cert_path.to_path_buf(),
            reason: reason.to_string(),
        };
        let der = chain.first().ok_or_else(|| corrupt("no certificate"))?;
        let cert = match X509Certificate::from_der(der) {
            Ok(([], cert)) => cert,
            Ok(_) => return Err(corrupt("trailing bytes after the certificate")),
            Err(e) => return Err(corrupt(&e.to_string())),
        };
        if !matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca) {
            return Err(corrupt("not a ca certificate"));
        }
        let not_before = from_unix_secs(cert.validity().not_before.timestamp());
        let not_after = from_unix_secs(cert.validity().not_after.timestamp());
        let signer = match key {
            None => None,
            Some(key) => {
                if cert.public_key().subject_public_key.data.as_ref() != key.public_point() {
                    return Err(CaError::CorruptKey {
                        path: key_path.to_path_buf(),
                        reason: format!(
                            "does not match the certificate in {}",
                            cert_path.display()
                        ),
                    });
                }
                let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(der.as_slice()), key)
                    .map_err(|e| corrupt(&e.to_string()))?;
                Some(issuer)
            }
        };
        Ok(Generation {
            number,
            chain,
            not_before,
            not_after,
            signer,
        })
    }

    /// Creates generation `number`: a new key and its CA certificate, valid from
    /// `now - BACKDATE` for `ttl`, capped by the upstream CA's NotAfter.
    pub(crate) fn create(
        number: u64,
        trust_domain: &TrustDomain,
        now: SystemTime,
        ttl: Duration,
        upstream: Option<&Upstream>,
    ) -> Result<Self, CaError> {
        let gen_err = |what: &'static str| move |e: String| CaError::Generate { what, reason: e };
        let key = P256Key::generate().map_err(|e| gen_err("key")(e.to_string()))?;
        let now = whole_seconds(now);
        let mut not_after = now + ttl;
        if let Some(up) = upstream {
            if up.not_after <= now {
                return Err(CaError::Upstream {
                    path: up.cert_path.clone(),
                    reason: "the upstream ca certificate has expired".into(),
                });
            }
            not_after = not_after.min(up.not_after);
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "sworn");
        params.distinguished_name.push(
            DnType::CommonName,
            format!("sworn ca {trust_domain} #{number}"),
        );
        let serial = random_serial().map_err(gen_err("certificate"))?;
        params.serial_number = Some(SerialNumber::from_slice(serial.magnitude()));
        params.not_before = (now - BACKDATE).into();
        params.not_after = not_after.into();
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let td_uri = trust_domain.id_string();
        params.subject_alt_names =
            vec![SanType::URI(td_uri.try_into().map_err(
                |e: rcgen::Error| gen_err("certificate")(e.to_string()),
            )?)];
        let built = match upstream {
            None => params.self_signed(&key),
            Some(up) => {
                params.use_authority_key_identifier_extension = true;
                params.signed_by(&key, &up.issuer)
            }
        };
        let cert = built.map_err(|e| gen_err("certificate")(e.to_string()))?;
        let mut chain = vec![cert.der().to_vec()];
        if let Some(up) = upstream {
            chain.extend(up.chain.iter().cloned());
        }
        let issuer = Issuer::from_ca_cert_der(cert.der(), key)
            .map_err(|e| gen_err("certificate")(e.to_string()))?;
        Ok(Generation {
            number,
            chain,
            not_before: now - BACKDATE,
            not_after,
            signer: Some(issuer),
        })
    }

    /// The CA certificate DER.
    pub(crate) fn cert_der(&self) -> &[u8] {
        self.chain.first().map(Vec::as_slice).unwrap_or_default()
    }

    /// Total validity of the CA certificate.
    pub(crate) fn lifetime(&self) -> Duration {
        self.not_after
            .duration_since(self.not_before)
            .unwrap_or_default()
    }

    /// Validity left at `now` (zero once expired).
    pub(crate) fn remaining(&self, now: SystemTime) -> Duration {
        self.not_after.duration_since(now).unwrap_or_default()
    }

    /// The signing key, if the generation still has one.
    pub(crate) fn key(&self) -> Option<&P256Key> {
        self.signer.as_ref().map(|i| i.key())
    }
}

/// A random positive 128-bit serial number (RFC 5280 §4.1.2.2; CA/B forum asks ≥ 64 random
/// bits). Never zero. rcgen encodes its magnitude as a non-negative INTEGER, adding the DER
/// sign octet when the top bit is set.
pub(crate) fn random_serial() -> Result<Serial, String> {
    let rng = SystemRandom::new();
    let mut bytes = [0u8; 16];
    loop {
        rng.fill(&mut bytes)
            .map_err(|_| "system rng failed".to_string())?;
        // Only the all-zero draw fails (16 octets is within the 20 RFC 5280 allows).
        if let Ok(serial) = Serial::from_magnitude(&bytes) {
            return Ok(serial);
        }
    }
}

/// `t` truncated to whole seconds, the precision certificates carry.
pub(crate) fn whole_seconds(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(_) => t,
    }
}
