//! The CA key store across restarts: same CA after a restart, and a broken store refuses to
//! start with a message naming the file instead of silently becoming a new CA (docs/architecture.md, "The CA").
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ca_support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ca_support::*;
use sworn_server::ca::{CaConfig, CaError, CertificateAuthority};
use sworn_server::clock::FakeClock;

fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(snapshot(&path));
        } else {
            out.insert(path.clone(), std::fs::read(&path).unwrap());
        }
    }
    out
}

fn try_open(
    data_dir: &Path,
    clock: &FakeClock,
    expect_existing: bool,
) -> Result<CertificateAuthority, CaError> {
    CertificateAuthority::load_or_init(
        data_dir,
        CaConfig::new(td()),
        Arc::new(clock.clone()),
        expect_existing,
    )
}

#[test]
fn a_restart_keeps_the_same_ca() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::at_wall_time();
    let first = open(dir.path(), &clock);
    let bundle = first.bundle();
    let svid = mint(&first, "spiffe://example.org/a", HOUR);
    drop(first);

    let again = try_open(dir.path(), &clock, true).unwrap();
    assert_eq!(again.bundle(), bundle, "same root after restart");
    sworn_identity::check_x509_svid(
        svid.leaf_der(),
        &[] as &[Vec<u8>],
        sworn_identity::Expected::Id(&id("spiffe://example.org/a")),
        &again.bundle().roots_der,
        sworn_server::clock::Clock::now(&clock),
    )
    .unwrap();

    let mode = |p: &str| {
        std::fs::metadata(dir.path().join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("ca"), 0o700);
    assert_eq!(mode("ca/ca-1.key"), 0o600);
    assert_eq!(mode("ca/state.json"), 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("ca"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary files left behind: {leftovers:?}"
    );
}

#[test]
fn expect_existing_refuses_to_create_a_ca() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::at_wall_time();
    let err = try_open(dir.path(), &clock, true).unwrap_err();
    assert!(matches!(err, CaError::ExpectedExisting { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("datastore already holds a trust bundle"),
        "{err}"
    );
    assert!(!dir.path().join("ca").exists());
}

type Damage = fn(&Path);
type Kind = fn(&CaError) -> bool;

#[test]
fn a_broken_store_refuses_to_start_and_names_the_file() {
    let cases: Vec<(&str, Damage, &str, Kind)> = vec![
        (
            "corrupt key",
            |d| std::fs::write(d.join("ca/ca-1.key"), b"not a key").unwrap(),
            "ca-1.key",
            |e| matches!(e, CaError::CorruptKey { .. }),
        ),
        (
            "truncated key",
            |d| {
                let p = d.join("ca/ca-1.key");
                let bytes = std::fs::read(&p).unwrap();
                std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
            },
            "ca-1.key",
            |e| matches!(e, CaError::CorruptKey { .. }),
        ),
        (
            "empty key",
            |d| std::fs::write(d.join("ca/ca-1.key"), b"").unwrap(),
            "ca-1.key",
            |e| matches!(e, CaError::CorruptKey { .. }),
        ),
        (
            "missing key",
            |d| std::fs::remove_file(d.join("ca/ca-1.key")).unwrap(),
            "ca-1.key",
            |e| matches!(e, CaError::Missing { .. }),
        ),
        (
            "world-readable key",
            |d| {
                std::fs::set_permissions(
                    d.join("ca/ca-1.key"),
                    std::fs::Permissions::from_mode(0o644),
                )
                .unwrap()
            },
            "ca-1.key",
            |e| matches!(e, CaError::InsecurePermissions { .. }),
        ),
        (
            "missing certificate",
            |d| std::fs::remove_file(d.join("ca/ca-1.crt")).unwrap(),
            "ca-1.crt",
            |e| matches!(e, CaError::Missing { .. }),
        ),
        (
            "corrupt certificate",
            |d| {
                std::fs::write(
                    d.join("ca/ca-1.crt"),
                    b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                )
                .unwrap()
            },
            "ca-1.crt",
            |e| matches!(e, CaError::CorruptCert { .. }),
        ),
        (
            "missing state",
            |d| std::fs::remove_file(d.join("ca/state.json")).unwrap(),
            "state.json",
            |e| matches!(e, CaError::Missing { .. }),
        ),
        (
            "corrupt state",
            |d| std::fs::write(d.join("ca/state.json"), b"{\"version\":").unwrap(),
            "state.json",
            |e| matches!(e, CaError::CorruptState { .. }),
        ),
        (
            "state names an unknown generation",
            |d| {
                let p = d.join("ca/state.json");
                let text = std::fs::read_to_string(&p)
                    .unwrap()
                    .replace("\"active\": 1", "\"active\": 7");
                std::fs::write(&p, text).unwrap();
            },
            "state.json",
            |e| matches!(e, CaError::CorruptState { .. }),
        ),
        (
            "empty ca directory",
            |d| {
                std::fs::remove_dir_all(d.join("ca")).unwrap();
                std::fs::create_dir(d.join("ca")).unwrap();
            },
            "state.json",
            |e| matches!(e, CaError::Missing { .. }),
        ),
    ];
    for (name, damage, file, kind) in cases {
        let dir = tempfile::tempdir().unwrap();
        let clock = FakeClock::at_wall_time();
        drop(open(dir.path(), &clock));
        damage(dir.path());
        let before = snapshot(dir.path());
        let err = try_open(dir.path(), &clock, false).unwrap_err();
        assert!(kind(&err), "{name}: wrong error {err:?}");
        assert!(
            err.to_string().contains(file),
            "{name}: message does not name {file}: {err}"
        );
        assert_eq!(
            snapshot(dir.path()),
            before,
            "{name}: the store was modified"
        );
    }
}

#[test]
fn a_key_from_another_ca_is_refused() {
    let clock = FakeClock::at_wall_time();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    drop(open(a.path(), &clock));
    drop(open(b.path(), &clock));
    std::fs::copy(b.path().join("ca/ca-1.key"), a.path().join("ca/ca-1.key")).unwrap();
    let err = try_open(a.path(), &clock, false).unwrap_err();
    assert!(matches!(err, CaError::CorruptKey { .. }), "{err:?}");
    assert!(err.to_string().contains("does not match"), "{err}");
}

#[test]
fn a_store_for_another_trust_domain_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::at_wall_time();
    drop(open(dir.path(), &clock));
    let other = CaConfig::new(sworn_identity::parse_trust_domain("other.org").unwrap());
    let err =
        CertificateAuthority::load_or_init(dir.path(), other, Arc::new(clock), false).unwrap_err();
    assert!(matches!(err, CaError::ConfigMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("example.org"), "{err}");
}

#[test]
fn a_dangling_symlinked_ca_dir_is_not_a_first_start() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::at_wall_time();
    std::os::unix::fs::symlink(dir.path().join("unmounted/ca"), dir.path().join("ca")).unwrap();
    let err = try_open(dir.path(), &clock, false).unwrap_err();
    assert!(matches!(err, CaError::Missing { .. }), "{err:?}");
    assert!(
        std::fs::symlink_metadata(dir.path().join("ca"))
            .unwrap()
            .file_type()
            .is_symlink()
    );

    // A symlink to a real directory holding a CA works.
    let real = tempfile::tempdir().unwrap();
    let bundle = open(real.path(), &clock).bundle();
    std::fs::remove_file(dir.path().join("ca")).unwrap();
    std::os::unix::fs::symlink(real.path().join("ca"), dir.path().join("ca")).unwrap();
    assert_eq!(try_open(dir.path(), &clock, true).unwrap().bundle(), bundle);
}
