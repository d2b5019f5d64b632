//! The X509-SVID profile check
//! (<https://github.com/spiffe/spiffe/blob/main/standards/X509-SVID.md>).
//!
//! [`check_x509_svid`] accepts a leaf only if every item of the checklist holds:
//!
//! - §2: exactly one URI SAN, a valid SPIFFE ID (sworn's rules, reserved IDs allowed) with a
//!   non-empty path, equal to / in the trust domain the caller expects;
//! - §4.1: basicConstraints present with `cA=false`;
//! - §4.3: key usage present and critical, with `digitalSignature`, without `keyCertSign` and
//!   `cRLSign`;
//! - §4.4: extended key usage, when present, has both `serverAuth` and `clientAuth` (sworn
//!   issues both, and peers use SVIDs on both sides of mTLS);
//! - §5 / RFC 5280 §6: the signatures chain to a root of the bundle, every certificate is
//!   valid at `now`, intermediates are CAs, and no certificate outlives its issuer;
//! - RFC 5280 §4.2: no critical extension the checker does not understand.

mod chain;
mod error;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use spiffe::TrustDomain;
use x509_parser::prelude::*;

pub use error::{CertRole, ProfileError};

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
    let leaf = parse(leaf_der, CertRole::Leaf)?;
    let spiffe_id = leaf_identity(&leaf)?;
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
    check_leaf_extensions(&leaf)?;
    chain::verify_path(&leaf, chain, bundle_roots, now)?;
    Ok(VerifiedSvid {
        spiffe_id,
        serial_hex: serial_hex(leaf.raw_serial()),
        not_before: to_system_time(leaf.validity().not_before.timestamp()),
        not_after: to_system_time(leaf.validity().not_after.timestamp()),
        dns_names: dns_names(&leaf),
    })
}

pub(crate) fn parse(der: &[u8], role: CertRole) -> Result<X509Certificate<'_>, ProfileError> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(ProfileError::Malformed {
            role,
            reason: "trailing bytes after the certificate".to_string(),
        }),
        Err(e) => Err(ProfileError::Malformed {
            role,
            reason: e.to_string(),
        }),
    }
}

fn leaf_identity(leaf: &X509Certificate<'_>) -> Result<SpiffeIdentity, ProfileError> {
    let san = leaf
        .subject_alternative_name()
        .map_err(|_| ProfileError::MalformedSan)?
        .ok_or(ProfileError::NoUriSan)?;
    let uris: Vec<&str> = san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::URI(u) => Some(*u),
            _ => None,
        })
        .collect();
    match uris.as_slice() {
        [] => Err(ProfileError::NoUriSan),
        [uri] => SpiffeIdentity::parse_including_reserved(uri).map_err(ProfileError::InvalidId),
        many => Err(ProfileError::MultipleUriSans { count: many.len() }),
    }
}

fn check_leaf_extensions(leaf: &X509Certificate<'_>) -> Result<(), ProfileError> {
    // Duplicated extensions make these accessors fail; a leaf with two basicConstraints is
    // treated as if it had none we can trust.
    let bc = leaf
        .basic_constraints()
        .ok()
        .flatten()
        .ok_or(ProfileError::MissingBasicConstraints)?;
    if bc.value.ca {
        return Err(ProfileError::LeafIsCa);
    }
    let ku = leaf
        .key_usage()
        .ok()
        .flatten()
        .ok_or(ProfileError::MissingKeyUsage)?;
    if !ku.critical {
        return Err(ProfileError::KeyUsageNotCritical);
    }
    if !ku.value.digital_signature() {
        return Err(ProfileError::NoDigitalSignature);
    }
    if ku.value.key_cert_sign() {
        return Err(ProfileError::KeyCertSignOnLeaf);
    }
    if ku.value.crl_sign() {
        return Err(ProfileError::CrlSignOnLeaf);
    }
    let eku = leaf
        .extended_key_usage()
        .map_err(|e| ProfileError::Malformed {
            role: CertRole::Leaf,
            reason: e.to_string(),
        })?;
    if let Some(eku) = eku {
        let missing = match (eku.value.server_auth, eku.value.client_auth) {
            (true, true) => None,
            (false, true) => Some("serverAuth"),
            (true, false) => Some("clientAuth"),
            (false, false) => Some("serverAuth and clientAuth"),
        };
        if let Some(missing) = missing {
            return Err(ProfileError::EkuIncomplete { missing });
        }
    }
    chain::reject_unknown_critical(leaf, CertRole::Leaf)
}

fn dns_names(leaf: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = leaf.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some((*d).to_string()),
            _ => None,
        })
        .collect()
}

fn serial_hex(raw: &[u8]) -> String {
    let trimmed: Vec<u8> = raw.iter().copied().skip_while(|b| *b == 0).collect();
    if trimmed.is_empty() {
        return "0".to_string();
    }
    trimmed.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn to_system_time(unix_secs: i64) -> SystemTime {
    if unix_secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(unix_secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(unix_secs.unsigned_abs())
    }
}

pub(crate) fn to_unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}
