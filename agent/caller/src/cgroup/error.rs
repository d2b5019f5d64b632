//! Why `/proc/<pid>/cgroup` does not place a process in exactly one pod container: the
//! parser's error, shared by the parser and its segment rules (docs/architecture.md,
//! "Workload attestation", W1).

use crate::kube::{PodContainer, PodUid};

/// Why `/proc/<pid>/cgroup` does not place a process in exactly one pod container. `line` is
/// 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CgroupError {
    /// A line is not `<hierarchy>:<controllers>:<absolute path>`, or the file is empty or not
    /// UTF-8.
    #[error("malformed cgroup line {line}: {reason}")]
    Malformed {
        /// The offending line (0 for the whole file).
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two lines for the same hierarchy with different paths.
    #[error("cgroup lines for hierarchy {hierarchy} disagree")]
    HierarchyDisagrees {
        /// The hierarchy ID that appears twice.
        hierarchy: u32,
    },
    /// Two lines name different pods or containers.
    #[error("cgroup lines name different pods or containers: {first:?} and {second:?}")]
    ConflictingIds {
        /// What the first pod line named.
        first: Box<PodContainer>,
        /// What a later line named instead.
        second: Box<PodContainer>,
    },
    /// A path holds more than one pod or container segment.
    #[error("cgroup line {line} nests a pod or container segment inside another")]
    NestedSegments {
        /// The offending line.
        line: usize,
    },
    /// A path that names a pod or container is under no configured root.
    #[error("cgroup line {line} names a pod or container outside the configured roots: {path}")]
    OutsideRoots {
        /// The offending line.
        line: usize,
        /// Its normalised path.
        path: String,
    },
    /// A path under a configured root has no pod segment directly below it (and its QoS
    /// level).
    #[error("cgroup line {line} has no pod segment directly below its root")]
    UnexpectedLayout {
        /// The offending line.
        line: usize,
    },
    /// The pod segment holds a static pod's 32-hex hash, which no API pod carries.
    #[error("cgroup line {line} names a static pod (hash uid)")]
    StaticPodUid {
        /// The offending line.
        line: usize,
    },
    /// The pod segment's UID is not a UUID in the driver's spelling.
    #[error("cgroup line {line} has an invalid pod uid")]
    InvalidPodUid {
        /// The offending line.
        line: usize,
    },
    /// The process sits in the pod's own cgroup (the pause or pod-level process).
    #[error("cgroup line {line} places the process in pod {pod_uid} but in no container")]
    NoContainer {
        /// The offending line.
        line: usize,
        /// The pod named.
        pod_uid: PodUid,
    },
    /// The segment below the pod is not a container name in a known form.
    #[error("cgroup line {line} has an unrecognised container segment {segment:?}")]
    UnrecognisedContainer {
        /// The offending line.
        line: usize,
        /// The segment.
        segment: String,
    },
    /// No line places the process in a pod: a host process.
    #[error("process is not in a pod cgroup")]
    NotInPod,
}
