//! The one way sworn puts a listening unix socket at a path: [`bind_in_place`]
//! (docs/architecture.md, "Protocols", "Upgrades").
//!
//! Invariants:
//! - The parent directory is checked before anything is created in it: it must be owned by
//!   root or by this process's user, and must not be writable by group or others unless it is
//!   sticky (like `/tmp`). Otherwise another local user could swap entries in it under us.
//! - Something already at the path may be a socket, which is replaced; a symlink, a file or a
//!   directory is refused, never followed or removed.
//! - The socket is bound at an unpredictable temporary name in the same directory, given its
//!   mode through an `O_PATH | O_NOFOLLOW` handle (so no link is ever followed), and then
//!   renamed over the path. rename(2) is atomic: a client connecting while an upgraded agent
//!   takes over finds the old socket or the new one, never nothing.
//! - [`PlacedSocket::remove`] unlinks the path only while it still holds the socket this
//!   process created (same device and inode), so a process shutting down after its successor
//!   took the path leaves the successor's socket alone.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags};

/// Why a socket could not be put at its path.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// The path is a symbolic link: refused, never followed.
    #[error("{0} is a symbolic link; refusing to use it")]
    Symlink(PathBuf),
    /// Something other than a socket is at the path.
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    /// The parent directory lets someone else replace entries in it.
    #[error("directory {dir} {reason}; refusing to serve a socket in it")]
    UnsafeDirectory {
        /// The directory.
        dir: PathBuf,
        /// What is wrong with it (owner or mode).
        reason: String,
    },
    /// A system call failed.
    #[error("{path}: {action}: {source}")]
    Io {
        /// The path acted on.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(io::Error) -> SocketError + 'a {
    move |source| SocketError::Io {
        path: path.to_owned(),
        action,
        source,
    }
}

/// The socket file this process put at a path: its device and inode, so that removing it
/// never removes a successor's socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedSocket {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl PlacedSocket {
    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the path still holds this socket (not a successor's, not gone).
    pub fn is_in_place(&self) -> bool {
        std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.file_type().is_socket() && m.dev() == self.dev && m.ino() == self.ino)
    }

    /// Unlinks the path if it still holds this socket; returns whether it did. Between the
    /// check and the unlink there is no way to tell the kernel "only this inode", so a
    /// successor that renames its socket into place in that instant can still lose it; the
    /// window is one `lstat` long instead of a whole shutdown.
    pub fn remove(&self) -> bool {
        self.is_in_place() && std::fs::remove_file(&self.path).is_ok()
    }
}

/// Binds a unix socket at `path` with permissions `mode` (see the module docs), creating the
/// parent directory with `dir_mode` if it is missing.
pub fn bind_in_place(
    path: &Path,
    mode: u32,
    dir_mode: u32,
) -> Result<(UnixListener, PlacedSocket), SocketError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(dir_mode)
            .create(dir)
            .map_err(io_err(dir, "create directory"))?;
    }
    check_directory(dir)?;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(SocketError::Symlink(path.to_owned()));
        }
        // A socket from an earlier run or the process being upgraded: renamed over below.
        Ok(meta) if meta.file_type().is_socket() => {}
        Ok(_) => return Err(SocketError::NotASocket(path.to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(path, "inspect")(e)),
    }
    // A short name, so every path that fits `sun_path` with a name of 8 bytes or more has
    // room for it; `make_in` retries on a name that is taken.
    let temp = tempfile::Builder::new()
        .prefix(".s")
        .rand_bytes(6)
        .make_in(dir, |p| UnixListener::bind(p))
        .map_err(io_err(dir, "bind a temporary socket"))?;
    let placed = set_mode_nofollow(temp.path(), mode, path)?;
    let listener = temp
        .persist(path)
        .map_err(|e| io_err(path, "rename the socket into place")(e.error))?;
    Ok((listener, placed))
}

/// Refuses a directory in which someone else could replace entries.
fn check_directory(dir: &Path) -> Result<(), SocketError> {
    let meta = std::fs::metadata(dir).map_err(io_err(dir, "inspect directory"))?;
    let unsafe_dir = |reason: String| SocketError::UnsafeDirectory {
        dir: dir.to_owned(),
        reason,
    };
    if !meta.is_dir() {
        return Err(unsafe_dir("is not a directory".into()));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != me {
        return Err(unsafe_dir(format!(
            "is owned by uid {}, neither root nor this process's uid {me}",
            meta.uid()
        )));
    }
    let writable_by_others = meta.mode() & 0o022 != 0;
    let sticky = meta.mode() & 0o1000 != 0;
    if writable_by_others && !sticky {
        return Err(unsafe_dir(format!(
            "has mode {:o}: writable by group or others and not sticky",
            meta.mode() & 0o7777
        )));
    }
    Ok(())
}

/// Sets the mode of the socket just bound at `temp` without following a link: the entry is
/// opened `O_PATH | O_NOFOLLOW`, checked to be a socket, and changed through its
/// `/proc/self/fd` handle, which names that inode and nothing else.
fn set_mode_nofollow(temp: &Path, mode: u32, path: &Path) -> Result<PlacedSocket, SocketError> {
    let fd = rustix::fs::open(
        temp,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err(temp, "open the bound socket")(e.into()))?;
    let stat =
        rustix::fs::fstat(&fd).map_err(|e| io_err(temp, "stat the bound socket")(e.into()))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::Socket {
        return Err(SocketError::NotASocket(temp.to_owned()));
    }
    let handle = format!("/proc/self/fd/{}", fd.as_raw_fd());
    rustix::fs::chmod(handle.as_str(), Mode::from_raw_mode(mode))
        .map_err(|e| io_err(temp, "set the socket's mode")(e.into()))?;
    Ok(PlacedSocket {
        path: path.to_owned(),
        dev: stat.st_dev,
        ino: stat.st_ino,
    })
}

#[cfg(test)]
#[path = "socket_tests.rs"]
mod tests;
