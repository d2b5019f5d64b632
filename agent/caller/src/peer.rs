//! The process at the other end of a Workload API connection, captured at accept time
//! (docs/architecture.md, "Workload attestation" W1, "Trust model"; the PID-reuse guard).
//!
//! At accept: `SO_PEERCRED` (pid, uid, gid), `SO_PEERPIDFD` where the kernel has it (Linux
//! 6.5+; else a `pidfd_open` fallback, else none), an open `/proc/<pid>` directory, the
//! process's start time and the accept time. Invariants kept by [`Caller`]:
//! - the process started no later than the accept (else its pid was reused);
//! - every [`Caller::inspect`] re-reads the start time before and after the reads and
//!   requires it unchanged, and requires the process to be alive (not a zombie, pidfd not
//!   signalling exit); so a caller that exits mid-attestation, or hands its socket to a child
//!   and exits, is refused;
//! - all reads go through the held `/proc/<pid>` directory (see `procfs`).
//!
//! Known limit (docs/architecture.md, "Trust model"): a process can connect, fork and exec; the facts describe the
//! process that connected, as it is when inspected.

use std::os::fd::{AsFd, OwnedFd};

use nix::sys::socket::{getsockopt, sockopt};
use rustix::event::{PollFd, PollFlags, poll};
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, pidfd_open};

use crate::error::CallerError;
use crate::guard::{boot_ticks_now, check_start_time};
use crate::procfs::{ProcDir, ProcError, ProcStat};

/// How the captured process is held besides its `/proc/<pid>` directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PidHandle {
    /// A pidfd from `SO_PEERPIDFD`: bound to the connecting process itself, so no pid race.
    PeerPidfd,
    /// A pidfd from `pidfd_open` after accept (kernels without `SO_PEERPIDFD`).
    PidfdOpen,
    /// Only the `/proc/<pid>` directory (kernels without pidfds).
    ProcDirOnly,
}

/// Whether [`Caller::capture_with`] asks the kernel for `SO_PEERPIDFD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PeerPidfd {
    /// Use it where the kernel has it (Linux 6.5+), else fall back.
    #[default]
    Use,
    /// Never ask: behave as on a kernel without it. For tests of that path.
    Ignore,
}

/// Whether this kernel answers `SO_PEERPIDFD` (Linux 6.5+), probed on a socket pair. Without
/// it, a pid reused between `connect` and `accept` is not caught (docs/architecture.md,
/// "Workload attestation").
pub fn peer_pidfd_supported() -> bool {
    std::os::unix::net::UnixStream::pair()
        .is_ok_and(|(a, _b)| getsockopt(&a, sockopt::PeerPidfd).is_ok())
}

/// The kernel's view of a connected caller, captured at accept time. See the module docs for
/// the invariants.
#[derive(Debug)]
pub struct Caller {
    pid: u32,
    uid: u32,
    gid: u32,
    proc_dir: ProcDir,
    pidfd: Option<OwnedFd>,
    pid_handle: PidHandle,
    start_ticks: u64,
    accept_ticks: u64,
}

impl Caller {
    /// Captures the peer of a just-accepted unix stream socket. Call it right after `accept`:
    /// the current time is taken as the accept time.
    pub fn capture(socket: &impl AsFd) -> Result<Self, CallerError> {
        Self::capture_with(socket, PeerPidfd::Use)
    }

    /// [`Caller::capture`], asking for `SO_PEERPIDFD` only if `peer_pidfd` says so.
    pub fn capture_with(socket: &impl AsFd, peer_pidfd: PeerPidfd) -> Result<Self, CallerError> {
        let accept_ticks = boot_ticks_now();
        let cred = getsockopt(socket, sockopt::PeerCredentials)
            .map_err(|e| CallerError::PeerCredentials(e.into()))?;
        let asked = match peer_pidfd {
            PeerPidfd::Use => getsockopt(socket, sockopt::PeerPidfd),
            PeerPidfd::Ignore => Err(nix::errno::Errno::ENOPROTOOPT),
        };
        let peer_pidfd = match asked {
            Ok(fd) => Some(fd),
            // Kernels before 6.5 do not know the option.
            Err(nix::errno::Errno::ENOPROTOOPT) => None,
            Err(nix::errno::Errno::ESRCH) => {
                return Err(CallerError::Gone {
                    pid: u32::try_from(cred.pid()).unwrap_or(0),
                });
            }
            Err(e) => return Err(CallerError::PeerPidfd(e.into())),
        };
        let pid = u32::try_from(cred.pid())
            .ok()
            .filter(|p| *p != 0)
            .ok_or(CallerError::NoPeerPid)?;
        Self::from_parts(pid, cred.uid(), cred.gid(), peer_pidfd, accept_ticks)
    }

    /// Captures process `pid` as if a connection from it had been accepted at `accept_ticks`
    /// with credentials `uid`/`gid`. For the guard's tests only: it bypasses `SO_PEERCRED`.
    #[cfg(test)]
    pub(crate) fn for_test(
        pid: u32,
        uid: u32,
        gid: u32,
        accept_ticks: u64,
    ) -> Result<Self, CallerError> {
        Self::from_parts(pid, uid, gid, None, accept_ticks)
    }

    fn from_parts(
        pid: u32,
        uid: u32,
        gid: u32,
        peer_pidfd: Option<OwnedFd>,
        accept_ticks: u64,
    ) -> Result<Self, CallerError> {
        let proc_dir = ProcDir::open(pid).map_err(|e| proc_error(pid, e))?;
        let (pidfd, pid_handle) = match peer_pidfd {
            Some(fd) => (Some(fd), PidHandle::PeerPidfd),
            None => match Pid::from_raw(pid.try_into().unwrap_or(0)) {
                Some(raw) => match pidfd_open(raw, PidfdFlags::empty()) {
                    Ok(fd) => (Some(fd), PidHandle::PidfdOpen),
                    Err(Errno::SRCH) => return Err(CallerError::Gone { pid }),
                    Err(_) => (None, PidHandle::ProcDirOnly),
                },
                None => return Err(CallerError::NoPeerPid),
            },
        };
        let stat = proc_dir.stat().map_err(|e| proc_error(pid, e))?;
        let caller = Self {
            pid,
            uid,
            gid,
            proc_dir,
            pidfd,
            pid_handle,
            start_ticks: stat.start_ticks,
            accept_ticks,
        };
        check_start_time(pid, accept_ticks, stat.start_ticks, stat.start_ticks)?;
        // With a peer pidfd, "alive now" proves the /proc directory opened above is the
        // connecting process: a pid is not reused while its process is alive.
        caller.check_alive(&stat)?;
        tracing::debug!(pid, uid, gid, handle = ?pid_handle, "caller captured");
        Ok(caller)
    }

    /// The peer's pid (in the agent's pid namespace).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The peer's effective uid at connect time (`SO_PEERCRED`).
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// The peer's effective gid at connect time (`SO_PEERCRED`).
    pub fn gid(&self) -> u32 {
        self.gid
    }

    /// The process's start time, clock ticks since boot (`stat` field 22), read at accept.
    pub fn start_ticks(&self) -> u64 {
        self.start_ticks
    }

    /// The accept time, clock ticks since boot (CLOCK_BOOTTIME).
    pub fn accept_ticks(&self) -> u64 {
        self.accept_ticks
    }

    /// How the process is held besides its `/proc/<pid>` directory.
    pub fn pid_handle(&self) -> PidHandle {
        self.pid_handle
    }

    /// Runs `read` on the held `/proc/<pid>` directory, checking before and after that the
    /// process is alive and still the one captured at accept. Any failure refuses the caller.
    /// Reads are blocking syscalls on procfs; long ones (hashing the executable) belong in
    /// `spawn_blocking`.
    pub fn inspect<T>(
        &self,
        read: impl FnOnce(&ProcDir) -> Result<T, ProcError>,
    ) -> Result<T, CallerError> {
        self.verify_unchanged()?;
        let out = read(&self.proc_dir).map_err(|e| proc_error(self.pid, e))?;
        self.verify_unchanged()?;
        Ok(out)
    }

    /// Checks that the process is alive and its start time is the one read at accept.
    pub fn verify_unchanged(&self) -> Result<(), CallerError> {
        let stat = self.proc_dir.stat().map_err(|e| proc_error(self.pid, e))?;
        check_start_time(
            self.pid,
            self.accept_ticks,
            self.start_ticks,
            stat.start_ticks,
        )?;
        self.check_alive(&stat)
    }

    fn check_alive(&self, stat: &ProcStat) -> Result<(), CallerError> {
        if stat.has_exited() {
            return Err(CallerError::Exited { pid: self.pid });
        }
        if let Some(pidfd) = &self.pidfd {
            // A pidfd polls readable once its process has exited.
            let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
            let zero = rustix::time::Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            poll(&mut fds, Some(&zero)).map_err(|e| CallerError::PidfdPoll {
                pid: self.pid,
                source: e.into(),
            })?;
            if !fds[0].revents().is_empty() {
                return Err(CallerError::Exited { pid: self.pid });
            }
        }
        Ok(())
    }
}

fn proc_error(pid: u32, source: ProcError) -> CallerError {
    match source {
        ProcError::Gone => CallerError::Gone { pid },
        source => CallerError::Proc { pid, source },
    }
}

#[cfg(test)]
mod tests;
