//! Path validation from a leaf to a bundle root (RFC 5280 §6, reduced to what SVIDs need:
//! signatures, validity at `now`, CA flags on issuers, and NotAfter nesting).
//!
//! The path is linear: at each step the current certificate is first tried against every
//! bundle root whose subject matches its issuer (several roots may share a subject during CA
//! rotation); if none verifies, the next presented intermediate must be its issuer.

use std::time::SystemTime;

use x509_parser::oid_registry::{
    OID_X509_EXT_BASIC_CONSTRAINTS, OID_X509_EXT_EXTENDED_KEY_USAGE, OID_X509_EXT_KEY_USAGE,
    OID_X509_EXT_SUBJECT_ALT_NAME,
};
use x509_parser::prelude::*;

use super::{CertRole, ProfileError, parse, to_unix_secs};

/// Longest chain of intermediates accepted (sworn uses at most the upstream chain plus one).
const MAX_INTERMEDIATES: usize = 8;

pub(super) fn verify_path<C: AsRef<[u8]>, R: AsRef<[u8]>>(
    leaf: &X509Certificate<'_>,
    chain: &[C],
    bundle_roots: &[R],
    now: SystemTime,
) -> Result<(), ProfileError> {
    if bundle_roots.is_empty() {
        return Err(ProfileError::EmptyBundle);
    }
    if chain.len() > MAX_INTERMEDIATES {
        return Err(ProfileError::ChainTooLong {
            max: MAX_INTERMEDIATES,
        });
    }
    let now = to_unix_secs(now);
    let roots = bundle_roots
        .iter()
        .enumerate()
        .map(|(i, der)| parse(der.as_ref(), CertRole::Root(i)))
        .collect::<Result<Vec<_>, _>>()?;
    let intermediates = chain
        .iter()
        .enumerate()
        .map(|(i, der)| parse(der.as_ref(), CertRole::Intermediate(i)))
        .collect::<Result<Vec<_>, _>>()?;

    check_validity(leaf, CertRole::Leaf, now)?;
    let mut current = leaf;
    let mut current_role = CertRole::Leaf;
    let mut next = intermediates.iter().enumerate();
    loop {
        if let Some(result) = try_roots(current, current_role, &roots, now) {
            return result;
        }
        let Some((i, issuer)) = next.next() else {
            return Err(no_root_error(current, current_role, &roots));
        };
        let role = CertRole::Intermediate(i);
        if issuer.subject() != current.issuer() {
            return Err(ProfileError::ChainOutOfOrder { role });
        }
        if current.verify_signature(Some(issuer.public_key())).is_err() {
            return Err(ProfileError::BadSignature { role: current_role });
        }
        check_issuer(issuer, role, now)?;
        if current.validity().not_after > issuer.validity().not_after {
            return Err(ProfileError::OutlivesIssuer { role: current_role });
        }
        current = issuer;
        current_role = role;
    }
}

/// `Some` when a root with the issuer's subject verifies `cert`'s signature.
fn try_roots(
    cert: &X509Certificate<'_>,
    role: CertRole,
    roots: &[X509Certificate<'_>],
    now: i64,
) -> Option<Result<(), ProfileError>> {
    let (i, root) = roots.iter().enumerate().find(|(_, root)| {
        root.subject() == cert.issuer() && cert.verify_signature(Some(root.public_key())).is_ok()
    })?;
    let check = || {
        check_validity(root, CertRole::Root(i), now)?;
        if cert.validity().not_after > root.validity().not_after {
            return Err(ProfileError::OutlivesIssuer { role });
        }
        Ok(())
    };
    Some(check())
}

/// A root with the right subject exists but no signature verified: the certificate was
/// tampered with or signed by another key of the same name; otherwise nothing matches.
fn no_root_error(
    cert: &X509Certificate<'_>,
    role: CertRole,
    roots: &[X509Certificate<'_>],
) -> ProfileError {
    if roots.iter().any(|r| r.subject() == cert.issuer()) {
        ProfileError::BadSignature { role }
    } else {
        ProfileError::NoTrustedRoot
    }
}

fn check_validity(
    cert: &X509Certificate<'_>,
    role: CertRole,
    now: i64,
) -> Result<(), ProfileError> {
    let validity = cert.validity();
    if now < validity.not_before.timestamp() {
        return Err(ProfileError::NotYetValid { role });
    }
    if now > validity.not_after.timestamp() {
        return Err(ProfileError::Expired { role });
    }
    Ok(())
}

fn check_issuer(cert: &X509Certificate<'_>, role: CertRole, now: i64) -> Result<(), ProfileError> {
    check_validity(cert, role, now)?;
    let is_ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    let may_sign = match cert.key_usage() {
        Ok(Some(ku)) => ku.value.key_cert_sign(),
        Ok(None) => true,
        Err(_) => false,
    };
    if !is_ca || !may_sign {
        return Err(ProfileError::IssuerNotCa { role });
    }
    reject_unknown_critical(cert, role)
}

/// RFC 5280 §4.2: a certificate with a critical extension the verifier does not process
/// must be rejected.
pub(super) fn reject_unknown_critical(
    cert: &X509Certificate<'_>,
    role: CertRole,
) -> Result<(), ProfileError> {
    let known = [
        OID_X509_EXT_BASIC_CONSTRAINTS,
        OID_X509_EXT_KEY_USAGE,
        OID_X509_EXT_EXTENDED_KEY_USAGE,
        OID_X509_EXT_SUBJECT_ALT_NAME,
    ];
    match cert
        .extensions()
        .iter()
        .find(|ext| ext.critical && !known.contains(&ext.oid))
    {
        Some(ext) => Err(ProfileError::UnknownCriticalExtension {
            role,
            oid: ext.oid.to_id_string(),
        }),
        None => Ok(()),
    }
}
