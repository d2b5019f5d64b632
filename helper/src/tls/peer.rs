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
    match cert.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => return Err(PeerError::LeafIsCa),
        Ok(_) => {}
        Err(_) => return Err(PeerError::Malformed),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose, SanType};

    fn cert(uris: &[&str], edit: impl FnOnce(&mut CertificateParams)) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.subject_alt_names = uris
            .iter()
            .map(|u| SanType::URI((*u).try_into().unwrap()))
            .collect();
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        edit(&mut p);
        p.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn leaf_profile_defects_are_named() {
        let ok = cert(&["spiffe://td/web"], |_| {});
        assert_eq!(peer_spiffe_id(&ok).unwrap().to_string(), "spiffe://td/web");
        assert_eq!(peer_spiffe_id(&cert(&[], |_| {})), Err(PeerError::NoUriSan));
        assert_eq!(
            peer_spiffe_id(&cert(&["spiffe://td/a", "spiffe://td/b"], |_| {})),
            Err(PeerError::SeveralUriSans)
        );
        assert!(matches!(
            peer_spiffe_id(&cert(&["https://td/web"], |_| {})),
            Err(PeerError::NotSpiffeId(_))
        ));
        let ca_leaf = cert(&["spiffe://td/web"], |p| {
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        });
        assert_eq!(peer_spiffe_id(&ca_leaf), Err(PeerError::LeafIsCa));
        let signer = cert(&["spiffe://td/web"], |p| {
            p.key_usages.push(KeyUsagePurpose::KeyCertSign);
        });
        assert_eq!(peer_spiffe_id(&signer), Err(PeerError::KeyUsage));
        let no_sig = cert(&["spiffe://td/web"], |p| {
            p.key_usages = vec![KeyUsagePurpose::KeyEncipherment];
        });
        assert_eq!(peer_spiffe_id(&no_sig), Err(PeerError::KeyUsage));
        assert_eq!(peer_spiffe_id(b"not der"), Err(PeerError::Malformed));
    }
}
