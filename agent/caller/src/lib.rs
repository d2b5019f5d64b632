//! The kernel's view of a Workload API caller (docs/architecture.md, "Workload attestation" W1, "Trust model").
//!
//! A [`Caller`] is captured when a connection is accepted on the Workload API socket: peer
//! credentials, a pidfd where the kernel has one, an open `/proc/<pid>` and the start and
//! accept times that make up the PID-reuse guard. From it the agent reads the unix facts
//! ([`Caller::unix_facts`]) and the pod UID and container ID ([`Caller::pod_container`],
//! anchored under [`CgroupRoots`]). With the `serve` feature (default), [`incoming`] turns a
//! `UnixListener` into connections that tonic can serve, each carrying its [`CallerInfo`].

mod cgroup;
mod digest;
mod error;
mod exe;
mod guard;
mod kube;
mod peer;
mod pod;
mod procfs;
#[cfg(feature = "serve")]
mod serve;
mod unix;

pub use cgroup::{CgroupError, CgroupRoot, CgroupRootError, CgroupRoots, parse_proc_cgroup};
pub use digest::Sha256Digest;
pub use error::CallerError;
pub use exe::{
    DEFAULT_DIGEST_CACHE_ENTRIES, DEFAULT_HASH_TIMEOUT, DEFAULT_MAX_EXE_HASH_BYTES, DigestCache,
    DigestSource, ExeLimits,
};
pub use guard::{boot_ticks_now, check_start_time};
pub use kube::{ContainerId, ContainerRuntime, PodContainer, PodIdError, PodUid};
pub use peer::{Caller, PeerPidfd, PidHandle, peer_pidfd_supported};
pub use procfs::{ProcDir, ProcError, ProcStat, ProcStatus};
#[cfg(feature = "serve")]
pub use serve::{CallerInfo, CallerStream, incoming, incoming_with};
pub use unix::UnixFacts;
