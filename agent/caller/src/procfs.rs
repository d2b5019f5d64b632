//! Reading one process's `/proc/<pid>` through a directory handle held since accept
//! (docs/architecture.md, "Workload attestation" W1, PID-reuse guard).
//!
//! Invariant: every read goes through `openat`/`readlinkat` on the held `/proc/<pid>`
//! directory fd, never through a fresh `/proc/<pid>/…` path. A procfs pid directory stays
//! bound to the process it was opened for: once that process is gone, reads through it fail
//! (`ENOENT`/`ESRCH`) even if the pid number now belongs to someone else, so a recycled pid
//! cannot redirect a read.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

/// Size cap for the small text files read here (`stat`, `status`, `cgroup`).
const TEXT_LIMIT: u64 = 64 * 1024;

/// Why a read under `/proc/<pid>` failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// The process is gone (its `/proc` entry vanished or reads report `ESRCH`).
    #[error("process is gone")]
    Gone,
    /// Another I/O error reading `file`.
    #[error("reading /proc/<pid>/{file}: {source}")]
    Io {
        /// The file under `/proc/<pid>`.
        file: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// `file` did not have the expected shape.
    #[error("unexpected contents in /proc/<pid>/{file}: {reason}")]
    Malformed {
        /// The file under `/proc/<pid>`.
        file: &'static str,
        /// What was wrong.
        reason: &'static str,
    },
    /// `file` was larger than the cap for small text files.
    #[error("/proc/<pid>/{file} is larger than {TEXT_LIMIT} bytes")]
    TooLarge {
        /// The file under `/proc/<pid>`.
        file: &'static str,
    },
    /// The executable is larger than `max_exe_hash_bytes`; it was not hashed.
    #[error("exe too large: {size} bytes, over max_exe_hash_bytes ({cap})")]
    ExeTooLarge {
        /// Its size in bytes (or what was read of it before it passed the cap).
        size: u64,
        /// The cap.
        cap: u64,
    },
    /// Hashing the executable took longer than the cap.
    #[error("hash timeout: the executable was not hashed within {limit:?}")]
    HashTimeout {
        /// The cap.
        limit: std::time::Duration,
    },
}

impl ProcError {
    pub(crate) fn io(file: &'static str, source: io::Error) -> Self {
        match source.raw_os_error() {
            Some(code)
                if code == Errno::NOENT.raw_os_error() || code == Errno::SRCH.raw_os_error() =>
            {
                Self::Gone
            }
            _ => Self::Io { file, source },
        }
    }
}

/// The fields of `/proc/<pid>/stat` the guard needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Field 3: the state letter (`R`, `S`, `Z`, …).
    pub state: char,
    /// Field 22: start time in clock ticks since boot.
    pub start_ticks: u64,
}

impl ProcStat {
    /// A zombie (`Z`) or dead (`X`, `x`) process has exited.
    pub fn has_exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// The credential lines of `/proc/<pid>/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStatus {
    /// `Uid:` real, effective, saved, filesystem.
    pub uids: [u32; 4],
    /// `Gid:` real, effective, saved, filesystem.
    pub gids: [u32; 4],
    /// `Groups:` supplementary group IDs.
    pub groups: Vec<u32>,
}

/// An open `/proc/<pid>` directory. Obtain one through `Caller::inspect`, which checks that
/// the process is still the one that connected around every use.
#[derive(Debug)]
pub struct ProcDir {
    fd: OwnedFd,
}

impl ProcDir {
    /// Opens `/proc/<pid>`.
    pub(crate) fn open(pid: u32) -> Result<Self, ProcError> {
        let path = format!("/proc/{pid}");
        let fd = rustix::fs::open(
            path.as_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| ProcError::io("", e.into()))?;
        Ok(Self { fd })
    }

    fn open_file(&self, file: &'static str) -> Result<File, ProcError> {
        rustix::fs::openat(
            &self.fd,
            file,
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map(File::from)
        .map_err(|e| ProcError::io(file, e.into()))
    }

    fn read_text(&self, file: &'static str) -> Result<Vec<u8>, ProcError> {
        let mut buf = Vec::new();
        self.open_file(file)?
            .take(TEXT_LIMIT + 1)
            .read_to_end(&mut buf)
            .map_err(|e| ProcError::io(file, e))?;
        if buf.len() as u64 > TEXT_LIMIT {
            return Err(ProcError::TooLarge { file });
        }
        Ok(buf)
    }

    /// State and start time from `stat`.
    pub fn stat(&self) -> Result<ProcStat, ProcError> {
        let raw = self.read_text("stat")?;
        parse_stat(&raw).ok_or(ProcError::Malformed {
            file: "stat",
            reason: "no state or start time after the command name",
        })
    }

    /// Credentials from `status`.
    pub fn status(&self) -> Result<ProcStatus, ProcError> {
        let raw = self.read_text("status")?;
        let text = String::from_utf8_lossy(&raw);
        parse_status(&text).ok_or(ProcError::Malformed {
            file: "status",
            reason: "missing or unreadable Uid, Gid or Groups line",
        })
    }

    /// The raw contents of `cgroup`, for [`crate::parse_proc_cgroup`].
    pub fn cgroup(&self) -> Result<Vec<u8>, ProcError> {
        self.read_text("cgroup")
    }

    /// The target of the `exe` link: the path of the running executable, as the kernel names
    /// it (a replaced or deleted file ends in ` (deleted)`).
    pub fn exe_path(&self) -> Result<PathBuf, ProcError> {
        let target = rustix::fs::readlinkat(&self.fd, "exe", Vec::new())
            .map_err(|e| ProcError::io("exe", e.into()))?;
        Ok(PathBuf::from(OsString::from_vec(target.into_bytes())))
    }

    /// The running executable, opened through the `exe` link (the file the process maps,
    /// even if its path was since replaced).
    pub(crate) fn open_exe(&self) -> Result<File, ProcError> {
        self.open_file("exe")
    }
}

/// Parses `pid (comm) state … starttime …`. The command name may hold spaces and `)`, so
/// fields are counted after the last `)`.
pub(crate) fn parse_stat(raw: &[u8]) -> Option<ProcStat> {
    let close = raw.iter().rposition(|&b| b == b')')?;
    let after = std::str::from_utf8(&raw[close + 1..]).ok()?;
    let mut fields = after.split_ascii_whitespace();
    let mut state_chars = fields.next()?.chars();
    let state = state_chars.next()?;
    if state_chars.next().is_some() {
        return None;
    }
    // Fields after the name start at field 3 (state); field 22 is 19 further on.
    let start_ticks = fields.nth(18)?.parse().ok()?;
    Some(ProcStat { state, start_ticks })
}

fn parse_status(text: &str) -> Option<ProcStatus> {
    let (mut uids, mut gids, mut groups) = (None, None, None);
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let numbers = || {
            value
                .split_ascii_whitespace()
                .map(str::parse::<u32>)
                .collect::<Result<Vec<u32>, _>>()
                .ok()
        };
        match key {
            "Uid" => uids = numbers().and_then(|v| <[u32; 4]>::try_from(v).ok()),
            "Gid" => gids = numbers().and_then(|v| <[u32; 4]>::try_from(v).ok()),
            "Groups" => groups = numbers(),
            _ => {}
        }
    }
    Some(ProcStatus {
        uids: uids?,
        gids: gids?,
        groups: groups?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_last_paren() {
        let raw = b"42 (we) ird (name) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1234 56\n";
        assert_eq!(
            parse_stat(raw),
            Some(ProcStat {
                state: 'S',
                start_ticks: 987654
            })
        );
        assert_eq!(parse_stat(b"42 (short) S 1 2 3\n"), None);
        assert_eq!(parse_stat(b"no paren at all"), None);
    }

    #[test]
    fn status_needs_uid_gid_and_groups() {
        let text = "Name:\tx\nUid:\t1000\t1001\t1002\t1003\nGid:\t5\t6\t7\t8\nGroups:\t10 20 \n";
        let status = parse_status(text).unwrap();
        assert_eq!(status.uids, [1000, 1001, 1002, 1003]);
        assert_eq!(status.gids, [5, 6, 7, 8]);
        assert_eq!(status.groups, vec![10, 20]);
        assert_eq!(
            parse_status("Uid:\t1\t1\t1\t1\nGroups:\t\n").map(|s| s.groups),
            None
        );
        assert_eq!(
            parse_status("Uid:\t1\t1\t1\t1\nGid:\t1\t1\t1\t1\nGroups:\t\n").map(|s| s.groups),
            Some(vec![])
        );
    }
}
