//! Kubernetes identifiers the kernel reveals about a caller: the pod UID and the container ID
//! (docs/architecture.md, "Factors": W1).
//!
//! [`PodUid`] and [`ContainerId`] are sworn-identity's, the one spelling both sides use: the
//! agent compares them with the pod's `metadata.uid` and the `containerID` of its container
//! statuses, and sends them as evidence.

pub use sworn_identity::{ContainerId, PodIdError, PodUid};

/// True when `s` is exactly 64 lowercase hex digits.
pub(crate) fn is_container_id(s: &str) -> bool {
    ContainerId::is_valid(s)
}

/// Which container runtime named the container's cgroup, when the name says so.
///
/// Informational: the agent matches containers by [`ContainerId`] alone. A plain `<id>`
/// segment (the cgroupfs driver under containerd or Docker) does not name its runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContainerRuntime {
    /// `cri-containerd-<id>.scope` or `…:cri-containerd:<id>`.
    Containerd,
    /// `crio-<id>.scope` or `crio-<id>`.
    CriO,
    /// `docker-<id>.scope`.
    Docker,
    /// A bare `<id>` segment.
    Unnamed,
}

/// The kernel's answer to "which pod and container is this process in" (W1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodContainer {
    /// The pod UID from the pod's cgroup segment.
    pub pod_uid: PodUid,
    /// The container ID from the container's cgroup segment.
    pub container_id: ContainerId,
    /// The runtime the container segment names, if any.
    pub runtime: ContainerRuntime,
}
