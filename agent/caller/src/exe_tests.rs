#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;

use super::*;

fn open(path: &Path) -> OpenExe {
    OpenExe::new(File::open(path).unwrap()).unwrap()
}

fn file_with(dir: &Path, name: &str, contents: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, contents).unwrap();
    p
}

#[test]
fn digest_is_the_sha256_of_the_contents_and_a_second_lookup_is_a_hit() {
    let dir = tempfile::tempdir().unwrap();
    let p = file_with(dir.path(), "bin", b"hello");
    let cache = DigestCache::default();
    let (d, source) = cache.digest(&open(&p)).unwrap();
    assert_eq!(
        d.to_hex(),
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
    assert_eq!(source, DigestSource::Hashed);
    let (again, source) = cache.digest(&open(&p)).unwrap();
    assert_eq!((again, source), (d, DigestSource::Cached));
    assert_eq!((cache.hits(), cache.misses()), (1, 1));
}

#[test]
fn a_changed_file_is_hashed_again() {
    let dir = tempfile::tempdir().unwrap();
    let p = file_with(dir.path(), "bin", b"hello");
    let cache = DigestCache::default();
    let (before, _) = cache.digest(&open(&p)).unwrap();
    // Same size, new contents: mtime and ctime move on.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .write_all(b"jello")
        .unwrap();
    let (after, source) = cache.digest(&open(&p)).unwrap();
    assert_eq!(source, DigestSource::Hashed);
    assert_ne!(before, after);
}

#[test]
fn the_least_recently_used_digest_is_evicted() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        file_with(dir.path(), "a", b"a"),
        file_with(dir.path(), "b", b"b"),
        file_with(dir.path(), "c", b"c"),
    );
    let cache = DigestCache::new(ExeLimits::default(), 2);
    cache.digest(&open(&a)).unwrap();
    cache.digest(&open(&b)).unwrap();
    assert_eq!(cache.digest(&open(&a)).unwrap().1, DigestSource::Cached);
    cache.digest(&open(&c)).unwrap(); // evicts b, used longest ago
    assert_eq!(cache.digest(&open(&a)).unwrap().1, DigestSource::Cached);
    assert_eq!(cache.digest(&open(&b)).unwrap().1, DigestSource::Hashed);
}

#[test]
fn a_file_over_the_size_cap_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("huge");
    File::create(&p).unwrap().set_len(1 << 40).unwrap(); // 1 TiB, sparse
    let cache = DigestCache::default();
    let started = Instant::now();
    let err = cache.digest(&open(&p)).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(
        matches!(err, ProcError::ExeTooLarge { size, cap } if size == 1 << 40 && cap == DEFAULT_MAX_EXE_HASH_BYTES),
        "{err}"
    );
    assert!(err.to_string().starts_with("exe too large"), "{err}");
}

#[test]
fn hashing_stops_at_the_time_cap() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("slow");
    File::create(&p).unwrap().set_len(64 << 30).unwrap(); // 64 GiB of holes: far over 50 ms
    let limits = ExeLimits {
        max_bytes: u64::MAX,
        timeout: Duration::from_millis(50),
    };
    let cache = DigestCache::new(limits, 8);
    let started = Instant::now();
    let err = cache.digest(&open(&p)).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(err.to_string().starts_with("hash timeout"), "{err}");
    // A refusal is not cached: the next caller is hashed (and refused) again.
    assert!(cache.digest(&open(&p)).is_err());
    assert_eq!(cache.misses(), 2);
}

#[test]
fn the_path_rule_compares_device_and_inode() {
    let dir = tempfile::tempdir().unwrap();
    let p = file_with(dir.path(), "bin", b"x");
    let other = file_with(dir.path(), "other", b"x");
    let exe = open(&p);
    assert!(exe.is_at(&p));
    assert!(!exe.is_at(&other), "same contents, another file");
    assert!(!exe.is_at(&dir.path().join("missing")));
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&p, &link).unwrap();
    assert!(exe.is_at(&link), "stat follows a link to the same file");
}
