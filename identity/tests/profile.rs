//! X509-SVID profile checker against fixtures named after their defect.
//!
//! Every fixture is generated here with rcgen (regenerate: just run the test); each differs
//! from the `good_svid` baseline in exactly the way its name says.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use rcgen::{
    BasicConstraints, CustomExtension, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose, SanType,
};
use support::{HOUR, ID, at, ca_params, intermediate, leaf_with, now, root};
use sworn_identity::{
    CertRole, Expected, ProfileError, SpiffeIdentity, check_x509_svid, parse_trust_domain,
};

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

fn check(leaf: &[u8], chain: &[&Vec<u8>], roots: &[&Vec<u8>]) -> Result<(), ProfileError> {
    let td = parse_trust_domain("example.org").unwrap();
    check_x509_svid(leaf, chain, Expected::MemberOf(&td), roots, now()).map(|_| ())
}

#[test]
fn roots_sharing_a_subject_during_rotation_each_verify_the_leaves_they_signed() {
    // A CA rotation that keeps the CA's name: the old and the new root are both published.
    let now = now();
    let old = root("rotating root", now - 2 * HOUR, now + 24 * HOUR);
    let new = root("rotating root", now - HOUR, now + 48 * HOUR);
    let subject = |der: &[u8]| {
        let (_, c) = x509_parser::parse_x509_certificate(der).unwrap();
        c.subject().as_raw().to_vec()
    };
    assert_eq!(
        subject(&old.der),
        subject(&new.der),
        "the fixture needs one subject"
    );
    let under_old = leaf_with(&old, now, |_| {});
    let under_new = leaf_with(&new, now, |_| {});
    let new_inter = intermediate(
        &new,
        ca_params("rotating inter", now - HOUR, now + 12 * HOUR),
    );
    let under_new_inter = leaf_with(&new_inter, now, |_| {});
    for bundle in [[&old.der, &new.der], [&new.der, &old.der]] {
        assert_eq!(
            check(&under_old, &[], &bundle),
            Ok(()),
            "leaf under the old root"
        );
        assert_eq!(
            check(&under_new, &[], &bundle),
            Ok(()),
            "leaf under the new root"
        );
        assert_eq!(
            check(&under_new_inter, &[&new_inter.der], &bundle),
            Ok(()),
            "leaf under an intermediate of the new root"
        );
    }
    // The name never stands for the key: each root alone verifies only what it signed.
    assert_eq!(
        check(&under_new, &[], &[&old.der]),
        Err(ProfileError::BadSignature {
            role: CertRole::Leaf
        })
    );
    assert_eq!(
        check(&under_new_inter, &[&new_inter.der], &[&old.der]),
        Err(ProfileError::BadSignature {
            role: CertRole::Intermediate(0)
        })
    );
    // An expired root of the same name in front of the new one does not hide the new one,
    // and what only the expired one signed is refused for the root's date.
    let expired = root("rotating root", now - 3 * HOUR, now - HOUR);
    let under_expired = leaf_with(&expired, now, |p| p.not_before = at(now - 2 * HOUR));
    let bundle = [&expired.der, &new.der];
    assert_eq!(check(&under_new, &[], &bundle), Ok(()));
    assert_eq!(
        check(&under_expired, &[], &bundle),
        Err(ProfileError::Expired {
            role: CertRole::Root(0)
        })
    );
}

#[test]
fn an_expired_root_is_refused_for_its_date() {
    let now = now();
    let expired = root("old root", now - 3 * HOUR, now - HOUR);
    let leaf = leaf_with(&expired, now, |p| p.not_before = at(now - 2 * HOUR));
    assert_eq!(
        check(&leaf, &[], &[&expired.der]),
        Err(ProfileError::Expired {
            role: CertRole::Root(0)
        })
    );
}

#[test]
fn the_spiffe_id_of_a_leaf_is_its_single_uri_san() {
    let now = now();
    let ca = root("test root", now - HOUR, now + 24 * HOUR);
    let id = |tweak: fn(&mut rcgen::CertificateParams)| {
        sworn_identity::leaf_spiffe_id(&leaf_with(&ca, now, tweak))
    };
    assert_eq!(id(|_| {}).unwrap().as_str(), ID);
    assert_eq!(
        id(|p| p.subject_alt_names = vec![SanType::URI(
            "spiffe://example.org/sworn/server".try_into().unwrap()
        )])
        .unwrap()
        .as_str(),
        "spiffe://example.org/sworn/server",
        "reserved ids are read (the agent pins the server's)"
    );
    assert_eq!(
        id(|p| p
            .subject_alt_names
            .push(SanType::URI("spiffe://example.org/b".try_into().unwrap()))),
        Err(ProfileError::MultipleUriSans { count: 2 })
    );
    assert_eq!(
        id(|p| p.subject_alt_names = vec![SanType::DnsName("a.example".try_into().unwrap())]),
        Err(ProfileError::NoUriSan)
    );
    assert!(matches!(
        id(|p| p.subject_alt_names =
            vec![SanType::URI("https://example.org/a".try_into().unwrap())]),
        Err(ProfileError::InvalidId(_))
    ));
    assert!(matches!(
        sworn_identity::leaf_spiffe_id(b"not der"),
        Err(ProfileError::Malformed {
            role: CertRole::Leaf,
            ..
        })
    ));
    // The leaf checks alone, for a process vetting its own SVID: a CA leaf is refused.
    let ca_leaf = leaf_with(&ca, now, |p| {
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained)
    });
    assert_eq!(
        sworn_identity::leaf_spiffe_id(&ca_leaf).unwrap().as_str(),
        ID
    );
    assert_eq!(
        sworn_identity::check_svid_leaf(&ca_leaf),
        Err(ProfileError::LeafIsCa)
    );
}
