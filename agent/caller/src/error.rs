//! The one error type of a caller's attestation by this crate (docs/architecture.md, "Workload attestation" W1, "Trust model").
//!
//! Every variant means "refuse": the agent answers the client a generic `PermissionDenied`
//! and writes the variant, in full, to the audit log. Messages hold pids, tick counts and
//! cgroup paths, never secrets.

use std::io;

use crate::cgroup::CgroupError;
use crate::procfs::ProcError;

/// Why a caller was refused.
#[derive(Debug, thiserror::Error)]
pub enum CallerError {
    /// `SO_PEERCRED` could not be read from the socket.
    #[error("reading SO_PEERCRED: {0}")]
    PeerCredentials(#[source] io::Error),
    /// `SO_PEERPIDFD` failed with an error other than "not supported".
    #[error("reading SO_PEERPIDFD: {0}")]
    PeerPidfd(#[source] io::Error),
    /// The peer's pid is not visible in the agent's pid namespace (the kernel reports 0).
    #[error("peer pid is not visible in this pid namespace")]
    NoPeerPid,
    /// The process that connected is gone: exited and reaped, or its pid handle reports exit.
    #[error("process {pid} is gone")]
    Gone {
        /// The peer pid.
        pid: u32,
    },
    /// The process that connected has exited (a zombie or its pidfd signals exit).
    #[error("process {pid} has exited")]
    Exited {
        /// The peer pid.
        pid: u32,
    },
    /// The process behind the pid started after the connection was accepted: the pid was
    /// reused.
    #[error("process {pid} started at tick {start_ticks}, after accept at tick {accept_ticks}")]
    StartedAfterAccept {
        /// The peer pid.
        pid: u32,
        /// The process's start time (clock ticks since boot).
        start_ticks: u64,
        /// The accept time (clock ticks since boot).
        accept_ticks: u64,
    },
    /// The start time behind the pid changed between two reads: the pid was reused.
    #[error("process {pid} start time changed from tick {before} to {after}")]
    StartTimeChanged {
        /// The peer pid.
        pid: u32,
        /// The start time seen first.
        before: u64,
        /// The start time seen later.
        after: u64,
    },
    /// The process's effective uid or gid now differs from the socket's credentials.
    #[error(
        "process {pid} credentials changed since connect: socket uid {socket_uid} gid {socket_gid}, \
         now euid {uid} egid {gid}"
    )]
    CredentialsChanged {
        /// The peer pid.
        pid: u32,
        /// `SO_PEERCRED` uid.
        socket_uid: u32,
        /// `SO_PEERCRED` gid.
        socket_gid: u32,
        /// Effective uid from `/proc/<pid>/status`.
        uid: u32,
        /// Effective gid from `/proc/<pid>/status`.
        gid: u32,
    },
    /// Checking the pidfd for exit failed.
    #[error("polling the pidfd of process {pid}: {source}")]
    PidfdPoll {
        /// The peer pid.
        pid: u32,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Reading `/proc/<pid>` failed.
    #[error("process {pid}: {source}")]
    Proc {
        /// The peer pid.
        pid: u32,
        /// The error.
        #[source]
        source: ProcError,
    },
    /// `/proc/<pid>/cgroup` does not place the process in exactly one pod container.
    #[error("process {pid}: {source}")]
    Cgroup {
        /// The peer pid.
        pid: u32,
        /// The error.
        #[source]
        source: CgroupError,
    },
}
