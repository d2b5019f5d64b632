//! Fuzz target for the server's CSR check, `verify_p256_csr` (docs/architecture.md,
//! "The CA"): every agent's mint request carries a CSR the server parses before it
//! decides anything.
//!
//! Invariants:
//! - no panic, for any bytes;
//! - nothing larger than the 8 KiB cap is accepted;
//! - an accepted CSR is, checked independently of the function: one whole DER PKCS#10
//!   request with no trailing bytes, an EC key on P-256, signed with
//!   ecdsa-with-SHA256, and its signature over the request info verifies with ring
//!   under the returned key (proof of possession);
//! - the returned key is that CSR's own 65-byte uncompressed point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rcgen::PublicKeyData;
use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use sworn_server::ca::verify_p256_csr;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_SIG_ECDSA_WITH_SHA256,
};
use x509_parser::prelude::{FromDer, X509CertificationRequest};

const MAX_CSR_BYTES: usize = 8 * 1024;

fuzz_target!(|data: &[u8]| {
    let Ok(key) = verify_p256_csr(data) else {
        return;
    };
    assert!(data.len() <= MAX_CSR_BYTES, "{} bytes accepted", data.len());
    let (rest, csr) = X509CertificationRequest::from_der(data).expect("an accepted csr parses");
    assert!(rest.is_empty(), "trailing bytes accepted");
    let info = &csr.certification_request_info;
    let spki = &info.subject_pki;
    assert_eq!(spki.algorithm.algorithm, OID_KEY_TYPE_EC_PUBLIC_KEY);
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok());
    assert_eq!(curve, Some(OID_EC_P256));
    assert_eq!(csr.signature_algorithm.algorithm, OID_SIG_ECDSA_WITH_SHA256);
    let point = key.der_bytes();
    assert_eq!(point, spki.subject_public_key.data.as_ref());
    assert!(
        point.len() == 65 && point[0] == 0x04,
        "not an uncompressed point"
    );
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
        .verify(info.raw, csr.signature_value.data.as_ref())
        .expect("an accepted csr's signature verifies");
});
