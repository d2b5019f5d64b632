//! From the leaf to a bundle root (RFC 5280 §6). webpki builds and verifies the path
//! (signatures, issuer names, CA flags, path length, name constraints); this module adds
//! what sworn requires beyond it and names the certificate a refusal is about:
//!
//! - the presented chain is in order, each certificate the issuer (by name) of the one
//!   before it (RFC 5246 §7.4.2, RFC 8446 §4.4.2), and every presented intermediate is valid
//!   at `now`, a CA allowed to sign certificates, without unknown critical extensions
//!   (checked before webpki, so the error names the intermediate);
//! - on every path webpki finds, the bundle root is valid at `now` and no certificate
//!   outlives its issuer (webpki's trust anchors carry no dates). A path refused here lets
//!   webpki go on to the next candidate root;
//! - several roots may share a subject (a CA rotation that kept the name): webpki tries each
//!   of them, so a leaf under either verifies.
//!
//! When webpki refuses, [`name_refusal`] says which certificate is at fault; it only names,
//! it never accepts.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, ExtendedKeyUsageValidator, KeyPurposeIdIter, KeyUsage, VerifiedPath};
use x509_parser::prelude::*;

use super::cert::{check_nested, check_validity, parse, reject_unknown_critical, to_unix_secs};
use super::error::{CertRole, ProfileError};

/// Longest chain of intermediates accepted: webpki's own limit on path building.
const MAX_INTERMEDIATES: usize = 6;

/// Signature algorithms accepted on certificates: the same set as rustls' ring provider.
static ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] = &[
    webpki::ring::ECDSA_P256_SHA256,
    webpki::ring::ECDSA_P256_SHA384,
    webpki::ring::ECDSA_P384_SHA256,
    webpki::ring::ECDSA_P384_SHA384,
    webpki::ring::ED25519,
    webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    webpki::ring::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
    webpki::ring::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
    webpki::ring::RSA_PKCS1_2048_8192_SHA256,
    webpki::ring::RSA_PKCS1_2048_8192_SHA384,
    webpki::ring::RSA_PKCS1_2048_8192_SHA512,
    webpki::ring::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
    webpki::ring::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
    webpki::ring::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
];

/// Which extended key usage the certificates of the path must allow, when they list any
/// (RFC 5280 §4.2.1.12). The leaf's own list is already held to X509-SVID §4.4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// No requirement beyond the leaf's profile (the CA re-checking what it minted).
    Any,
    /// The peer is a TLS client.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    ClientAuth,
    /// The peer is a TLS server.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    ServerAuth,
}

impl ExtendedKeyUsageValidator for Purpose {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        match self {
            Purpose::Any => Ok(()),
            Purpose::ClientAuth => KeyUsage::client_auth().validate(iter),
            Purpose::ServerAuth => KeyUsage::server_auth().validate(iter),
        }
    }
}

/// Whether `der` can serve as a bundle root here: it parses as X.509 and as a webpki trust
/// anchor.
#[cfg(feature = "tls")]
pub(crate) fn usable_root(der: &[u8]) -> bool {
    parse(der, CertRole::Root(0)).is_ok()
        && webpki::anchor_from_trusted_cert(&CertificateDer::from(der)).is_ok()
}

/// Verifies `leaf` (already parsed from `leaf_der`) through `chain` to a root of
/// `bundle_roots` at `now`.
pub(super) fn verify_path<C: AsRef<[u8]>, R: AsRef<[u8]>>(
    leaf_der: &[u8],
    leaf: &X509Certificate<'_>,
    chain: &[C],
    bundle_roots: &[R],
    now: SystemTime,
    purpose: Purpose,
) -> Result<(), ProfileError> {
    if bundle_roots.is_empty() {
        return Err(ProfileError::EmptyBundle);
    }
    if chain.len() > MAX_INTERMEDIATES {
        return Err(ProfileError::ChainTooLong {
            max: MAX_INTERMEDIATES,
        });
    }
    let now_secs = to_unix_secs(now);
    let roots = bundle_roots
        .iter()
        .enumerate()
        .map(|(i, der)| parse(der.as_ref(), CertRole::Root(i)))
        .collect::<Result<Vec<_>, _>>()?;
    let root_ders: Vec<CertificateDer<'_>> = bundle_roots
        .iter()
        .map(|der| CertificateDer::from(der.as_ref()))
        .collect();
    let anchors = root_ders
        .iter()
        .enumerate()
        .map(|(i, der)| {
            webpki::anchor_from_trusted_cert(der).map_err(|e| ProfileError::Malformed {
                role: CertRole::Root(i),
                reason: format!("{e:?}"),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let intermediates = chain
        .iter()
        .enumerate()
        .map(|(i, der)| parse(der.as_ref(), CertRole::Intermediate(i)))
        .collect::<Result<Vec<_>, _>>()?;
    check_presented_chain(leaf, &intermediates, now_secs)?;

    let leaf_der = CertificateDer::from(leaf_der);
    let end_entity = EndEntityCert::try_from(&leaf_der).map_err(|e| ProfileError::Malformed {
        role: CertRole::Leaf,
        reason: format!("{e:?}"),
    })?;
    let chain_ders: Vec<CertificateDer<'_>> = chain
        .iter()
        .map(|der| CertificateDer::from(der.as_ref()))
        .collect();
    let candidate = Candidate {
        leaf,
        anchors: &anchors,
        roots: &roots,
        chain_ders: &chain_ders,
        intermediates: &intermediates,
        now: now_secs,
    };
    // The first refusal of a path that webpki had verified: the most telling reason.
    let refused = RefCell::new(None);
    let check_dates = |path: &VerifiedPath<'_>| {
        candidate.check_dates(path).map_err(|e| {
            refused.borrow_mut().get_or_insert(e);
            webpki::Error::UnknownIssuer
        })
    };
    let time = UnixTime::since_unix_epoch(now.duration_since(UNIX_EPOCH).unwrap_or_default());
    let verified: Result<(), webpki::Error> = end_entity
        .verify_for_usage(
            ALGORITHMS,
            &anchors,
            &chain_ders,
            time,
            purpose,
            None,
            Some(&check_dates),
        )
        .map(|_| ());
    match verified {
        Ok(()) => Ok(()),
        Err(error) => Err(refused
            .borrow_mut()
            .take()
            .unwrap_or_else(|| name_refusal(&error, leaf, &intermediates, &roots))),
    }
}

/// The presented chain: in order, and every intermediate a CA valid at `now`.
fn check_presented_chain(
    leaf: &X509Certificate<'_>,
    intermediates: &[X509Certificate<'_>],
    now: i64,
) -> Result<(), ProfileError> {
    let mut child = leaf;
    for (i, cert) in intermediates.iter().enumerate() {
        let role = CertRole::Intermediate(i);
        if cert.subject() != child.issuer() {
            return Err(ProfileError::ChainOutOfOrder { role });
        }
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
        reject_unknown_critical(cert, role)?;
        child = cert;
    }
    Ok(())
}

/// What a path found by webpki is checked against.
struct Candidate<'a, 'c> {
    leaf: &'a X509Certificate<'c>,
    anchors: &'a [TrustAnchor<'a>],
    roots: &'a [X509Certificate<'c>],
    chain_ders: &'a [CertificateDer<'a>],
    intermediates: &'a [X509Certificate<'c>],
    now: i64,
}

impl Candidate<'_, '_> {
    /// The root webpki chose is valid now, and each certificate ends no later than its issuer.
    fn check_dates(&self, path: &VerifiedPath<'_>) -> Result<(), ProfileError> {
        let unknown = || ProfileError::PathRefused {
            reason: "webpki chose a certificate that was not given to it".into(),
        };
        let i = self
            .anchors
            .iter()
            .position(|a| std::ptr::eq(a, path.anchor()))
            .ok_or_else(unknown)?;
        let root = self.roots.get(i).ok_or_else(unknown)?;
        check_validity(root, CertRole::Root(i), self.now)?;
        let (mut child, mut role) = (self.leaf, CertRole::Leaf);
        for cert in path.intermediate_certificates() {
            let j = self
                .chain_ders
                .iter()
                .position(|der| der.as_ref() == cert.der().as_ref())
                .ok_or_else(unknown)?;
            let issuer = self.intermediates.get(j).ok_or_else(unknown)?;
            check_nested(child, role, issuer)?;
            (child, role) = (issuer, CertRole::Intermediate(j));
        }
        check_nested(child, role, root)
    }
}

/// Which certificate made webpki refuse. The presented chain is in order (checked before
/// webpki ran), so an unknown issuer or a bad signature is either a link of that chain whose
/// signature does not verify, or a top certificate that no bundle root signed.
fn name_refusal(
    error: &webpki::Error,
    leaf: &X509Certificate<'_>,
    intermediates: &[X509Certificate<'_>],
    roots: &[X509Certificate<'_>],
) -> ProfileError {
    let refused = || ProfileError::PathRefused {
        // webpki's Display is its Debug.
        reason: format!("{error:?}"),
    };
    if !matches!(
        error,
        webpki::Error::UnknownIssuer | webpki::Error::InvalidSignatureForPublicKey
    ) {
        return refused();
    }
    let (mut child, mut role) = (leaf, CertRole::Leaf);
    for (i, issuer) in intermediates.iter().enumerate() {
        if child.verify_signature(Some(issuer.public_key())).is_err() {
            return ProfileError::BadSignature { role };
        }
        (child, role) = (issuer, CertRole::Intermediate(i));
    }
    let mut same_name = roots
        .iter()
        .filter(|root| root.subject() == child.issuer())
        .peekable();
    if same_name.peek().is_none() {
        return ProfileError::NoTrustedRoot;
    }
    if same_name.any(|root| child.verify_signature(Some(root.public_key())).is_ok()) {
        // A root signed it, yet webpki refused: say what webpki said.
        return refused();
    }
    ProfileError::BadSignature { role }
}
