//! Kubernetes-mode workload facts: the pod and container a caller runs in, from
//! `/proc/<pid>/cgroup` (docs/architecture.md, "Workload attestation", W1).
//!
//! Invariant: the cgroup file is read through one [`Caller::inspect`], so it describes the
//! process that connected, alive and unchanged around the read; the parser
//! ([`parse_proc_cgroup`]) accepts only pod cgroups anchored under the configured roots.

use crate::cgroup::{CgroupRoots, parse_proc_cgroup};
use crate::error::CallerError;
use crate::kube::PodContainer;
use crate::peer::Caller;

impl Caller {
    /// The pod and container the caller runs in, from `/proc/<pid>/cgroup` read under the
    /// PID-reuse guard and anchored under `roots` (W1).
    pub fn pod_container(&self, roots: &CgroupRoots) -> Result<PodContainer, CallerError> {
        let contents = self.inspect(|proc| proc.cgroup())?;
        parse_proc_cgroup(&contents, roots).map_err(|source| CallerError::Cgroup {
            pid: self.pid(),
            source,
        })
    }
}
