//! Minting X509-SVIDs (docs/architecture.md, "The CA").
//!
//! The certificate is built from policy only; the CSR contributes its public key and proof of
//! possession. Profile: exactly one URI SAN (the SPIFFE ID), optional validated DNS SANs,
//! `cA=false`, key usage critical digitalSignature + keyEncipherment + keyAgreement, EKU
//! serverAuth + clientAuth, a random positive 128-bit serial, NotBefore backdated 10 s,
//! NotAfter = min(now + ttl, the signing CA's NotAfter).
//!
//! Invariant: nothing leaves [`CertificateAuthority::mint_x509_svid`] unless the re-parsed
//! certificate passed [`sworn_identity::check_x509_svid`] against the current bundle.

use std::time::{Duration, SystemTime};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
    SanType, SerialNumber,
};
use sworn_identity::{Expected, Serial, SpiffeIdentity, check_x509_svid};

use super::authority::CertificateAuthority;
use super::bundle::certs_to_pem;
use super::csr::{SvidKeyPair, verify_p256_csr};
use super::error::MintError;
use super::generation::{BACKDATE, random_serial, whole_seconds};

/// Most DNS SANs one SVID may carry.
pub use sworn_identity::dns::MAX_DNS_NAMES;

/// What to mint. The identity and names come from policy; the CSR only proves the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintRequest {
    /// The SPIFFE ID, already validated and authorised by the caller.
    pub spiffe_id: SpiffeIdentity,
    /// DER PKCS#10 request with an ECDSA P-256 key.
    pub csr_der: Vec<u8>,
    /// Requested validity; capped by the signing CA's NotAfter.
    pub ttl: Duration,
    /// DNS SANs from the entry (lower-case host names, no wildcards).
    pub dns_names: Vec<String>,
}

/// A minted SVID. `Debug` prints the identity, serial and validity, not the certificates.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedSvid {
    /// The SPIFFE ID in the certificate.
    pub spiffe_id: SpiffeIdentity,
    /// The leaf first, then intermediates up to (not including) a bundle root.
    pub chain_der: Vec<Vec<u8>>,
    /// Serial number, read back from the certificate.
    pub serial: Serial,
    /// NotBefore (backdated).
    pub not_before: SystemTime,
    /// NotAfter.
    pub not_after: SystemTime,
}

impl std::fmt::Debug for IssuedSvid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedSvid")
            .field("spiffe_id", &self.spiffe_id.as_str())
            .field("serial", &self.serial)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("chain_len", &self.chain_der.len())
            .finish()
    }
}

impl IssuedSvid {
    /// The leaf certificate DER.
    pub fn leaf_der(&self) -> &[u8] {
        self.chain_der
            .first()
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The chain as PEM (`svid.pem`: leaf first).
    pub fn chain_pem(&self) -> String {
        certs_to_pem(&self.chain_der)
    }
}

impl CertificateAuthority {
    /// Mints a workload SVID. Refuses sworn's reserved `/sworn/` IDs.
    pub fn mint_x509_svid(&self, request: MintRequest) -> Result<IssuedSvid, MintError> {
        if request.spiffe_id.is_reserved() {
            return Err(MintError::Reserved(request.spiffe_id.to_string()));
        }
        self.mint(request)
    }

    /// Mints one of sworn's own identities (`spiffe://<td>/sworn/server`,
    /// `spiffe://<td>/sworn/agent/...`). Refuses any other ID.
    pub fn mint_sworn_svid(&self, request: MintRequest) -> Result<IssuedSvid, MintError> {
        if !request.spiffe_id.is_reserved() {
            return Err(MintError::NotReserved(request.spiffe_id.to_string()));
        }
        self.mint(request)
    }

    fn mint(&self, request: MintRequest) -> Result<IssuedSvid, MintError> {
        let MintRequest {
            spiffe_id,
            csr_der,
            ttl,
            dns_names,
        } = request;
        if spiffe_id.trust_domain() != &self.trust_domain {
            return Err(MintError::WrongTrustDomain {
                id: spiffe_id.to_string(),
                trust_domain: self.trust_domain.to_string(),
            });
        }
        if ttl.is_zero() {
            return Err(MintError::ZeroTtl);
        }
        let dns_names = check_dns_names(dns_names)?;
        let public_key = verify_p256_csr(&csr_der)?;

        let now = whole_seconds(self.clock.now());
        let authorities = self.read()?;
        let ca = &authorities.active;
        let signer = ca
            .signer
            .as_ref()
            .ok_or_else(|| MintError::Build("the active ca has no key".into()))?;
        if ca.not_after <= now {
            return Err(MintError::CaExpired);
        }
        let not_after = (now + ttl).min(ca.not_after);
        let serial = random_serial().map_err(MintError::Build)?;

        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "sworn");
        let uri = spiffe_id.as_str().try_into().map_err(build_err)?;
        params.subject_alt_names = std::iter::once(Ok(SanType::URI(uri)))
            .chain(dns_names.iter().map(|d| {
                d.as_str()
                    .try_into()
                    .map(SanType::DnsName)
                    .map_err(build_err)
            }))
            .collect::<Result<_, _>>()?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::KeyAgreement,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = (now - BACKDATE).into();
        params.not_after = not_after.into();
        params.serial_number = Some(SerialNumber::from_slice(serial.magnitude()));
        params.use_authority_key_identifier_extension = true;
        let leaf = params
            .signed_by(&public_key, signer)
            .map_err(build_err)?
            .der()
            .to_vec();

        // Self-signed: the CA certificate is a bundle root, so the chain is the leaf alone.
        let intermediates: Vec<Vec<u8>> = if self.upstream.is_some() {
            ca.chain.clone()
        } else {
            Vec::new()
        };
        let roots = self.bundle_tx.borrow().roots_der.clone();
        let verified =
            check_x509_svid(&leaf, &intermediates, Expected::Id(&spiffe_id), &roots, now).map_err(
                |error| {
                    tracing::error!(
                        %error,
                        spiffe_id = %spiffe_id,
                        "minted certificate failed the profile check"
                    );
                    MintError::ProfileViolation(error)
                },
            )?;
        drop(authorities);
        let serial = Serial::of_certificate(&leaf).map_err(|e| MintError::Build(e.to_string()))?;

        let mut chain_der = vec![leaf];
        chain_der.extend(intermediates);
        tracing::debug!(spiffe_id = %spiffe_id, %serial, "minted x509-svid");
        Ok(IssuedSvid {
            spiffe_id,
            chain_der,
            serial,
            not_before: verified.not_before,
            not_after: verified.not_after,
        })
    }
}

fn build_err(e: rcgen::Error) -> MintError {
    MintError::Build(e.to_string())
}

/// The shared DNS rule (`sworn_identity::dns`), the same one `entry create` applies.
fn check_dns_names(names: Vec<String>) -> Result<Vec<String>, MintError> {
    sworn_identity::dns::check_dns_names(&names).map_err(|e| MintError::InvalidDnsName {
        reason: e.to_string(),
    })
}

/// Mints and checks a throwaway `spiffe://<td>/sworn/self-test` SVID.
pub(crate) fn self_test(ca: &CertificateAuthority) -> Result<(), MintError> {
    let key = SvidKeyPair::generate().map_err(|e| MintError::Build(e.to_string()))?;
    let spiffe_id = SpiffeIdentity::sworn_internal(&ca.trust_domain, &["self-test"])
        .map_err(|e| MintError::Build(e.to_string()))?;
    ca.mint_sworn_svid(MintRequest {
        spiffe_id,
        csr_der: key.csr_der().map_err(build_err)?,
        ttl: Duration::from_secs(60),
        dns_names: Vec::new(),
    })
    .map(|_| ())
}
