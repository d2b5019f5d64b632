//! The admin socket: a unix socket only the server's user may use (0600).
//!
//! A stale socket file from an earlier run is replaced; anything else at the
//! path (a symlink, a regular file, a directory) is refused, so a hostile
//! link can never redirect the bind or the removal.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use tokio::net::UnixListener;

/// Binds `path` as a 0600 unix socket, replacing a stale socket file.
pub fn bind_private(path: &Path) -> io::Result<UnixListener> {
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
        && !parent.exists()
    {
        std::fs::create_dir_all(parent)?;
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} is a symlink; refusing to replace it", path.display()),
            ));
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a socket; refusing to replace it",
                    path.display()
                ),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replaces_stale_socket_but_never_a_symlink_or_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("admin.sock");
        drop(bind_private(&p).unwrap());
        // Stale socket file from the previous bind: replaced.
        let l = bind_private(&p).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        drop(l);

        let target = dir.path().join("target");
        std::fs::write(&target, b"keep").unwrap();
        let link = dir.path().join("link.sock");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(bind_private(&link).is_err());
        assert!(bind_private(&target).is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    }
}
