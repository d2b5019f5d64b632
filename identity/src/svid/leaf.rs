//! The leaf's part of the X509-SVID profile, and the one place that reads a SPIFFE ID out of
//! a certificate ([`leaf_spiffe_id`]).
//!
//! The checks come in two groups, so a refusal names its cause whatever webpki would say:
//! [`check_usable`] holds what webpki also refuses in a leaf (validity, `cA=true`, an
//! extended key usage, an unknown critical extension) and runs before the path;
//! [`check_svid_extensions`] holds what only the X509-SVID profile adds (basicConstraints
//! and a critical key usage, with the right bits) and runs once the chain is trusted.

use x509_parser::prelude::*;

use super::cert::{check_validity, parse, reject_unknown_critical};
use super::error::{CertRole, ProfileError};
use crate::SpiffeIdentity;

/// The SPIFFE ID of a DER leaf: its single URI SAN (X509-SVID §2), parsed by sworn's rules
/// (reserved IDs such as `/sworn/server` allowed). Says nothing about whether the
/// certificate is trusted; use [`crate::check_x509_svid`] for that.
pub fn leaf_spiffe_id(der: &[u8]) -> Result<SpiffeIdentity, ProfileError> {
    identity(&parse(der, CertRole::Leaf)?)
}

/// Every check of the leaf alone (identity and extensions, not the path), for a process
/// vetting its own SVID before presenting it.
pub fn check_svid_leaf(der: &[u8]) -> Result<SpiffeIdentity, ProfileError> {
    let leaf = parse(der, CertRole::Leaf)?;
    let id = identity(&leaf)?;
    check_leaf_flags(&leaf)?;
    check_svid_extensions(&leaf)?;
    Ok(id)
}

pub(super) fn identity(leaf: &X509Certificate<'_>) -> Result<SpiffeIdentity, ProfileError> {
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

/// What webpki would also refuse in a leaf, checked first so the error names it: validity at
/// `now`, then [`check_leaf_flags`].
pub(super) fn check_usable(leaf: &X509Certificate<'_>, now: i64) -> Result<(), ProfileError> {
    check_validity(leaf, CertRole::Leaf, now)?;
    check_leaf_flags(leaf)
}

/// X509-SVID §4.1 (`cA=false`), §4.4 (extended key usage, when present, has both
/// `serverAuth` and `clientAuth`: sworn issues both, and SVIDs serve both sides of mTLS) and
/// RFC 5280 §4.2 (no unknown critical extension).
fn check_leaf_flags(leaf: &X509Certificate<'_>) -> Result<(), ProfileError> {
    if matches!(leaf.basic_constraints(), Ok(Some(bc)) if bc.value.ca) {
        return Err(ProfileError::LeafIsCa);
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
    reject_unknown_critical(leaf, CertRole::Leaf)
}

/// X509-SVID §4.1 and §4.3: basicConstraints present (sworn requires it, stating
/// `cA=false`, which [`check_leaf_flags`] checked); key usage present and critical, with `digitalSignature`, without
/// `keyCertSign` and `cRLSign`.
pub(super) fn check_svid_extensions(leaf: &X509Certificate<'_>) -> Result<(), ProfileError> {
    // Duplicated extensions make these accessors fail; a leaf with two basicConstraints is
    // treated as if it had none we can trust.
    if leaf.basic_constraints().ok().flatten().is_none() {
        return Err(ProfileError::MissingBasicConstraints);
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
    Ok(())
}

/// DNS SANs, in certificate order.
pub(super) fn dns_names(leaf: &X509Certificate<'_>) -> Vec<String> {
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

/// Serial number, lower-case hex without leading zeros.
pub(super) fn serial_hex(raw: &[u8]) -> String {
    let trimmed: Vec<u8> = raw.iter().copied().skip_while(|b| *b == 0).collect();
    if trimmed.is_empty() {
        return "0".to_string();
    }
    trimmed.iter().map(|b| format!("{b:02x}")).collect()
}
