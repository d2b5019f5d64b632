//! Publishing `svid.pem`, `svid.key` and `bundle.pem` so that no reader sees a torn or
//! mismatched set.
//!
//! Layout of the output directory (all links relative, so the directory can be mounted
//! anywhere, e.g. an `emptyDir` shared with the application):
//!
//! ```text
//! .sworn-<generation>/svid.pem svid.key bundle.pem   one immutable version per rotation
//! current    -> .sworn-<generation>                 swapped with one rename(2)
//! svid.pem   -> current/svid.pem
//! svid.key   -> current/svid.key
//! bundle.pem -> current/bundle.pem
//! ```
//!
//! Each version is written completely (every file through the shared atomic writer,
//! `sworn_identity::fs`: 0644, the key 0600 from the start, each fsynced, then the version
//! directory fsynced) before `current` is swapped by renaming a new symlink, created under
//! an unpredictable name, over it; then the output directory is fsynced. Guarantees:
//! - every path a reader opens is either the complete old file or the complete new file;
//! - a reader that resolves `current` once (e.g. `realpath DIR/current`) and reads the three
//!   files beneath it always gets a matching certificate, key and bundle;
//! - a reader that opens `svid.pem` then `svid.key` by their top-level names gets a matching
//!   pair unless a rotation lands between its two opens; rotations happen once per SVID
//!   half-life and the signal or command runs after the swap, so a reader that (re)loads on
//!   the notification sees a matching pair;
//! - a superseded version stays on disk for at least [`KEEP_SUPERSEDED`] (and the previous
//!   one until the next rotation), so a reader that resolved `current` just before a swap
//!   still finds every file.

use std::fs::{self, File};
use std::os::unix::fs::{DirBuilderExt, symlink};
use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;
use sworn_identity::fs::write_atomic;
use zeroize::{Zeroize, Zeroizing};

use crate::tls::Material;

/// The file names, as spiffe-helper and `sworn-server x509 mint --write` use them.
pub const SVID_FILE: &str = "svid.pem";
/// The key file name (PKCS#8 PEM, mode 0600).
pub const KEY_FILE: &str = "svid.key";
/// The bundle file name (the roots of our own trust domain).
pub const BUNDLE_FILE: &str = "bundle.pem";
/// The link to the current version directory.
pub const CURRENT_LINK: &str = "current";
const VERSION_PREFIX: &str = ".sworn-";
/// How long a version older than the previous one is kept after it was written.
pub const KEEP_SUPERSEDED: std::time::Duration = std::time::Duration::from_secs(30);

/// Why the files could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A filesystem operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// There is no bundle for our own trust domain (material invariant broken).
    #[error("no bundle for our own trust domain")]
    NoBundle,
}

impl From<sworn_identity::fs::WriteError> for WriteError {
    fn from(e: sworn_identity::fs::WriteError) -> Self {
        WriteError::Io {
            action: e.action,
            path: e.path,
            source: e.source,
        }
    }
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> WriteError + 'a {
    move |source| WriteError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// PEM text of DER certificates.
pub fn certs_pem(certs: &[CertificateDer<'_>]) -> String {
    let blocks: Vec<pem::Pem> = certs
        .iter()
        .map(|c| pem::Pem::new("CERTIFICATE", c.as_ref()))
        .collect();
    pem::encode_many_config(&blocks, lf())
}

/// PEM text of a PKCS#8 key, zeroized on drop.
pub fn key_pem(pkcs8: &[u8]) -> Zeroizing<String> {
    let block = pem::Pem::new("PRIVATE KEY", pkcs8);
    let text = Zeroizing::new(pem::encode_config(&block, lf()));
    // `Pem` holds a copy of the key; wipe it before it is freed.
    let mut contents = block.into_contents();
    contents.zeroize();
    text
}

fn lf() -> pem::EncodeConfig {
    pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF)
}

/// Writes `material` as a new version in `dir` and makes it current; returns the version
/// directory. Versions older than the previous one are removed once [`KEEP_SUPERSEDED`] old.
pub fn publish(dir: &Path, material: &Material) -> Result<PathBuf, WriteError> {
    let bundle = material
        .roots(material.spiffe_id().trust_domain())
        .ok_or(WriteError::NoBundle)?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(io("create directory", dir))?;
    let previous = fs::read_link(dir.join(CURRENT_LINK)).ok();

    let version = new_version_dir(dir)?;
    write_atomic(
        &version.join(SVID_FILE),
        certs_pem(material.chain()).as_bytes(),
        0o644,
    )?;
    write_atomic(
        &version.join(KEY_FILE),
        key_pem(material.private_key_pkcs8()).as_bytes(),
        0o600,
    )?;
    write_atomic(
        &version.join(BUNDLE_FILE),
        certs_pem(bundle).as_bytes(),
        0o644,
    )?;
    sync_dir(&version)?;

    let version_name = version
        .file_name()
        .map(PathBuf::from)
        .ok_or_else(|| WriteError::Io {
            action: "name version directory",
            path: version.clone(),
            source: std::io::ErrorKind::InvalidInput.into(),
        })?;
    replace_symlink(dir, CURRENT_LINK, &version_name)?;
    for name in [SVID_FILE, KEY_FILE, BUNDLE_FILE] {
        let target = Path::new(CURRENT_LINK).join(name);
        if fs::read_link(dir.join(name)).ok().as_deref() != Some(target.as_path()) {
            replace_symlink(dir, name, &target)?;
        }
    }
    sync_dir(dir)?;
    remove_old_versions(dir, &version_name, previous.as_deref());
    Ok(version)
}

fn new_version_dir(dir: &Path) -> Result<PathBuf, WriteError> {
    let version = tempfile::Builder::new()
        .prefix(VERSION_PREFIX)
        .tempdir_in(dir)
        .map_err(io("create version directory in", dir))?
        .keep();
    // tempfile creates 0700; readers may run as another user of the same pod.
    fs::set_permissions(
        &version,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .map_err(io("chmod", &version))?;
    Ok(version)
}

fn sync_dir(dir: &Path) -> Result<(), WriteError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync directory", dir))
}

/// Points `dir/name` at `target` with one rename, so it is never missing. The new link is
/// made under an unpredictable name first (`symlink(2)` fails rather than follow or replace
/// an existing path).
fn replace_symlink(dir: &Path, name: &str, target: &Path) -> Result<(), WriteError> {
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .make_in(dir, |path| symlink(target, path))
        .map_err(io("symlink in", dir))?;
    let path = dir.join(name);
    tmp.persist(&path)
        .map(drop)
        .map_err(|e| io("rename into place", &path)(e.error))
}

fn remove_old_versions(dir: &Path, current: &Path, previous: Option<&Path>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = PathBuf::from(entry.file_name());
        let is_version = name.to_str().is_some_and(|n| n.starts_with(VERSION_PREFIX));
        if !is_version || name == current || Some(name.as_path()) == previous {
            continue;
        }
        let young = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().map_or(true, |age| age < KEEP_SUPERSEDED));
        if young {
            continue;
        }
        if let Err(error) = fs::remove_dir_all(entry.path()) {
            tracing::warn!(%error, path = %entry.path().display(), "cannot remove an old version");
        }
    }
}
