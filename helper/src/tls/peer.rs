//! The X509-SVID profile of a leaf certificate (X509-SVID spec §4, §5): exactly one URI SAN
//! holding a SPIFFE ID, `cA` not set, and when key usage is present, `digitalSignature` set
//! and neither `keyCertSign` nor `cRLSign`. Checked before chain validation so a refusal can
//! name the peer's ID; the chain itself is validated by webpki against the bundle.

use spiffe::SpiffeId;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Why a leaf is not an X509-SVID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// The certificate does not parse.
    #[error("certificate does not parse")]
    Malformed,
    /// No URI SAN at all.
    #[error("no uri san")]
    NoUriSan,
    /// More than one URI SAN.
    #[error("more than one uri san")]
    SeveralUriSans,
    /// The URI SAN is not a SPIFFE ID.
    #[error("uri san is not a spiffe id: {0}")]
    NotSpiffeId(String),
    /// The leaf is a CA certificate.
    #[error("leaf has ca=true")]
    LeafIsCa,
    /// Key usage lacks `digitalSignature` or has `keyCertSign`/`cRLSign`.
    #[error("leaf key usage does not fit an x509-svid")]
    KeyUsage,
}

/// The SPIFFE ID of a leaf that satisfies the X509-SVID profile.
pub fn peer_spiffe_id(der: &[u8]) -> Result<SpiffeId, PeerError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|_| PeerError::Malformed)?;
    if let Ok(Some(bc)) = cert.basic_constraints() {
        if bc.value.ca {
            return Err(PeerError::LeafIsCa);
        }
    }
    match cert.key_usage() {
        Ok(Some(ku)) => {
            let ku = ku.value;
            if !ku.digital_signature() || ku.key_cert_sign() || ku.crl_sign() {
                return Err(PeerError::KeyUsage);
            }
        }
        Ok(None) => {}
        Err(_) => return Err(PeerError::Malformed),
    }
    let san = cert
        .subject_alternative_name()
        .map_err(|_| PeerError::Malformed)?
        .ok_or(PeerError::NoUriSan)?;
    let mut uris = san.value.general_names.iter().filter_map(|n| match n {
        GeneralName::URI(u) => Some(*u),
        _ => None,
    });
    let uri = uris.next().ok_or(PeerError::NoUriSan)?;
    if uris.next().is_some() {
        return Err(PeerError::SeveralUriSans);
    }
    SpiffeId::new(uri).map_err(|e| PeerError::NotSpiffeId(e.to_string()))
}
