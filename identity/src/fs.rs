//! The one way sworn replaces a file: [`write_atomic`], or [`AtomicFile`] step by step.
//!
//! Invariants:
//! - A reader of the target path sees the complete old file or the complete new one, never a
//!   torn write: the contents go to a temporary file in the same directory, which is renamed
//!   over the target (rename(2) is atomic within one filesystem).
//! - The temporary file has an unpredictable name and is created with `O_EXCL`, so nobody
//!   can pre-create or symlink it, and it carries its final mode from its creation, before
//!   any byte is written: a key written 0600 is never readable by others, not even briefly.
//! - The data, and then the rename, are on disk when [`AtomicFile::commit`] returns: the
//!   file is fsynced before the rename and the directory after it.
//! - A write that fails leaves no temporary file behind.

use std::fs::{File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

/// Why a file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("{action} {path}: {source}")]
pub struct WriteError {
    /// What was being done (`create a temporary file in`, `write`, `rename into place`, ...).
    pub action: &'static str,
    /// The path it was done on.
    pub path: PathBuf,
    /// The I/O error.
    #[source]
    pub source: io::Error,
}

fn failed<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> WriteError + 'a {
    move |source| WriteError {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Replaces `path` with `contents`, with permission bits `mode` (e.g. `0o600` for keys).
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), WriteError> {
    let mut file = AtomicFile::create(path, mode)?;
    file.write_all(contents)
        .map_err(failed("write", file.temp_path()))?;
    file.commit()
}

/// A replacement for one file, written to a temporary file beside it and put in place by
/// [`AtomicFile::commit`]. Dropped without a commit, it removes the temporary file and
/// leaves the target as it was.
#[derive(Debug)]
pub struct AtomicFile {
    temp: NamedTempFile,
    target: PathBuf,
    dir: PathBuf,
}

impl AtomicFile {
    /// Creates the temporary file for `target` in `target`'s directory, with mode `mode`.
    pub fn create(target: &Path, mode: u32) -> Result<Self, WriteError> {
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let prefix = format!(
            ".{}.",
            target
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        );
        let temp = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(".tmp")
            .permissions(Permissions::from_mode(mode))
            .tempfile_in(&dir)
            .map_err(failed("create a temporary file in", &dir))?;
        // The umask may have narrowed the mode at open(2); set it exactly, still before any
        // byte is written.
        temp.as_file()
            .set_permissions(Permissions::from_mode(mode))
            .map_err(failed("chmod", temp.path()))?;
        Ok(AtomicFile {
            temp,
            target: target.to_owned(),
            dir,
        })
    }

    /// Where the contents are written until [`AtomicFile::commit`].
    pub fn temp_path(&self) -> &Path {
        self.temp.path()
    }

    /// Flushes the contents to disk, renames them over the target and makes the rename
    /// durable.
    pub fn commit(self) -> Result<(), WriteError> {
        let AtomicFile { temp, target, dir } = self;
        temp.as_file()
            .sync_all()
            .map_err(failed("fsync", temp.path()))?;
        temp.persist(&target)
            .map_err(|e| failed("rename into place", &target)(e.error))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(failed("fsync directory", &dir))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.temp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.temp.flush()
    }
}
