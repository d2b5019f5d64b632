//! Certificates for the tests, generated with rcgen at each run (regenerate: run the test).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

pub const ID: &str = "spiffe://example.org/ns/default/sa/web";
pub const HOUR: Duration = Duration::from_secs(3600);

pub fn now() -> SystemTime {
    // Whole seconds, as certificates carry them.
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

pub fn at(t: SystemTime) -> OffsetDateTime {
    OffsetDateTime::from(t)
}

pub struct Ca {
    pub params: CertificateParams,
    pub key: KeyPair,
    pub der: Vec<u8>,
}

impl Ca {
    pub fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }
}

pub fn ca_params(cn: &str, nb: SystemTime, na: SystemTime) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = at(nb);
    p.not_after = at(na);
    p
}

pub fn root(cn: &str, nb: SystemTime, na: SystemTime) -> Ca {
    let params = ca_params(cn, nb, na);
    let key = KeyPair::generate().unwrap();
    let der = params.self_signed(&key).unwrap().der().to_vec();
    Ca { params, key, der }
}

pub fn intermediate(parent: &Ca, params: CertificateParams) -> Ca {
    let key = KeyPair::generate().unwrap();
    let der = params
        .signed_by(&key, &parent.issuer())
        .unwrap()
        .der()
        .to_vec();
    Ca { params, key, der }
}

pub fn leaf_params(now: SystemTime) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.subject_alt_names = vec![SanType::URI(ID.try_into().unwrap())];
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyAgreement,
    ];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    p.not_before = at(now - Duration::from_secs(10));
    p.not_after = at(now + HOUR);
    p
}

pub fn sign(params: &CertificateParams, ca: &Ca) -> Vec<u8> {
    let key = KeyPair::generate().unwrap();
    params.signed_by(&key, &ca.issuer()).unwrap().der().to_vec()
}

pub fn leaf_with(ca: &Ca, now: SystemTime, tweak: impl FnOnce(&mut CertificateParams)) -> Vec<u8> {
    let mut p = leaf_params(now);
    tweak(&mut p);
    sign(&p, ca)
}

/// A leaf for `id` signed by `ca`, after `tweak`, with its key.
pub fn svid_for(
    ca: &Ca,
    id: &str,
    now: SystemTime,
    tweak: impl FnOnce(&mut CertificateParams),
) -> (Vec<u8>, KeyPair) {
    let mut p = leaf_params(now);
    p.subject_alt_names = vec![SanType::URI(id.try_into().unwrap())];
    tweak(&mut p);
    let key = KeyPair::generate().unwrap();
    let der = p.signed_by(&key, &ca.issuer()).unwrap().der().to_vec();
    (der, key)
}
