//! Unix-mode workload facts: uid, gid, supplementary gids, executable path and SHA-256
//! (docs/architecture.md, "Trust model"; selectors `unix:uid`, `unix:gid`, `unix:path`, `unix:sha256`).
//!
//! Invariant: the facts come from one [`Caller::inspect`], so they all describe the process
//! that connected, alive and unchanged from before the first read to after the last. The
//! effective uid and gid in `/proc/<pid>/status` must equal the socket's `SO_PEERCRED`
//! credentials; a process that changed identity since connecting is refused.

use std::path::PathBuf;

use crate::digest::Sha256Digest;
use crate::error::CallerError;
use crate::peer::Caller;

/// What the kernel says about a caller in unix mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixFacts {
    /// Effective uid (`SO_PEERCRED`, equal to `status` `Uid:` effective).
    pub uid: u32,
    /// Effective gid (`SO_PEERCRED`, equal to `status` `Gid:` effective).
    pub gid: u32,
    /// Supplementary gids (`status` `Groups:`), in the kernel's order.
    pub supplementary_gids: Vec<u32>,
    /// The running executable's path (`exe` link target; ends in ` (deleted)` if the file
    /// was replaced or removed since exec).
    pub exe_path: PathBuf,
    /// SHA-256 of the running executable, read through the `exe` link.
    pub exe_sha256: Sha256Digest,
}

impl Caller {
    /// Reads the caller's unix facts. Blocking: it hashes the whole executable, so call it
    /// from `tokio::task::spawn_blocking` (the [`Caller`] is `Send + Sync`; share it in an
    /// `Arc`).
    pub fn unix_facts(&self) -> Result<UnixFacts, CallerError> {
        let (status, exe_path, exe_sha256) =
            self.inspect(|proc| Ok((proc.status()?, proc.exe_path()?, proc.exe_sha256()?)))?;
        let (uid, gid) = (status.uids[1], status.gids[1]);
        if uid != self.uid() || gid != self.gid() {
            return Err(CallerError::CredentialsChanged {
                pid: self.pid(),
                socket_uid: self.uid(),
                socket_gid: self.gid(),
                uid,
                gid,
            });
        }
        Ok(UnixFacts {
            uid,
            gid,
            supplementary_gids: status.groups,
            exe_path,
            exe_sha256,
        })
    }
}
