//! X509-SVID profile checker against fixtures named after their defect.
//!
//! Every fixture is generated here with rcgen (regenerate: just run the test); each differs
//! from the `good_svid` baseline in exactly the way its name says.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use sworn_identity::{
    CertRole, Expected, ProfileError, SpiffeIdentity, check_x509_svid, parse_trust_domain,
};
use time::OffsetDateTime;

const ID: &str = "spiffe://example.org/ns/default/sa/web";
const HOUR: Duration = Duration::from_secs(3600);

fn now() -> SystemTime {
    // Whole seconds, as certificates carry them.
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn at(t: SystemTime) -> OffsetDateTime {
    OffsetDateTime::from(t)
}

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    der: Vec<u8>,
}

impl Ca {
    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }
}

fn ca_params(cn: &str, nb: SystemTime, na: SystemTime) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = at(nb);
    p.not_after = at(na);
    p
}

fn root(cn: &str, nb: SystemTime, na: SystemTime) -> Ca {
    let params = ca_params(cn, nb, na);
    let key = KeyPair::generate().unwrap();
    let der = params.self_signed(&key).unwrap().der().to_vec();
    Ca { params, key, der }
}

fn intermediate(parent: &Ca, params: CertificateParams) -> Ca {
    let key = KeyPair::generate().unwrap();
    let der = params
        .signed_by(&key, &parent.issuer())
        .unwrap()
        .der()
        .to_vec();
    Ca { params, key, der }
}

fn leaf_params(now: SystemTime) -> CertificateParams {
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

fn sign(params: &CertificateParams, ca: &Ca) -> Vec<u8> {
    let key = KeyPair::generate().unwrap();
    params.signed_by(&key, &ca.issuer()).unwrap().der().to_vec()
}

fn leaf_with(ca: &Ca, now: SystemTime, tweak: impl FnOnce(&mut CertificateParams)) -> Vec<u8> {
    let mut p = leaf_params(now);
    tweak(&mut p);
    sign(&p, ca)
}

struct Case {
    name: &'static str,
    leaf: Vec<u8>,
    chain: Vec<Vec<u8>>,
    roots: Vec<Vec<u8>>,
    expected_id: &'static str,
    want: Result<(), ProfileError>,
}

#[test]
fn fixtures_fail_for_the_defect_they_are_named_after() {
    let now = now();
    let root_ca = root("test root", now - HOUR, now + 24 * HOUR);
    let other_root = root("other root", now - HOUR, now + 24 * HOUR);
    let same_name_root = root("test root", now - HOUR, now + 24 * HOUR);
    let inter = intermediate(
        &root_ca,
        ca_params("test inter", now - HOUR, now + 12 * HOUR),
    );
    let short_root = root("short root", now - HOUR, now + HOUR / 2);
    let expired_inter = intermediate(
        &root_ca,
        ca_params("test inter", now - 2 * HOUR, now - HOUR),
    );
    let mut not_ca_params = ca_params("test inter", now - HOUR, now + 12 * HOUR);
    not_ca_params.is_ca = IsCa::ExplicitNoCa;
    let inter_not_ca = intermediate(&root_ca, not_ca_params);

    let good = leaf_with(&root_ca, now, |_| {});
    let mut tampered = good.clone();
    let last = tampered.len() - 3;
    tampered[last] ^= 0x55;
    let roots = vec![root_ca.der.clone()];
    let ok = Ok(());
    use ProfileError as E;
    let case = |name, leaf, want| Case {
        name,
        leaf,
        chain: vec![],
        roots: roots.clone(),
        expected_id: ID,
        want,
    };
    let mut ku_not_critical = CustomExtension::from_oid_content(
        &[2, 5, 29, 15],
        vec![0x03, 0x02, 0x07, 0x80], // BIT STRING: digitalSignature
    );
    ku_not_critical.set_criticality(false);
    let mut unknown_critical = CustomExtension::from_oid_content(&[1, 2, 3, 4], vec![0x05, 0x00]);
    unknown_critical.set_criticality(true);

    let cases = vec![
        case("good_svid", good.clone(), ok.clone()),
        Case {
            name: "good_svid_via_intermediate",
            chain: vec![inter.der.clone()],
            ..case("", leaf_with(&inter, now, |_| {}), ok.clone())
        },
        case(
            "leaf_ca_true",
            leaf_with(&root_ca, now, |p| {
                p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained)
            }),
            Err(E::LeafIsCa),
        ),
        case(
            "no_basic_constraints",
            leaf_with(&root_ca, now, |p| p.is_ca = IsCa::NoCa),
            Err(E::MissingBasicConstraints),
        ),
        case(
            "two_uri_sans",
            leaf_with(&root_ca, now, |p| {
                p.subject_alt_names.push(SanType::URI(
                    "spiffe://example.org/other".try_into().unwrap(),
                ))
            }),
            Err(E::MultipleUriSans { count: 2 }),
        ),
        case(
            "no_uri_san",
            leaf_with(&root_ca, now, |p| {
                p.subject_alt_names = vec![SanType::DnsName("web.example.org".try_into().unwrap())]
            }),
            Err(E::NoUriSan),
        ),
        case(
            "uri_san_not_spiffe",
            leaf_with(&root_ca, now, |p| {
                p.subject_alt_names =
                    vec![SanType::URI("https://example.org/x".try_into().unwrap())]
            }),
            Err(E::InvalidId(sworn_identity::IdError::Syntax(
                spiffe::spiffe_id::SpiffeIdError::WrongScheme,
            ))),
        ),
        case(
            "uri_san_trust_domain_only",
            leaf_with(&root_ca, now, |p| {
                p.subject_alt_names = vec![SanType::URI("spiffe://example.org".try_into().unwrap())]
            }),
            Err(E::InvalidId(sworn_identity::IdError::EmptyPath)),
        ),
        case(
            "no_key_usage",
            leaf_with(&root_ca, now, |p| p.key_usages = vec![]),
            Err(E::MissingKeyUsage),
        ),
        case(
            "ku_not_critical",
            leaf_with(&root_ca, now, |p| {
                p.key_usages = vec![];
                p.custom_extensions = vec![ku_not_critical.clone()];
            }),
            Err(E::KeyUsageNotCritical),
        ),
        case(
            "ku_without_digital_signature",
            leaf_with(&root_ca, now, |p| {
                p.key_usages = vec![KeyUsagePurpose::KeyEncipherment]
            }),
            Err(E::NoDigitalSignature),
        ),
        case(
            "key_cert_sign_on_leaf",
            leaf_with(&root_ca, now, |p| {
                p.key_usages.push(KeyUsagePurpose::KeyCertSign)
            }),
            Err(E::KeyCertSignOnLeaf),
        ),
        case(
            "crl_sign_on_leaf",
            leaf_with(&root_ca, now, |p| {
                p.key_usages.push(KeyUsagePurpose::CrlSign)
            }),
            Err(E::CrlSignOnLeaf),
        ),
        case(
            "eku_server_auth_only",
            leaf_with(&root_ca, now, |p| {
                p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth]
            }),
            Err(E::EkuIncomplete {
                missing: "clientAuth",
            }),
        ),
        case(
            "eku_code_signing",
            leaf_with(&root_ca, now, |p| {
                p.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning]
            }),
            Err(E::EkuIncomplete {
                missing: "serverAuth and clientAuth",
            }),
        ),
        case(
            "unknown_critical_extension",
            leaf_with(&root_ca, now, |p| {
                p.custom_extensions = vec![unknown_critical.clone()]
            }),
            Err(E::UnknownCriticalExtension {
                role: CertRole::Leaf,
                oid: "1.2.3.4".to_string(),
            }),
        ),
        case(
            "expired",
            leaf_with(&root_ca, now, |p| {
                p.not_before = at(now - 2 * HOUR);
                p.not_after = at(now - HOUR);
            }),
            Err(E::Expired {
                role: CertRole::Leaf,
            }),
        ),
        case(
            "not_yet_valid",
            leaf_with(&root_ca, now, |p| p.not_before = at(now + HOUR / 2)),
            Err(E::NotYetValid {
                role: CertRole::Leaf,
            }),
        ),
        case(
            "wrong_root",
            leaf_with(&other_root, now, |_| {}),
            Err(E::NoTrustedRoot),
        ),
        case(
            "same_name_other_key_root",
            leaf_with(&same_name_root, now, |_| {}),
            Err(E::BadSignature {
                role: CertRole::Leaf,
            }),
        ),
        case(
            "tampered_signature",
            tampered,
            Err(E::BadSignature {
                role: CertRole::Leaf,
            }),
        ),
        Case {
            name: "outlives_issuer",
            roots: vec![short_root.der.clone()],
            ..case(
                "",
                leaf_with(&short_root, now, |_| {}),
                Err(E::OutlivesIssuer {
                    role: CertRole::Leaf,
                }),
            )
        },
        Case {
            name: "unexpected_id",
            expected_id: "spiffe://example.org/ns/default/sa/other",
            ..case(
                "",
                good.clone(),
                Err(E::UnexpectedId {
                    expected: "spiffe://example.org/ns/default/sa/other".to_string(),
                    found: ID.to_string(),
                }),
            )
        },
        Case {
            name: "missing_intermediate",
            ..case("", leaf_with(&inter, now, |_| {}), Err(E::NoTrustedRoot))
        },
        Case {
            name: "expired_intermediate",
            chain: vec![expired_inter.der.clone()],
            ..case(
                "",
                leaf_with(&expired_inter, now, |_| {}),
                Err(E::Expired {
                    role: CertRole::Intermediate(0),
                }),
            )
        },
        Case {
            name: "intermediate_not_ca",
            chain: vec![inter_not_ca.der.clone()],
            ..case(
                "",
                leaf_with(&inter_not_ca, now, |_| {}),
                Err(E::IssuerNotCa {
                    role: CertRole::Intermediate(0),
                }),
            )
        },
        Case {
            name: "chain_out_of_order",
            chain: vec![other_root.der.clone()],
            ..case(
                "",
                leaf_with(&inter, now, |_| {}),
                Err(E::ChainOutOfOrder {
                    role: CertRole::Intermediate(0),
                }),
            )
        },
        Case {
            name: "empty_bundle",
            roots: vec![],
            ..case("", good.clone(), Err(E::EmptyBundle))
        },
        case(
            "garbage_leaf",
            b"not a certificate".to_vec(),
            Err(E::Malformed {
                role: CertRole::Leaf,
                reason: String::new(),
            }),
        ),
    ];
    let mut failures = Vec::new();
    for c in cases {
        let want = c.want;
        let expected = SpiffeIdentity::parse(c.expected_id).unwrap();
        let got =
            check_x509_svid(&c.leaf, &c.chain, Expected::Id(&expected), &c.roots, now).map(|_| ());
        let same = match (&got, &want) {
            // Parser messages are not part of the contract; the role is.
            (Err(E::Malformed { role: a, .. }), Err(E::Malformed { role: b, .. })) => a == b,
            _ => got == want,
        };
        if !same {
            failures.push(format!("{}: got {got:?}, want {want:?}", c.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_good_svid_reports_what_it_proves() {
    let now = now();
    let root_ca = root("test root", now - HOUR, now + 24 * HOUR);
    let leaf = leaf_with(&root_ca, now, |p| {
        p.subject_alt_names
            .push(SanType::DnsName("web.example.org".try_into().unwrap()));
        p.serial_number = Some(vec![0x00, 0x8f, 0x01].into());
    });
    let td = parse_trust_domain("example.org").unwrap();
    let v = check_x509_svid(
        &leaf,
        &[] as &[Vec<u8>],
        Expected::MemberOf(&td),
        &[&root_ca.der],
        now,
    )
    .unwrap();
    assert_eq!(v.spiffe_id.as_str(), ID);
    assert_eq!(v.dns_names, vec!["web.example.org".to_string()]);
    assert_eq!(v.serial_hex, "8f01");
    assert_eq!(v.not_after, now + HOUR);
    assert_eq!(v.not_before, now - Duration::from_secs(10));

    let other_td = parse_trust_domain("other.org").unwrap();
    assert_eq!(
        check_x509_svid(
            &leaf,
            &[] as &[Vec<u8>],
            Expected::MemberOf(&other_td),
            &[&root_ca.der],
            now
        ),
        Err(ProfileError::WrongTrustDomain {
            expected: "other.org".into(),
            found: "example.org".into()
        })
    );
    // Valid now, expired an hour and a minute later: `now` is the caller's clock, not the wall.
    assert_eq!(
        check_x509_svid(
            &leaf,
            &[] as &[Vec<u8>],
            Expected::MemberOf(&td),
            &[&root_ca.der],
            now + HOUR + Duration::from_secs(60)
        ),
        Err(ProfileError::Expired {
            role: CertRole::Leaf
        })
    );
}
