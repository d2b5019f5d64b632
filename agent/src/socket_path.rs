//! The Workload API socket path as a type, and preparing it for `bind` (docs/architecture.md, "Protocols").
//!
//! Invariants of [`SocketPath`]: absolute, no NUL, at most 107 bytes (`sun_path` is 108 bytes
//! including the terminating NUL), so a too-long path is refused when the config is parsed, not
//! by a confusing `bind` error. [`SocketPath::bind`] creates the parent directory 0755 and puts
//! the socket in place with `sworn_identity::socket::bind_in_place`: the directory must not be
//! writable by others, a symlink or other file at the path is refused, the socket gets mode
//! 0777 without any link being followed (attestation decides who gets what, not file
//! permissions), and it is renamed over an existing socket, so an upgrade never leaves the
//! path without one (docs/architecture.md, "Upgrades").

use std::path::{Path, PathBuf};

use sworn_identity::socket::{PlacedSocket, SocketError, bind_in_place};
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
    /// The socket could not be put in place (see `sworn_identity::socket`).
    #[error(transparent)]
    Place(#[from] SocketError),
    /// The bound socket could not be handed to the runtime.
    #[error("socket path {path}: {source}")]
    Runtime {
        /// The path.
        path: PathBuf,
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

    /// Creates the directory, binds and puts the socket in place (see the module docs).
    /// The [`PlacedSocket`] removes it at shutdown only if it is still this one.
    pub fn bind(&self) -> Result<(UnixListener, PlacedSocket), SocketPathError> {
        let (listener, placed) = bind_in_place(&self.0, 0o777, 0o755)?;
        let runtime = |source| SocketPathError::Runtime {
            path: self.0.clone(),
            source,
        };
        listener.set_nonblocking(true).map_err(runtime)?;
        let listener = UnixListener::from_std(listener).map_err(runtime)?;
        Ok((listener, placed))
    }
}
