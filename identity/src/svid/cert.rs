//! Reading one certificate: parsing, validity at a given time, and the critical extensions
//! this crate understands. Used by the leaf checks and the path checks alike.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use x509_parser::oid_registry::{
    OID_X509_EXT_BASIC_CONSTRAINTS, OID_X509_EXT_EXTENDED_KEY_USAGE, OID_X509_EXT_KEY_USAGE,
    OID_X509_EXT_SUBJECT_ALT_NAME,
};
use x509_parser::prelude::*;

use super::error::{CertRole, ProfileError};

/// Parses one DER certificate; trailing bytes are an error.
pub(super) fn parse(der: &[u8], role: CertRole) -> Result<X509Certificate<'_>, ProfileError> {
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

/// RFC 5280 §4.1.2.5: valid from NotBefore through NotAfter, both inclusive.
pub(super) fn check_validity(
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

/// `cert` must not outlive `issuer` (sworn never issues past its CA's NotAfter, and a
/// certificate that does is refused rather than trusted for its shorter part).
pub(super) fn check_nested(
    cert: &X509Certificate<'_>,
    role: CertRole,
    issuer: &X509Certificate<'_>,
) -> Result<(), ProfileError> {
    if cert.validity().not_after > issuer.validity().not_after {
        return Err(ProfileError::OutlivesIssuer { role });
    }
    Ok(())
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

pub(super) fn to_system_time(unix_secs: i64) -> SystemTime {
    if unix_secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(unix_secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(unix_secs.unsigned_abs())
    }
}

pub(super) fn to_unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}
