//! Kubernetes identifiers the kernel reveals about a caller: the pod UID and the container ID
//! (DESIGN.md §3.2, factor W1).
//!
//! Invariant: an instance of [`PodUid`] or [`ContainerId`] is always valid. A `PodUid` is a
//! UUID as the API server assigns it (canonical, lowercase, dashed); a `ContainerId` is the 64
//! lowercase hex digits the container runtimes use. The agent compares these with the pod's
//! `metadata.uid` and the `containerID` of its container statuses (after the `<runtime>://`
//! scheme), so both render exactly in those forms.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// A pod's `metadata.uid`, in the canonical lowercase dashed UUID form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodUid(Uuid);

impl PodUid {
    /// The UID as a [`Uuid`].
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

/// Why a string is not a [`PodUid`] or a [`ContainerId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Not a canonical lowercase dashed UUID.
    #[error("pod uid is not a lowercase dashed uuid")]
    PodUid,
    /// Not 64 lowercase hex digits.
    #[error("container id is not 64 lowercase hex digits")]
    ContainerId,
}

impl FromStr for PodUid {
    type Err = IdError;

    /// Accepts only the canonical form (`8-4-4-4-12` lowercase hex), the form the API server
    /// writes. Braced, URN, simple (undashed) and uppercase forms are refused so that one UID
    /// has exactly one spelling.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let uuid = Uuid::try_parse(s).map_err(|_| IdError::PodUid)?;
        let mut buf = Uuid::encode_buffer();
        if uuid.hyphenated().encode_lower(&mut buf) != s {
            return Err(IdError::PodUid);
        }
        Ok(Self(uuid))
    }
}

impl fmt::Display for PodUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for PodUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PodUid({self})")
    }
}

/// A container ID: 64 lowercase hex digits, as containerd, CRI-O and Docker assign them.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerId(String);

impl ContainerId {
    /// The ID as 64 lowercase hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ContainerId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if is_container_id(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError::ContainerId)
        }
    }
}

/// True when `s` is exactly 64 lowercase hex digits.
pub(crate) fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContainerId({})", self.0)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_uid_accepts_only_the_canonical_form() {
        let ok = "0c4a1a6e-3b5d-4f7e-9a2b-1c2d3e4f5a6b";
        assert_eq!(
            ok.parse::<PodUid>().map(|u| u.to_string()).as_deref(),
            Ok(ok)
        );
        for bad in [
            "0C4A1A6E-3B5D-4F7E-9A2B-1C2D3E4F5A6B",
            "0c4a1a6e3b5d4f7e9a2b1c2d3e4f5a6b",
            "{0c4a1a6e-3b5d-4f7e-9a2b-1c2d3e4f5a6b}",
            "urn:uuid:0c4a1a6e-3b5d-4f7e-9a2b-1c2d3e4f5a6b",
            "0c4a1a6e_3b5d_4f7e_9a2b_1c2d3e4f5a6b",
            "",
        ] {
            assert_eq!(bad.parse::<PodUid>(), Err(IdError::PodUid), "{bad}");
        }
    }

    #[test]
    fn container_id_is_64_lowercase_hex() {
        let ok = "a".repeat(64);
        assert_eq!(ok.parse::<ContainerId>().map(|c| c.to_string()), Ok(ok));
        for bad in [
            "A".repeat(64),
            "a".repeat(63),
            "a".repeat(65),
            "g".repeat(64),
        ] {
            assert_eq!(bad.parse::<ContainerId>(), Err(IdError::ContainerId));
        }
    }
}
