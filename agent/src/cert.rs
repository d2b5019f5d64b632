//! Facts the agent reads from certificates it receives: validity and the URI SAN.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use x509_parser::prelude::{FromDer, X509Certificate};

/// The validity window of a DER certificate, or `None` if it does not parse.
pub fn validity(der: &[u8]) -> Option<(SystemTime, SystemTime)> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let v = cert.validity();
    Some((
        to_system(v.not_before.timestamp())?,
        to_system(v.not_after.timestamp())?,
    ))
}

fn to_system(unix: i64) -> Option<SystemTime> {
    u64::try_from(unix)
        .ok()
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

/// When to renew a certificate valid over `[not_before, not_after]`: at half-life, brought
/// forward by up to a tenth of the lifetime at random so a fleet does not renew in lockstep.
pub fn renew_at(not_before: SystemTime, not_after: SystemTime) -> SystemTime {
    let life = not_after
        .duration_since(not_before)
        .unwrap_or(Duration::ZERO);
    let jitter = life.mul_f64(rand::random::<f64>() * 0.1);
    not_before + life / 2 - jitter
}

/// Time from now until `at` (zero if past).
pub fn until(at: SystemTime) -> Duration {
    at.duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
}
