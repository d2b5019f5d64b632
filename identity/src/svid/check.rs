//! [`check_x509_svid`]: the whole checklist, in the order that makes a refusal name its cause.

use std::time::SystemTime;

use spiffe::TrustDomain;

use super::cert::{parse, to_system_time, to_unix_secs};
use super::error::{CertRole, ProfileError};
use super::leaf::{check_svid_extensions, check_usable, dns_names, identity, serial_hex};
use super::path::{Purpose, verify_path};
use crate::SpiffeIdentity;

/// What identity the caller expects the SVID to carry.
#[derive(Debug, Clone, Copy)]
pub enum Expected<'a> {
    /// Exactly this SPIFFE ID (e.g. an agent pinning the server's ID).
    Id(&'a SpiffeIdentity),
    /// Any ID in this trust domain (e.g. the server accepting agent certificates).
    MemberOf(&'a TrustDomain),
}

/// What a successful check established about the leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSvid {
    /// The SPIFFE ID of the single URI SAN.
    pub spiffe_id: SpiffeIdentity,
    /// Serial number, lower-case hex without leading zeros.
    pub serial_hex: String,
    /// NotBefore.
    pub not_before: SystemTime,
    /// NotAfter.
    pub not_after: SystemTime,
    /// DNS SANs, in certificate order.
    pub dns_names: Vec<String>,
}

/// Checks `leaf_der` against the X509-SVID profile and verifies it to a root of `bundle_roots`
/// through `chain` (the intermediates, leaf's issuer first, not including the leaf), at `now`.
pub fn check_x509_svid<C: AsRef<[u8]>, R: AsRef<[u8]>>(
    leaf_der: &[u8],
    chain: &[C],
    expected: Expected<'_>,
    bundle_roots: &[R],
    now: SystemTime,
) -> Result<VerifiedSvid, ProfileError> {
    check_for(leaf_der, chain, expected, bundle_roots, now, Purpose::Any)
}

/// [`check_x509_svid`], with the path also held to `purpose` (a TLS peer's role).
pub(crate) fn check_for<C: AsRef<[u8]>, R: AsRef<[u8]>>(
    leaf_der: &[u8],
    chain: &[C],
    expected: Expected<'_>,
    bundle_roots: &[R],
    now: SystemTime,
    purpose: Purpose,
) -> Result<VerifiedSvid, ProfileError> {
    let leaf = parse(leaf_der, CertRole::Leaf)?;
    let spiffe_id = identity(&leaf)?;
    match expected {
        Expected::Id(id) if id != &spiffe_id => {
            return Err(ProfileError::UnexpectedId {
                expected: id.to_string(),
                found: spiffe_id.to_string(),
            });
        }
        Expected::MemberOf(td) if td != spiffe_id.trust_domain() => {
            return Err(ProfileError::WrongTrustDomain {
                expected: td.to_string(),
                found: spiffe_id.trust_domain().to_string(),
            });
        }
        _ => {}
    }
    check_usable(&leaf, to_unix_secs(now))?;
    verify_path(leaf_der, &leaf, chain, bundle_roots, now, purpose)?;
    check_svid_extensions(&leaf)?;
    Ok(VerifiedSvid {
        spiffe_id,
        serial_hex: serial_hex(leaf.raw_serial()),
        not_before: to_system_time(leaf.validity().not_before.timestamp()),
        not_after: to_system_time(leaf.validity().not_after.timestamp()),
        dns_names: dns_names(&leaf),
    })
}
