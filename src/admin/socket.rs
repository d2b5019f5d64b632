//! The admin socket: a unix socket only the server's user may use (0600).
//!
//! It is put in place by `sworn_identity::socket::bind_in_place`: the parent directory
//! (created 0700 if missing) must not be writable by others, a stale socket is replaced by an
//! atomic rename, anything else at the path (a symlink, a regular file, a directory) is
//! refused, and the mode is set without following a link, so a hostile link can never
//! redirect the bind, the chmod or the removal.

use std::io;
use std::path::Path;

use sworn_identity::socket::{SocketError, bind_in_place};
use tokio::net::UnixListener;

/// Binds `path` as a 0600 unix socket, replacing a stale socket file.
pub fn bind_private(path: &Path) -> io::Result<UnixListener> {
    let (listener, _placed) = bind_in_place(path, 0o600, 0o700).map_err(|e| match e {
        SocketError::Io { source, .. } => source,
        refused => io::Error::new(io::ErrorKind::AlreadyExists, refused.to_string()),
    })?;
    listener.set_nonblocking(true)?;
    UnixListener::from_std(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::os::unix::fs::PermissionsExt;

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

    /// A directory another user can write to would let them swap the socket for a link
    /// between bind and chmod: refused before anything is created, and the link's target
    /// keeps its mode.
    #[tokio::test]
    async fn a_hostile_parent_directory_is_refused_and_nothing_is_chmodded() {
        let dir = tempfile::tempdir().unwrap();
        let hostile = dir.path().join("shared");
        std::fs::create_dir(&hostile).unwrap();
        std::fs::set_permissions(&hostile, std::fs::Permissions::from_mode(0o777)).unwrap();
        let target = dir.path().join("secret");
        std::fs::write(&target, b"keep").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        let path = hostile.join("admin.sock");
        // The attacker keeps a link to the secret at the path between our steps.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let attacker = {
            let (stop, path, target) = (stop.clone(), path.clone(), target.clone());
            let plant = hostile.join("plant");
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = std::os::unix::fs::symlink(&target, &plant);
                    let _ = std::fs::rename(&plant, &path);
                }
            })
        };
        for _ in 0..50 {
            let err = bind_private(&path).expect_err("a world-writable directory is refused");
            assert!(
                err.to_string().contains("writable by group or others"),
                "{err}"
            );
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        attacker.join().unwrap();
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the link's target was not chmodded");
    }
}
