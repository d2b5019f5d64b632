//! Minting: the X509-SVID profile of what the CA issues, `openssl verify`, the serial
//! encoding, hostile CSRs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ca_support;

use std::time::Duration;

use ca_support::*;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519, SanType,
};
use sworn_identity::{Expected, Serial, SpiffeIdentity, check_x509_svid};
use sworn_server::ca::{CsrError, IssuedSvid, MintError, MintRequest, SvidKeyPair, certs_to_pem};
use sworn_server::clock::{Clock, FakeClock};
use x509_parser::prelude::*;

const WEB: &str = "spiffe://example.org/ns/default/sa/web";

type Check = fn(&X509Certificate<'_>, &Ctx) -> Result<(), String>;

struct Ctx {
    id: String,
    ca_not_after: i64,
    now: i64,
    ttl: i64,
    dns: Vec<String>,
}

fn ensure(ok: bool, msg: impl Into<String>) -> Result<(), String> {
    if ok { Ok(()) } else { Err(msg.into()) }
}

fn sans<'a>(c: &'a X509Certificate<'a>) -> Vec<&'a GeneralName<'a>> {
    c.subject_alternative_name()
        .unwrap()
        .map(|s| s.value.general_names.iter().collect())
        .unwrap_or_default()
}

/// The X509-SVID checklist (X509-SVID spec §2, §4) plus sworn's issuing
/// policy (docs/architecture.md, "The CA").
const PROFILE: &[(&str, Check)] = &[
    ("exactly one uri san, the requested id", |c, ctx| {
        let uris: Vec<_> = sans(c)
            .into_iter()
            .filter_map(|n| match n {
                GeneralName::URI(u) => Some(u.to_string()),
                _ => None,
            })
            .collect();
        ensure(uris == vec![ctx.id.clone()], format!("uris {uris:?}"))
    }),
    ("dns sans exactly as requested, nothing else", |c, ctx| {
        let dns: Vec<_> = sans(c)
            .into_iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(d.to_string()),
                GeneralName::URI(_) => None,
                other => Some(format!("unexpected {other:?}")),
            })
            .collect();
        ensure(dns == ctx.dns, format!("dns {dns:?}"))
    }),
    ("basic constraints present, ca=false", |c, _| {
        let bc = c
            .basic_constraints()
            .unwrap()
            .ok_or("no basic constraints")?;
        ensure(!bc.value.ca, "ca=true")
    }),
    (
        "key usage critical: digitalSignature, keyEncipherment, keyAgreement only",
        |c, _| {
            let ku = c.key_usage().unwrap().ok_or("no key usage")?;
            ensure(ku.critical, "not critical")?;
            let v = ku.value;
            ensure(v.digital_signature(), "no digitalSignature")?;
            ensure(
                !v.key_cert_sign() && !v.crl_sign(),
                "may sign certificates or crls",
            )?;
            ensure(
                v.key_encipherment() && v.key_agreement(),
                "missing keyEncipherment/keyAgreement",
            )
        },
    ),
    ("eku serverAuth and clientAuth", |c, _| {
        let eku = c.extended_key_usage().unwrap().ok_or("no eku")?;
        ensure(
            eku.value.server_auth && eku.value.client_auth,
            "incomplete eku",
        )?;
        ensure(!eku.value.any && eku.value.other.is_empty(), "extra eku")
    }),
    ("not after = min(now + ttl, ca not after)", |c, ctx| {
        let na = c.validity().not_after.timestamp();
        ensure(
            na == (ctx.now + ctx.ttl).min(ctx.ca_not_after),
            format!("not_after {na}"),
        )
    }),
    ("not before backdated 10 s", |c, ctx| {
        let nb = c.validity().not_before.timestamp();
        ensure(nb == ctx.now - 10, format!("not_before {nb}"))
    }),
    ("serial positive, about 128 bits", |c, _| {
        let raw = c.raw_serial();
        let significant = raw.iter().skip_while(|b| **b == 0).count();
        ensure(raw[0] & 0x80 == 0, "negative serial")?;
        ensure(
            (14..=16).contains(&significant),
            format!("{significant} serial bytes"),
        )
    }),
    ("subject is policy, not the csr's", |c, _| {
        let cns: Vec<_> = c.subject().iter_common_name().collect();
        ensure(cns.is_empty(), "subject has a common name")
    }),
];

fn check_profile(svid: &IssuedSvid, ctx: &Ctx) {
    let (_, cert) = X509Certificate::from_der(svid.leaf_der()).unwrap();
    let failures: Vec<String> = PROFILE
        .iter()
        .filter_map(|(name, check)| check(&cert, ctx).err().map(|e| format!("{name}: {e}")))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn minted_svids_follow_the_x509_svid_profile() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::at_wall_time();
    let ca = open(dir.path(), &clock);
    let ca_not_after = ca.status().unwrap().active_not_after;
    let secs = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
    };
    let cases: Vec<(&str, Duration, Vec<&str>)> = vec![
        ("short ttl", Duration::from_secs(300), vec![]),
        (
            "one hour with dns names",
            HOUR,
            vec!["web.example.org", "web.default.svc"],
        ),
        ("ttl beyond the ca is capped", 1000 * HOUR, vec![]),
    ];
    let mut serials = std::collections::HashSet::new();
    for (name, ttl, dns) in cases {
        let mut req = request(WEB, ttl);
        req.dns_names = dns.iter().map(|s| s.to_string()).collect();
        let svid = ca
            .mint_x509_svid(req)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let ctx = Ctx {
            id: WEB.into(),
            ca_not_after: secs(ca_not_after),
            now: secs(clock.now()),
            ttl: ttl.as_secs() as i64,
            dns: dns.iter().map(|s| s.to_string()).collect(),
        };
        check_profile(&svid, &ctx);
        assert_eq!(
            svid.chain_der.len(),
            1,
            "{name}: self-signed chain is the leaf alone"
        );
        assert!(svid.not_after <= ca_not_after, "{name}");
        let bundle = ca.bundle();
        check_x509_svid(
            svid.leaf_der(),
            &svid.chain_der[1..],
            Expected::Id(&id(WEB)),
            &bundle.roots_der,
            clock.now(),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(serials.insert(svid.serial.clone()), "{name}: serial reused");
    }
}

#[test]
fn openssl_verify_accepts_a_minted_svid_against_the_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::at_wall_time();
    let ca = open(dir.path(), &clock);
    let svid = mint(&ca, WEB, HOUR);
    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("bundle.pem"), ca.bundle().to_pem()).unwrap();
    std::fs::write(out.path().join("svid.pem"), svid.chain_pem()).unwrap();
    let (ok, text) = openssl(
        &[
            "verify",
            "-x509_strict",
            "-purpose",
            "sslclient",
            "-CAfile",
            "bundle.pem",
            "svid.pem",
        ],
        out.path(),
    );
    assert!(ok, "openssl verify failed:\n{text}");
    let (ok, text) = openssl(
        &[
            "verify",
            "-purpose",
            "sslserver",
            "-CAfile",
            "bundle.pem",
            "svid.pem",
        ],
        out.path(),
    );
    assert!(ok, "openssl verify (server purpose) failed:\n{text}");

    // And it fails against a bundle from another CA, so the check above can fail.
    let other_dir = tempfile::tempdir().unwrap();
    let other = open(other_dir.path(), &clock);
    std::fs::write(out.path().join("other.pem"), other.bundle().to_pem()).unwrap();
    let (ok, _) = openssl(&["verify", "-CAfile", "other.pem", "svid.pem"], out.path());
    assert!(!ok, "openssl accepted an svid against an unrelated bundle");
}

/// The serial the CA reports (and the agent API stores and audits) is the one `openssl x509
/// -serial` prints, also when DER adds a sign octet before a magnitude whose top bit is set.
#[test]
fn the_reported_serial_is_the_one_openssl_prints_with_or_without_a_der_sign_octet() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::at_wall_time();
    let ca = open(dir.path(), &clock);
    let out = tempfile::tempdir().unwrap();
    let (mut padded, mut unpadded) = (false, false);
    // Each draw has its top bit set with probability 1/2: 64 draws miss a kind with p = 2^-63.
    for _ in 0..64 {
        let svid = mint(&ca, WEB, HOUR);
        let (_, cert) = x509_parser::parse_x509_certificate(svid.leaf_der()).unwrap();
        let has_sign_octet = cert.raw_serial()[0] == 0;
        if (has_sign_octet && padded) || (!has_sign_octet && unpadded) {
            continue;
        }
        std::fs::write(out.path().join("svid.pem"), svid.chain_pem()).unwrap();
        let (ok, text) = openssl(
            &["x509", "-noout", "-serial", "-in", "svid.pem"],
            out.path(),
        );
        assert!(ok, "{text}");
        assert_eq!(
            text.trim(),
            format!("serial={}", svid.serial.to_string().to_uppercase()),
            "sign octet: {has_sign_octet}"
        );
        assert_eq!(
            Serial::of_certificate(svid.leaf_der()).unwrap(),
            svid.serial
        );
        padded |= has_sign_octet;
        unpadded |= !has_sign_octet;
        if padded && unpadded {
            return;
        }
    }
    panic!("64 serials, all of one kind: padded {padded}, unpadded {unpadded}");
}

fn hostile_csr(key: &KeyPair) -> Vec<u8> {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, "admin");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    p.subject_alt_names = vec![
        SanType::URI(
            "spiffe://example.org/ns/kube-system/sa/admin"
                .try_into()
                .unwrap(),
        ),
        SanType::URI("spiffe://other.org/x".try_into().unwrap()),
        SanType::DnsName("evil.example.com".try_into().unwrap()),
        SanType::IpAddress("10.0.0.1".parse().unwrap()),
        SanType::Rfc822Name("root@example.org".try_into().unwrap()),
    ];
    p.not_before = rcgen::date_time_ymd(2000, 1, 1);
    p.not_after = rcgen::date_time_ymd(4000, 1, 1);
    p.serialize_request(key).unwrap().der().to_vec()
}

#[test]
fn a_hostile_csr_contributes_only_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::at_wall_time();
    let ca = open(dir.path(), &clock);
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let svid = ca
        .mint_x509_svid(MintRequest {
            spiffe_id: id(WEB),
            csr_der: hostile_csr(&key),
            ttl: HOUR,
            dns_names: vec![],
        })
        .unwrap();
    let now = clock.now();
    let secs = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
    };
    check_profile(
        &svid,
        &Ctx {
            id: WEB.into(),
            ca_not_after: secs(ca.status().unwrap().active_not_after),
            now: secs(now),
            ttl: 3600,
            dns: vec![],
        },
    );
    let (_, cert) = X509Certificate::from_der(svid.leaf_der()).unwrap();
    assert_eq!(
        cert.public_key().subject_public_key.data.as_ref(),
        key.public_key_raw()
    );
}

fn openssl_rsa_csr(bits: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let (ok, text) = openssl(
        &[
            "req",
            "-new",
            "-newkey",
            &format!("rsa:{bits}"),
            "-nodes",
            "-keyout",
            "key.pem",
            "-subj",
            "/CN=rsa",
            "-outform",
            "DER",
            "-out",
            "csr.der",
        ],
        dir.path(),
    );
    assert!(ok, "openssl req failed:\n{text}");
    std::fs::read(dir.path().join("csr.der")).unwrap()
}

fn rcgen_csr(alg: &'static rcgen::SignatureAlgorithm) -> Vec<u8> {
    let key = KeyPair::generate_for(alg).unwrap();
    CertificateParams::default()
        .serialize_request(&key)
        .unwrap()
        .der()
        .to_vec()
}

#[test]
fn bad_csrs_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::at_wall_time();
    let ca = open(dir.path(), &clock);
    let good = SvidKeyPair::generate().unwrap().csr_der().unwrap();
    let mut bad_signature = good.clone();
    let last = bad_signature.len() - 2;
    bad_signature[last] ^= 0x01;
    let mut trailing = good.clone();
    trailing.push(0);

    let rsa_oid = "1.2.840.113549.1.1.1".to_string();
    let cases: Vec<(&str, Vec<u8>, CsrError)> = vec![
        ("bad_signature", bad_signature, CsrError::BadSignature),
        (
            "rsa_2048",
            openssl_rsa_csr("2048"),
            CsrError::UnsupportedKeyAlgorithm {
                oid: rsa_oid.clone(),
            },
        ),
        (
            "rsa_1024_weak",
            openssl_rsa_csr("1024"),
            CsrError::UnsupportedKeyAlgorithm { oid: rsa_oid },
        ),
        (
            "p384",
            rcgen_csr(&PKCS_ECDSA_P384_SHA384),
            CsrError::UnsupportedCurve {
                curve: "1.3.132.0.34".into(),
            },
        ),
        (
            "ed25519",
            rcgen_csr(&PKCS_ED25519),
            CsrError::UnsupportedKeyAlgorithm {
                oid: "1.3.101.112".into(),
            },
        ),
        (
            "trailing_bytes",
            trailing,
            CsrError::Malformed("trailing bytes".into()),
        ),
        (
            "huge",
            vec![0x30; 10_000],
            CsrError::TooLarge { len: 10_000 },
        ),
    ];
    for (name, csr_der, want) in cases {
        let got = ca.mint_x509_svid(MintRequest {
            spiffe_id: id(WEB),
            csr_der,
            ttl: HOUR,
            dns_names: vec![],
        });
        match got {
            Err(MintError::Csr(e)) => assert_eq!(e, want, "{name}"),
            other => panic!("{name}: expected a csr error, got {other:?}"),
        }
    }
    assert!(matches!(
        ca.mint_x509_svid(MintRequest {
            spiffe_id: id(WEB),
            csr_der: b"garbage".to_vec(),
            ttl: HOUR,
            dns_names: vec![]
        }),
        Err(MintError::Csr(CsrError::Malformed(_)))
    ));
}

#[test]
fn mint_requests_outside_policy_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::at_wall_time();
    let ca = open(dir.path(), &clock);
    let td = td();

    let server = SpiffeIdentity::sworn_server(&td).unwrap();
    let mut req = request(WEB, HOUR);
    req.spiffe_id = server.clone();
    assert!(matches!(
        ca.mint_x509_svid(req.clone()),
        Err(MintError::Reserved(_))
    ));
    let svid = ca.mint_sworn_svid(req).unwrap();
    assert_eq!(svid.spiffe_id, server);
    assert!(matches!(
        ca.mint_sworn_svid(request(WEB, HOUR)),
        Err(MintError::NotReserved(_))
    ));
    assert!(matches!(
        ca.mint_x509_svid(request("spiffe://other.org/x", HOUR)),
        Err(MintError::WrongTrustDomain { .. })
    ));
    assert!(matches!(
        ca.mint_x509_svid(request(WEB, Duration::ZERO)),
        Err(MintError::ZeroTtl)
    ));
    for bad in [
        "Web.example.org",
        "web.example.org.",
        "*.example.org",
        "10.0.0.1",
        "",
        "a..b",
        "-a.example.org",
    ] {
        let mut req = request(WEB, HOUR);
        req.dns_names = vec![bad.to_string()];
        assert!(
            matches!(
                ca.mint_x509_svid(req),
                Err(MintError::InvalidDnsName { .. })
            ),
            "{bad:?} accepted"
        );
    }
    let mut req = request(WEB, HOUR);
    req.dns_names = vec!["a.example.org".into(), "a.example.org".into()];
    let svid = ca.mint_x509_svid(req).unwrap();
    let (_, cert) = X509Certificate::from_der(svid.leaf_der()).unwrap();
    assert_eq!(sans(&cert).len(), 2, "duplicate dns name not collapsed");
    assert!(svid.chain_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(certs_to_pem(&svid.chain_der), svid.chain_pem());
}
