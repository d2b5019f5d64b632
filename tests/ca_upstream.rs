//! Upstream mode: sworn runs as an intermediate under a CA given as PEM files; SVIDs chain to
//! the upstream root, which is the bundle.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ca_support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ca_support::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use sworn_identity::{Expected, check_x509_svid};
use sworn_server::ca::{CaConfig, CaError, CertificateAuthority, UpstreamConfig, certs_to_pem};
use sworn_server::clock::{Clock, FakeClock};

const WEB: &str = "spiffe://example.org/ns/default/sa/web";

struct TestCa {
    params: CertificateParams,
    key: KeyPair,
    der: Vec<u8>,
}

fn ca_params(cn: &str, now: SystemTime, life: Duration) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = (now - HOUR).into();
    p.not_after = (now + life).into();
    p
}

fn upstream_root(now: SystemTime, life: Duration) -> TestCa {
    let params = ca_params("test upstream root", now, life);
    let key = KeyPair::generate().unwrap();
    let der = params.self_signed(&key).unwrap().der().to_vec();
    TestCa { params, key, der }
}

fn upstream_intermediate(root: &TestCa, now: SystemTime) -> TestCa {
    let params = ca_params("test upstream intermediate", now, 100 * HOUR);
    let key = KeyPair::generate().unwrap();
    let der = params
        .signed_by(&key, &Issuer::from_params(&root.params, &root.key))
        .unwrap()
        .der()
        .to_vec();
    TestCa { params, key, der }
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn config(
    cert_file: std::path::PathBuf,
    key_file: std::path::PathBuf,
    bundle_file: Option<std::path::PathBuf>,
) -> CaConfig {
    CaConfig {
        upstream: Some(UpstreamConfig {
            cert_file,
            key_file,
            bundle_file,
        }),
        ..CaConfig::new(td())
    }
}

#[test]
fn svids_chain_through_the_sworn_intermediate_to_the_upstream_root() {
    let files = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let clock = FakeClock::at_wall_time();
    let root = upstream_root(clock.now(), 1000 * HOUR);
    let cfg = config(
        write(files.path(), "up.crt", &certs_to_pem(&[&root.der])),
        write(files.path(), "up.key", &root.key.serialize_pem()),
        None,
    );
    let ca = CertificateAuthority::load_or_init(
        data.path(),
        cfg.clone(),
        Arc::new(clock.clone()),
        false,
    )
    .unwrap();
    assert_eq!(
        ca.bundle().roots_der,
        vec![root.der.clone()],
        "bundle is the upstream root"
    );
    let svid = mint(&ca, WEB, HOUR);
    assert_eq!(svid.chain_der.len(), 2, "leaf + sworn intermediate");
    check_x509_svid(
        svid.leaf_der(),
        &svid.chain_der[1..],
        Expected::Id(&id(WEB)),
        &[&root.der],
        clock.now(),
    )
    .unwrap();

    let out = tempfile::tempdir().unwrap();
    write(out.path(), "bundle.pem", &ca.bundle().to_pem());
    write(out.path(), "leaf.pem", &certs_to_pem(&svid.chain_der[..1]));
    write(out.path(), "chain.pem", &certs_to_pem(&svid.chain_der[1..]));
    let (ok, text) = openssl(
        &[
            "verify",
            "-x509_strict",
            "-CAfile",
            "bundle.pem",
            "-untrusted",
            "chain.pem",
            "leaf.pem",
        ],
        out.path(),
    );
    assert!(ok, "openssl verify failed:\n{text}");

    // Rotation prepares a new intermediate signed by the upstream; the bundle does not change.
    let rx = ca.subscribe();
    let t0 = clock.now();
    clock.set(t0 + 12 * HOUR);
    let report = ca.rotate_if_due().unwrap();
    assert_eq!(report.prepared, Some(2));
    assert!(!report.bundle_changed);
    clock.set(t0 + 20 * HOUR);
    assert_eq!(ca.rotate_if_due().unwrap().activated, Some(2));
    assert!(!rx.has_changed().unwrap());
    let rotated = mint(&ca, WEB, HOUR);
    assert_ne!(rotated.chain_der[1], svid.chain_der[1], "new intermediate");
    check_x509_svid(
        rotated.leaf_der(),
        &rotated.chain_der[1..],
        Expected::Id(&id(WEB)),
        &[&root.der],
        clock.now(),
    )
    .unwrap();
    assert!(
        !data.path().join("ca/ca-1.crt").exists(),
        "retired intermediate removed"
    );

    // Restart in upstream mode reads the same state back.
    let again = CertificateAuthority::load_or_init(data.path(), cfg, Arc::new(clock.clone()), true)
        .unwrap();
    assert_eq!(again.status().unwrap(), ca.status().unwrap());
}

#[test]
fn upstream_intermediates_are_carried_and_lifetimes_capped() {
    let files = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let clock = FakeClock::at_wall_time();
    let root = upstream_root(clock.now(), 1000 * HOUR);
    let inter = upstream_intermediate(&root, clock.now());
    let cfg = config(
        write(files.path(), "up.crt", &certs_to_pem(&[&inter.der])),
        write(files.path(), "up.key", &inter.key.serialize_pem()),
        Some(write(
            files.path(),
            "roots.pem",
            &certs_to_pem(&[&root.der]),
        )),
    );
    let cfg = CaConfig {
        ca_ttl: 1000 * HOUR,
        ..cfg
    };
    let ca = CertificateAuthority::load_or_init(data.path(), cfg, Arc::new(clock.clone()), false)
        .unwrap();
    let svid = mint(&ca, WEB, 2000 * HOUR);
    assert_eq!(
        svid.chain_der.len(),
        3,
        "leaf, sworn intermediate, upstream intermediate"
    );
    assert_eq!(svid.chain_der[2], inter.der);
    let upstream_not_after = cert_not_after(&inter.der);
    assert_eq!(
        cert_not_after(&svid.chain_der[1]),
        upstream_not_after,
        "intermediate capped by upstream"
    );
    assert_eq!(
        svid.not_after, upstream_not_after,
        "svid capped by the sworn intermediate"
    );
    check_x509_svid(
        svid.leaf_der(),
        &svid.chain_der[1..],
        Expected::Id(&id(WEB)),
        &[&root.der],
        clock.now(),
    )
    .unwrap();
}

#[test]
fn unusable_upstream_files_are_refused() {
    let files = tempfile::tempdir().unwrap();
    let clock = FakeClock::at_wall_time();
    let root = upstream_root(clock.now(), 1000 * HOUR);
    let other = upstream_root(clock.now(), 1000 * HOUR);
    let inter = upstream_intermediate(&root, clock.now());
    let cert = write(files.path(), "up.crt", &certs_to_pem(&[&root.der]));
    let wrong_key = write(files.path(), "other.key", &other.key.serialize_pem());
    let inter_cert = write(files.path(), "inter.crt", &certs_to_pem(&[&inter.der]));
    let inter_key = write(files.path(), "inter.key", &inter.key.serialize_pem());
    let garbage = write(files.path(), "garbage.key", "nope");
    let cases = [
        (
            "key of another ca",
            config(cert.clone(), wrong_key, None),
            "other.key",
        ),
        (
            "unparseable key",
            config(cert.clone(), garbage, None),
            "garbage.key",
        ),
        (
            "no root and no bundle file",
            config(inter_cert, inter_key, None),
            "inter.crt",
        ),
        (
            "missing cert file",
            config(
                files.path().join("absent.crt"),
                files.path().join("x.key"),
                None,
            ),
            "absent.crt",
        ),
    ];
    for (name, cfg, file) in cases {
        let data = tempfile::tempdir().unwrap();
        let err =
            CertificateAuthority::load_or_init(data.path(), cfg, Arc::new(clock.clone()), false)
                .unwrap_err();
        assert!(
            matches!(err, CaError::Upstream { .. } | CaError::Io { .. }),
            "{name}: {err:?}"
        );
        assert!(err.to_string().contains(file), "{name}: {err}");
        assert!(!data.path().join("ca").exists(), "{name}: a ca was created");
    }
}
