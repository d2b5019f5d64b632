//! The Kubernetes identifiers of a workload: the pod UID and the container ID
//! (docs/architecture.md, "Factors": W1, W2).
//!
//! Invariant: an instance of [`PodUid`] or [`ContainerId`] is always valid and has exactly
//! one spelling. A `PodUid` is a UUID in the canonical form the API server writes
//! (`8-4-4-4-12` lowercase hex); a `ContainerId` is the 64 lowercase hex digits containerd,
//! CRI-O and Docker assign. The kernel's view (the cgroup path), the pod's container
//! statuses (after the `<runtime>://` scheme), the evidence on the wire and the
//! `k8s:pod-uid` selector all use exactly these forms, so values compare by equality.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// Why a string is not a [`PodUid`] or a [`ContainerId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PodIdError {
    /// Not a canonical lowercase dashed UUID.
    #[error("pod uid is not a lowercase dashed uuid")]
    PodUid,
    /// Not 64 lowercase hex digits (or, in a container status, not `<runtime>://<id>`).
    #[error("container id is not 64 lowercase hex digits")]
    ContainerId,
}

/// A pod's `metadata.uid`, in the canonical lowercase dashed UUID form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodUid(Uuid);

impl PodUid {
    /// The UID as a [`Uuid`].
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl FromStr for PodUid {
    type Err = PodIdError;

    /// Accepts only the canonical form (`8-4-4-4-12` lowercase hex), the form the API server
    /// writes. Braced, URN, simple (undashed) and uppercase forms are refused so that one UID
    /// has exactly one spelling.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::uuid_text::parse_canonical(s)
            .map(Self)
            .ok_or(PodIdError::PodUid)
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

    /// Whether `s` is exactly 64 lowercase hex digits.
    pub fn is_valid(s: &str) -> bool {
        s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }

    /// The ID in a container status's `containerID`, `<runtime>://<id>`
    /// (`containerd://…`, `cri-o://…`, `docker://…`). The runtime is not part of the ID:
    /// the kernel's cgroup path may or may not name it.
    pub fn from_status(container_id: &str) -> Result<Self, PodIdError> {
        let (_, id) = container_id
            .split_once("://")
            .ok_or(PodIdError::ContainerId)?;
        id.parse()
    }
}

impl FromStr for ContainerId {
    type Err = PodIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if Self::is_valid(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(PodIdError::ContainerId)
        }
    }
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
            assert_eq!(bad.parse::<PodUid>(), Err(PodIdError::PodUid), "{bad}");
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
            assert_eq!(bad.parse::<ContainerId>(), Err(PodIdError::ContainerId));
        }
    }

    #[test]
    fn a_status_container_id_drops_the_runtime_scheme_only() {
        let id = "b".repeat(64);
        for runtime in ["containerd", "cri-o", "docker"] {
            assert_eq!(
                ContainerId::from_status(&format!("{runtime}://{id}")).map(|c| c.to_string()),
                Ok(id.clone())
            );
        }
        for bad in [
            id.clone(),
            format!("containerd://{}", "B".repeat(64)),
            String::new(),
        ] {
            assert_eq!(
                ContainerId::from_status(&bad),
                Err(PodIdError::ContainerId),
                "{bad}"
            );
        }
    }
}
