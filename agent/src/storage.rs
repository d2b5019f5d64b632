//! Files the agent writes: atomic replacement and PEM encoding (DESIGN.md §3.3, §4).
//!
//! Invariant: a reader never sees a half-written file. Each write goes to a fresh temporary
//! file in the same directory, created with its final mode (0600 for keys) so the secret is
//! never readable by others even briefly, is fsynced, and is renamed over the target.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// Why a file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An I/O error on `path`.
    #[error("{path}: {action}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not the PEM it should be.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn io(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> StorageError {
    let path = path.to_owned();
    move |source| StorageError::Io {
        path,
        action,
        source,
    }
}

/// Writes `bytes` to `path` atomically with permission bits `mode`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StorageError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{:016x}", rand::random::<u64>()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io(&tmp, "create"))?;
        file.write_all(bytes).map_err(io(&tmp, "write"))?;
        file.sync_all().map_err(io(&tmp, "fsync"))?;
        std::fs::rename(&tmp, path).map_err(io(path, "rename into place"))?;
        if let Ok(d) = std::fs::File::open(dir) {
            // Best effort: persist the rename itself.
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Creates `dir` (and parents) with mode 0700 if it does not exist.
pub fn ensure_private_dir(dir: &Path) -> Result<(), StorageError> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir, "create directory"))
}

/// Encodes DER certificates as concatenated `CERTIFICATE` PEM blocks.
pub fn certs_to_pem(certs: &[Vec<u8>]) -> String {
    let blocks: Vec<pem::Pem> = certs
        .iter()
        .map(|der| pem::Pem::new("CERTIFICATE", der.clone()))
        .collect();
    pem::encode_many(&blocks)
}

/// Encodes a PKCS#8 DER key as a `PRIVATE KEY` PEM block (zeroized on drop).
pub fn key_to_pem(pkcs8: &[u8]) -> Zeroizing<String> {
    Zeroizing::new(pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.to_vec())))
}

/// Reads the `CERTIFICATE` blocks of a PEM file; at least one is required.
pub fn read_pem_certs(path: &Path) -> Result<Vec<Vec<u8>>, StorageError> {
    let text = std::fs::read(path).map_err(io(path, "read"))?;
    let blocks = pem::parse_many(&text).map_err(|e| StorageError::Pem {
        path: path.to_owned(),
        reason: format!("not PEM: {e}"),
    })?;
    let certs: Vec<Vec<u8>> = blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| b.into_contents())
        .collect();
    if certs.is_empty() {
        return Err(StorageError::Pem {
            path: path.to_owned(),
            reason: "no CERTIFICATE block".into(),
        });
    }
    Ok(certs)
}

/// Reads a `PRIVATE KEY` (PKCS#8) PEM file.
pub fn read_pem_key(path: &Path) -> Result<Zeroizing<Vec<u8>>, StorageError> {
    let text = Zeroizing::new(std::fs::read(path).map_err(io(path, "read"))?);
    let block = pem::parse(&*text).map_err(|e| StorageError::Pem {
        path: path.to_owned(),
        reason: format!("not PEM: {e}"),
    })?;
    if block.tag() != "PRIVATE KEY" {
        return Err(StorageError::Pem {
            path: path.to_owned(),
            reason: "expected a PRIVATE KEY (PKCS#8) block".into(),
        });
    }
    Ok(Zeroizing::new(block.into_contents()))
}
