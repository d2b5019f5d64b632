//! Kubernetes workload evidence: what the agent sends with each mint and the server
//! re-verifies (docs/architecture.md, "Factors": W1, W3, W4, `evidence`).
//!
//! The agent builds a [`K8sEvidence`] from what it established (W1–W3) and sends it as
//! `sworn.agent.v1.K8sEvidence`; the server parses that message back with
//! [`K8sEvidence::from_proto`] (feature `proto`) before anything else uses it, so both sides
//! agree on one encoding and every name is validated before it reaches a request path.

use std::fmt;

use crate::factor::Factor;
use crate::pod_id::{ContainerId, PodUid};

/// Longest service-account token accepted (a projected token is about 1 KiB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The evidence of one Kubernetes caller.
#[derive(Clone, PartialEq, Eq)]
pub struct K8sEvidence {
    /// From the kernel (the caller's cgroup).
    pub pod_uid: PodUid,
    /// From the kernel (the caller's cgroup).
    pub container_id: ContainerId,
    /// From the agent's watch; the server reads the pod by namespace and this name.
    pub pod_name: String,
    /// From the agent's watch.
    pub namespace: String,
    /// From the agent's watch; informational, the server finds the container by ID.
    pub container_name: String,
    /// The pod's projected token for the workload audience. Never logged.
    pub token: String,
}

impl fmt::Debug for K8sEvidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("K8sEvidence")
            .field("pod_uid", &self.pod_uid)
            .field("container_id", &self.container_id)
            .field("pod_name", &self.pod_name)
            .field("namespace", &self.namespace)
            .field("container_name", &self.container_name)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Why evidence was refused, with the factor the refusal names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    /// The pod UID, name or namespace is malformed (`evidence`).
    #[error("malformed pod identifiers")]
    PodIdentifiers,
    /// The container ID is not 64 lowercase hex digits (`W1`: the kernel's view).
    #[error("malformed container ID")]
    ContainerId,
    /// The token is empty or longer than [`MAX_TOKEN_BYTES`] (`W3`).
    #[error("workload token missing or too large")]
    Token,
}

impl EvidenceError {
    /// The factor a denial for this names.
    pub fn factor(&self) -> Factor {
        match self {
            EvidenceError::PodIdentifiers => Factor::Evidence,
            EvidenceError::ContainerId => Factor::W1,
            EvidenceError::Token => Factor::W3,
        }
    }
}

#[cfg(feature = "proto")]
mod proto {
    use sworn_proto::agent as pb;

    use super::{EvidenceError, K8sEvidence, MAX_TOKEN_BYTES};
    use crate::selector::{is_dns_label, is_dns_subdomain};

    impl K8sEvidence {
        /// Parses evidence as an agent sent it, checking in this order: the pod identifiers,
        /// the container ID, the token.
        pub fn from_proto(ev: &pb::K8sEvidence) -> Result<Self, EvidenceError> {
            let pod_uid = ev
                .pod_uid
                .parse()
                .map_err(|_| EvidenceError::PodIdentifiers)?;
            if !is_dns_subdomain(&ev.pod_name) || !is_dns_label(&ev.namespace) {
                return Err(EvidenceError::PodIdentifiers);
            }
            let container_id = ev
                .container_id
                .parse()
                .map_err(|_| EvidenceError::ContainerId)?;
            if ev.token.is_empty() || ev.token.len() > MAX_TOKEN_BYTES {
                return Err(EvidenceError::Token);
            }
            Ok(K8sEvidence {
                pod_uid,
                container_id,
                pod_name: ev.pod_name.clone(),
                namespace: ev.namespace.clone(),
                container_name: ev.container_name.clone(),
                token: ev.token.clone(),
            })
        }
    }

    impl From<K8sEvidence> for pb::K8sEvidence {
        fn from(e: K8sEvidence) -> Self {
            pb::K8sEvidence {
                pod_uid: e.pod_uid.to_string(),
                container_id: e.container_id.to_string(),
                pod_name: e.pod_name,
                namespace: e.namespace,
                container_name: e.container_name,
                token: e.token,
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::Factor;

        fn sent() -> K8sEvidence {
            K8sEvidence {
                pod_uid: "0f8fad5b-d9cb-469f-a165-70867728950e".parse().unwrap(),
                container_id: "a".repeat(64).parse().unwrap(),
                pod_name: "web-1".into(),
                namespace: "default".into(),
                container_name: "app".into(),
                token: "header.claims.signature".into(),
            }
        }

        #[test]
        fn what_the_agent_sends_the_server_reads_back() {
            let wire = pb::K8sEvidence::from(sent());
            assert_eq!(K8sEvidence::from_proto(&wire), Ok(sent()));
        }

        #[test]
        fn malformed_evidence_names_its_factor() {
            type Spoil = fn(&mut pb::K8sEvidence);
            let cases: [(Spoil, Factor); 6] = [
                (|e| e.pod_uid = e.pod_uid.to_uppercase(), Factor::Evidence),
                (|e| e.pod_name = "../x".into(), Factor::Evidence),
                (|e| e.namespace = String::new(), Factor::Evidence),
                (
                    |e| e.container_id = format!("containerd://{}", e.container_id),
                    Factor::W1,
                ),
                (|e| e.token = String::new(), Factor::W3),
                (|e| e.token = "t".repeat(MAX_TOKEN_BYTES + 1), Factor::W3),
            ];
            for (i, (spoil, factor)) in cases.into_iter().enumerate() {
                let mut wire = pb::K8sEvidence::from(sent());
                spoil(&mut wire);
                assert_eq!(
                    K8sEvidence::from_proto(&wire).map_err(|e| e.factor()),
                    Err(factor),
                    "case {i}"
                );
            }
        }

        #[test]
        fn debug_never_shows_the_token() {
            assert!(!format!("{:?}", sent()).contains("claims"));
        }
    }
}
