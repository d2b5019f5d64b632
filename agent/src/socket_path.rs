//! The Workload API socket path as a type, and preparing it for `bind` (docs/architecture.md, "Protocols").
//!
//! Invariants of [`SocketPath`]: absolute, no NUL, at most 107 bytes (`sun_path` is 108 bytes
//! including the terminating NUL), so a too-long path is refused when the config is parsed, not
//! by a confusing `bind` error. [`SocketPath::bind`] creates the parent directory 0755, refuses
//! a path that is a symlink, replaces a stale socket from an earlier run (removing the socket
//! itself, never following a link), and leaves the new socket 0777: attestation decides who
//! gets what, not file permissions.

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

/// Longest usable `sun_path` (108 bytes including the NUL).
pub const MAX_SOCKET_PATH_BYTES: usize = 107;

/// Why a socket path is unusable.
#[derive(Debug, thiserror::Error)]
pub enum SocketPathError {
    /// Relative paths depend on the working directory.
    #[error("socket path {0} must be absolute")]
    NotAbsolute(PathBuf),
    /// Longer than `sun_path` allows.
    #[error(
        "socket path {path} is {len} bytes; a unix socket path is at most {MAX_SOCKET_PATH_BYTES} bytes"
    )]
    TooLong {
        /// The path.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
    },
    /// The path is a symlink: refused, never followed.
    #[error("socket path {0} is a symbolic link; refusing to use it")]
    Symlink(PathBuf),
    /// Something other than a socket is in the way.
    #[error("socket path {0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    /// Creating the directory, removing the stale socket, binding or chmod failed.
    #[error("socket path {path}: {action}: {source}")]
    Io {
        /// The path acted on.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A validated Workload API socket path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketPath(PathBuf);

impl SocketPath {
    /// Validates `path`: absolute and short enough for `sun_path`.
    pub fn new(path: impl Into<PathBuf>) -> Result<Self, SocketPathError> {
        let path = path.into();
        if !path.is_absolute() {
            return Err(SocketPathError::NotAbsolute(path));
        }
        let len = path.as_os_str().len();
        if len > MAX_SOCKET_PATH_BYTES {
            return Err(SocketPathError::TooLong { path, len });
        }
        Ok(Self(path))
    }

    /// The path.
    pub fn as_path(&self) -> &Path {
        &self.0
    }

    /// The `unix:///abs/path` URI the SPIFFE Workload Endpoint spec uses.
    pub fn to_uri(&self) -> String {
        format!("unix://{}", self.0.display())
    }

    /// Creates the directory, replaces a stale socket and binds (see the module docs).
    pub fn bind(&self) -> Result<UnixListener, SocketPathError> {
        let path = &self.0;
        let io = |action: &'static str| {
            move |source| SocketPathError::Io {
                path: path.clone(),
                action,
                source,
            }
        };
        if let Some(dir) = path.parent()
            && !dir.exists()
        {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(io("create directory"))?;
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(SocketPathError::Symlink(path.clone()));
            }
            Ok(meta) if meta.file_type().is_socket() => {
                // A stale socket from an earlier run. `remove_file` unlinks the entry itself
                // (unlink(2) never follows a symlink).
                std::fs::remove_file(path).map_err(io("remove stale socket"))?;
            }
            Ok(_) => return Err(SocketPathError::NotASocket(path.clone())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("inspect")(e)),
        }
        let listener = UnixListener::bind(path).map_err(io("bind"))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777))
            .map_err(io("chmod 0777"))?;
        Ok(listener)
    }
}
