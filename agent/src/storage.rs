//! Files the agent writes: atomic replacement and PEM encoding.
//!
//! Invariant: a reader never sees a half-written file, and a key is never readable by
//! others, not even briefly: every write goes through the shared atomic writer
//! (`sworn_identity::fs`: an `O_EXCL` temporary file beside the target with its final
//! mode, fsynced, renamed over the target, the directory fsynced).

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

/// Writes `bytes` to `path` atomically with permission bits `mode`
/// ([`sworn_identity::fs::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StorageError> {
    sworn_identity::fs::write_atomic(path, bytes, mode).map_err(|e| StorageError::Io {
        path: e.path,
        action: e.action,
        source: e.source,
    })
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
