#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use super::*;

fn mode_of(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn binds_with_the_mode_and_replaces_a_stale_socket() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("agent.sock");
    let (first, placed) = bind_in_place(&p, 0o777, 0o755).unwrap();
    assert_eq!(mode_of(&p), 0o777);
    assert!(placed.is_in_place());
    drop(first);
    let (_second, again) = bind_in_place(&p, 0o600, 0o755).unwrap();
    assert_eq!(mode_of(&p), 0o600);
    assert!(!placed.is_in_place(), "the first socket was replaced");
    assert!(!placed.remove(), "the successor's socket stays");
    assert!(p.exists());
    assert!(again.remove());
    assert!(!p.exists());
    // No temporary names are left in the directory.
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_symlink_file_or_directory_at_the_path_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    std::fs::write(&target, b"keep").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = dir.path().join("link.sock");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    assert!(matches!(
        bind_in_place(&link, 0o777, 0o755),
        Err(SocketError::Symlink(_))
    ));
    assert!(matches!(
        bind_in_place(&target, 0o777, 0o755),
        Err(SocketError::NotASocket(_))
    ));
    assert!(matches!(
        bind_in_place(dir.path(), 0o777, 0o755),
        Err(SocketError::NotASocket(_))
    ));
    assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    assert_eq!(mode_of(&target), 0o600);
}

#[test]
fn a_directory_others_can_write_or_own_is_refused() {
    let base = tempfile::tempdir().unwrap();
    let open = base.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = bind_in_place(&open.join("a.sock"), 0o777, 0o755).unwrap_err();
    assert!(
        err.to_string().contains("writable by group or others"),
        "{err}"
    );
    // Sticky, like /tmp: others cannot rename or remove our entries.
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
    bind_in_place(&open.join("a.sock"), 0o777, 0o755).unwrap();

    // Owned by someone else (the tests run as root, which may chown).
    let foreign = base.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
    let err = bind_in_place(&foreign.join("a.sock"), 0o777, 0o755).unwrap_err();
    assert!(err.to_string().contains("owned by uid 65534"), "{err}");
    assert_eq!(std::fs::metadata(&foreign).unwrap().uid(), 65534);
}
