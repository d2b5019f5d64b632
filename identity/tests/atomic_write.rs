//! The atomic writer on a real filesystem (a temporary directory).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use sworn_identity::fs::{AtomicFile, write_atomic};

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_key_is_0600_before_its_first_byte_and_no_temporary_file_stays() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("svid.key");

    // Step by step: the temporary file exists, beside the target, 0600, empty, before any
    // byte of the secret is written; the target does not exist yet.
    let mut file = AtomicFile::create(&key, 0o600).unwrap();
    let temp = file.temp_path().to_owned();
    assert_eq!(temp.parent(), Some(dir.path()));
    assert_eq!(mode(&temp), 0o600);
    assert_eq!(fs::metadata(&temp).unwrap().len(), 0);
    assert!(!key.exists());
    file.write_all(b"-----BEGIN PRIVATE KEY-----\n").unwrap();
    assert_eq!(mode(&temp), 0o600);
    file.commit().unwrap();
    // The key appears by renaming that very file: same mode, and nothing else is left.
    assert_eq!(mode(&key), 0o600);
    assert!(!temp.exists());
    assert_eq!(entries(dir.path()), vec!["svid.key"]);

    // The one-call form, over an existing file, and a public file next to it.
    write_atomic(&key, b"new key", 0o600).unwrap();
    write_atomic(&dir.path().join("bundle.pem"), b"roots", 0o644).unwrap();
    assert_eq!(fs::read(&key).unwrap(), b"new key");
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&dir.path().join("bundle.pem")), 0o644);
    assert_eq!(entries(dir.path()), vec!["bundle.pem", "svid.key"]);
}

#[test]
fn a_reader_sees_the_whole_old_file_or_the_whole_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bundle.pem");
    write_atomic(&path, b"old roots", 0o644).unwrap();
    let mut before = fs::File::open(&path).unwrap();
    write_atomic(&path, b"new roots, longer", 0o644).unwrap();
    let mut old = String::new();
    before.read_to_string(&mut old).unwrap();
    assert_eq!(
        old, "old roots",
        "an open reader keeps the complete old file"
    );
    assert_eq!(fs::read(&path).unwrap(), b"new roots, longer");
}

#[test]
fn temporary_names_are_unpredictable_and_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("svid.key");
    let victim = dir.path().join("victim");
    // The name the CLI's old writer used: a symlink planted there is left alone.
    let planted = dir
        .path()
        .join(format!(".svid.key.tmp-{}", std::process::id()));
    symlink(&victim, &planted).unwrap();

    let a = AtomicFile::create(&key, 0o600).unwrap();
    let b = AtomicFile::create(&key, 0o600).unwrap();
    assert_ne!(
        a.temp_path(),
        b.temp_path(),
        "two writers never share a name"
    );
    assert_ne!(a.temp_path(), planted.as_path());
    drop((a, b));
    write_atomic(&key, b"secret", 0o600).unwrap();
    assert!(!victim.exists(), "the planted link was followed");
    assert_eq!(fs::read_link(&planted).unwrap(), victim);
    assert_eq!(fs::read(&key).unwrap(), b"secret");
}

#[test]
fn an_abandoned_or_failed_write_leaves_the_target_and_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("svid.pem");
    write_atomic(&path, b"current", 0o644).unwrap();

    let mut abandoned = AtomicFile::create(&path, 0o644).unwrap();
    abandoned.write_all(b"half").unwrap();
    drop(abandoned);
    assert_eq!(fs::read(&path).unwrap(), b"current");
    assert_eq!(entries(dir.path()), vec!["svid.pem"]);

    // Renaming a file over a directory fails: the error names the step, nothing is left.
    let blocked = dir.path().join("blocked");
    fs::create_dir(&blocked).unwrap();
    fs::write(blocked.join("inside"), b"x").unwrap();
    let err = write_atomic(&blocked, b"data", 0o644).unwrap_err();
    assert_eq!(err.action, "rename into place", "{err}");
    assert_eq!(entries(dir.path()), vec!["blocked", "svid.pem"]);

    let err = write_atomic(&dir.path().join("missing/dir/file"), b"x", 0o644).unwrap_err();
    assert_eq!(err.action, "create a temporary file in", "{err}");
}
