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
use crate::exe::{DigestCache, DigestSource, OpenExe};
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
    /// The `exe` link's target: the executable's path in the caller's mount namespace (ends
    /// in ` (deleted)` if the file was replaced or removed since exec). For the audit only.
    pub exe_link: PathBuf,
    /// `exe_link`, if it names the running executable in the agent's mount namespace too
    /// (the `unix:path` rule, see `exe`); `None` otherwise.
    pub exe_path: Option<PathBuf>,
    /// SHA-256 of the running executable, read through the `exe` link; `None` when the
    /// inspection was asked not to hash (no entry needs `unix:sha256`).
    pub exe_sha256: Option<Sha256Digest>,
    /// Whether the digest came from the cache; `None` without a digest.
    pub digest_source: Option<DigestSource>,
}

impl Caller {
    /// Reads the caller's unix facts, hashing its executable through `digests` (cached,
    /// under its size and time caps) if given; with `None` the facts carry no digest, and
    /// nothing is read of the executable but its identity. Blocking: a miss hashes the
    /// whole executable, so call it from `tokio::task::spawn_blocking` (the [`Caller`] is
    /// `Send + Sync`; share it in an `Arc`).
    pub fn unix_facts(&self, digests: Option<&DigestCache>) -> Result<UnixFacts, CallerError> {
        let (status, exe_link, exe_path, digest) = self.inspect(|proc| {
            let status = proc.status()?;
            let link = proc.exe_path()?;
            // Opened after the link was read: if the process exec'd in between, the path
            // check below fails and the path is withheld.
            let exe = OpenExe::open(proc)?;
            let path = exe.is_at(&link).then(|| link.clone());
            let digest = digests.map(|d| d.digest(&exe)).transpose()?;
            Ok((status, link, path, digest))
        })?;
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
            exe_link,
            exe_path,
            exe_sha256: digest.map(|(sha256, _)| sha256),
            digest_source: digest.map(|(_, source)| source),
        })
    }
}
