//! Kubernetes workload evidence: what the agent sends with each mint and the server
//! re-verifies (docs/architecture.md, "Factors": W1, W3, W4, `evidence`).
//!
//! The agent builds a [`K8sEvidence`] from what it established (W1–W3) and sends it as
//! `sworn.agent.v1.K8sEvidence`; the server parses that message back with
//! [`K8sEvidence::from_proto`] (feature `proto`) before anything else uses it, so both sides
//! agree on one encoding and every name is validated before it reaches a request path.

use std::fmt;

use crate::pod_id::{ContainerId, PodUid};

pub use crate::evidence_bounds::{EvidenceError, MAX_TOKEN_BYTES, Problem};

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

#[cfg(feature = "proto")]
mod proto {
    use sworn_proto::agent as pb;

    use super::K8sEvidence;
    use crate::evidence_bounds::{
        EvidenceError, MAX_CONTAINER_ID_BYTES, MAX_LABEL_BYTES, MAX_POD_NAME_BYTES,
        MAX_TOKEN_BYTES, MAX_UUID_BYTES, Problem, check_len,
    };
    use crate::factor::Factor;
    use crate::selector::{is_dns_label, is_dns_subdomain};

    impl K8sEvidence {
        /// Parses evidence as an agent sent it, checking in this order: the pod identifiers
        /// (`evidence`), the container ID (`W1`), the token (`W3`). Every field's length is
        /// checked before its form, so a refusal never has to show a long value.
        pub fn from_proto(ev: &pb::K8sEvidence) -> Result<Self, EvidenceError> {
            let pod = |field, len, limit| check_len(Factor::Evidence, field, len, limit, true);
            let malformed =
                |field, why| EvidenceError::new(Factor::Evidence, field, Problem::Malformed(why));
            pod("pod_uid", ev.pod_uid.len(), MAX_UUID_BYTES)?;
            pod("pod_name", ev.pod_name.len(), MAX_POD_NAME_BYTES)?;
            pod("namespace", ev.namespace.len(), MAX_LABEL_BYTES)?;
            check_len(
                Factor::Evidence,
                "container_name",
                ev.container_name.len(),
                MAX_LABEL_BYTES,
                false,
            )?;
            let pod_uid = ev
                .pod_uid
                .parse()
                .map_err(|_| malformed("pod_uid", "not a lowercase hyphenated UUID"))?;
            if !is_dns_subdomain(&ev.pod_name) {
                return Err(malformed("pod_name", "not a DNS-1123 subdomain"));
            }
            if !is_dns_label(&ev.namespace) {
                return Err(malformed("namespace", "not a DNS-1123 label"));
            }
            if !ev.container_name.is_empty() && !is_dns_label(&ev.container_name) {
                return Err(malformed("container_name", "not a DNS-1123 label"));
            }
            check_len(
                Factor::W1,
                "container_id",
                ev.container_id.len(),
                MAX_CONTAINER_ID_BYTES,
                true,
            )?;
            let container_id = ev.container_id.parse().map_err(|_| {
                EvidenceError::new(
                    Factor::W1,
                    "container_id",
                    Problem::Malformed("not 64 lowercase hex digits"),
                )
            })?;
            check_len(Factor::W3, "token", ev.token.len(), MAX_TOKEN_BYTES, true)?;
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
            let cases: [(Spoil, Factor); 8] = [
                (|e| e.pod_uid = e.pod_uid.to_uppercase(), Factor::Evidence),
                (|e| e.pod_name = "../x".into(), Factor::Evidence),
                (|e| e.namespace = String::new(), Factor::Evidence),
                (
                    |e| e.container_id = format!("containerd://{}", e.container_id),
                    Factor::W1,
                ),
                (|e| e.token = String::new(), Factor::W3),
                (|e| e.token = "t".repeat(MAX_TOKEN_BYTES + 1), Factor::W3),
                (|e| e.container_name = "c".repeat(64), Factor::Evidence),
                (|e| e.pod_name = "p".repeat(1 << 20), Factor::Evidence),
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
