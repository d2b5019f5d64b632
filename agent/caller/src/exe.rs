//! A caller's executable, opened once through the held `/proc/<pid>` (docs/architecture.md,
//! "Workload attestation", selectors `unix:path` and `unix:sha256`).
//!
//! Invariants:
//! - The digest and the path check describe the same file: the one open `exe` handle, whose
//!   identity comes from `fstat` on it.
//! - `unix:path` rule: the `exe` link names the path in the *caller's* mount namespace, which
//!   a process in a private mount namespace can bind-mount anything over. The path is reported
//!   only if `stat(path)`, in the agent's own mount namespace, is the same file (device and
//!   inode) as the open handle. Callers in other mount namespaces are not refused: one running
//!   a binary that the agent sees at the same path (a systemd `PrivateTmp=` service) keeps its
//!   path; one whose path means another file to the agent just has no path.
//! - Hashing is bounded: a file larger than [`ExeLimits::max_bytes`] is not read at all, and
//!   hashing stops at [`ExeLimits::timeout`]. Both refuse the caller (`exe too large`,
//!   `hash timeout`).
//! - Digests are cached by (device, inode, size, mtime, ctime) of the open file, the most
//!   recently used [`DigestCache`] capacity of them: changing the file's contents changes its
//!   mtime or, if mtime is reset, its ctime, which no unprivileged process can set.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::digest::Sha256Digest;
use crate::procfs::{ProcDir, ProcError};

/// Default for [`ExeLimits::max_bytes`] (config key `max_exe_hash_bytes`): larger than any
/// ordinary binary, small enough to hash well within the time cap.
pub const DEFAULT_MAX_EXE_HASH_BYTES: u64 = 256 * 1024 * 1024;
/// Default for [`ExeLimits::timeout`].
pub const DEFAULT_HASH_TIMEOUT: Duration = Duration::from_secs(2);
/// Default number of digests a [`DigestCache`] keeps.
pub const DEFAULT_DIGEST_CACHE_ENTRIES: usize = 1024;

/// Caps on hashing one executable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExeLimits {
    /// Larger files are refused unread (`exe too large`).
    pub max_bytes: u64,
    /// Hashing that takes longer is abandoned (`hash timeout`).
    pub timeout: Duration,
}

impl Default for ExeLimits {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_EXE_HASH_BYTES,
            timeout: DEFAULT_HASH_TIMEOUT,
        }
    }
}

/// What identifies one version of a file: a change of contents changes one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FileVersion {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// The running executable, opened through `/proc/<pid>/exe`.
#[derive(Debug)]
pub(crate) struct OpenExe {
    file: File,
    version: FileVersion,
}

impl OpenExe {
    /// Opens the executable of the process behind `proc`, with its identity from `fstat`.
    pub(crate) fn open(proc: &ProcDir) -> Result<Self, ProcError> {
        Self::new(proc.open_exe()?)
    }

    pub(crate) fn new(file: File) -> Result<Self, ProcError> {
        let meta = file.metadata().map_err(|e| ProcError::io("exe", e))?;
        Ok(Self {
            file,
            version: FileVersion {
                dev: meta.dev(),
                ino: meta.ino(),
                size: meta.size(),
                mtime: (meta.mtime(), meta.mtime_nsec()),
                ctime: (meta.ctime(), meta.ctime_nsec()),
            },
        })
    }

    /// The `unix:path` rule: whether `path`, looked up in the agent's own mount namespace, is
    /// this very file.
    pub(crate) fn is_at(&self, path: &Path) -> bool {
        std::fs::metadata(path)
            .is_ok_and(|m| m.dev() == self.version.dev && m.ino() == self.version.ino)
    }
}

/// Whether a digest came from the cache or was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestSource {
    /// The file's version was in the cache.
    Cached,
    /// The file was read and hashed.
    Hashed,
}

/// Digests of executables by file version, bounded, with hit and miss counts.
#[derive(Debug)]
pub struct DigestCache {
    limits: ExeLimits,
    capacity: usize,
    entries: Mutex<Entries>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<FileVersion, (Sha256Digest, u64)>,
    clock: u64,
}

impl DigestCache {
    /// A cache keeping up to `capacity` digests, hashing under `limits`.
    pub fn new(limits: ExeLimits, capacity: usize) -> Self {
        Self {
            limits,
            capacity: capacity.max(1),
            entries: Mutex::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The caps hashing runs under.
    pub fn limits(&self) -> ExeLimits {
        self.limits
    }

    /// Lookups answered from the cache.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Lookups that hashed the file (or were refused trying).
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// The digest of `exe`, from the cache or by hashing it under the limits.
    pub(crate) fn digest(&self, exe: &OpenExe) -> Result<(Sha256Digest, DigestSource), ProcError> {
        if let Some(d) = self.lookup(&exe.version) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok((d, DigestSource::Cached));
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let digest = hash_capped(&exe.file, exe.version.size, self.limits)?;
        self.insert(exe.version, digest);
        Ok((digest, DigestSource::Hashed))
    }

    fn lookup(&self, version: &FileVersion) -> Option<Sha256Digest> {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        e.clock += 1;
        let now = e.clock;
        e.map.get_mut(version).map(|(d, used)| {
            *used = now;
            *d
        })
    }

    fn insert(&self, version: FileVersion, digest: Sha256Digest) {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        e.clock += 1;
        let now = e.clock;
        if e.map.len() >= self.capacity && !e.map.contains_key(&version) {
            // Evict the least recently used. A linear scan, but only on a miss, which has
            // just read a whole file; the map is small and bounded.
            if let Some(oldest) = e.map.iter().min_by_key(|(_, (_, t))| *t).map(|(k, _)| *k) {
                e.map.remove(&oldest);
            }
        }
        e.map.insert(version, (digest, now));
    }
}

impl Default for DigestCache {
    fn default() -> Self {
        Self::new(ExeLimits::default(), DEFAULT_DIGEST_CACHE_ENTRIES)
    }
}

/// SHA-256 of `file` (of `size` bytes per `fstat`), refusing one over the size cap unread and
/// stopping at the time cap. Reads at most `max_bytes + 1` bytes, so a file that grows while
/// being read is refused too.
fn hash_capped(file: &File, size: u64, limits: ExeLimits) -> Result<Sha256Digest, ProcError> {
    if size > limits.max_bytes {
        return Err(ProcError::ExeTooLarge {
            size,
            cap: limits.max_bytes,
        });
    }
    let started = Instant::now();
    let mut reader = file.take(limits.max_bytes.saturating_add(1));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut read_total = 0u64;
    loop {
        if started.elapsed() > limits.timeout {
            return Err(ProcError::HashTimeout {
                limit: limits.timeout,
            });
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ProcError::io("exe", e)),
        };
        read_total += n as u64;
        if read_total > limits.max_bytes {
            return Err(ProcError::ExeTooLarge {
                size: read_total,
                cap: limits.max_bytes,
            });
        }
        hasher.update(&buf[..n]);
    }
    Ok(Sha256Digest::new(hasher.finalize().into()))
}

#[cfg(test)]
#[path = "exe_tests.rs"]
mod tests;
