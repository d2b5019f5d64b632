//! Kubernetes node attestation (N1–N5) and workload re-verification (W4).
//!
//! Not built yet: until it is, Kubernetes attestation and Kubernetes
//! evidence are refused (deny by default), and each refusal is audited.

use sworn_proto::agent as pb;
use tonic::Status;

use super::auth::Authenticated;
use super::service::AgentService;
use crate::ca::IssuedSvid;

/// Attests an agent by its projected service-account token.
pub async fn attest(
    svc: &AgentService,
    req: pb::K8sAttestation,
    _csr: Vec<u8>,
) -> Result<pb::AttestResponse, Status> {
    Err(svc
        .refuse(
            "k8s",
            serde_json::json!({"method": "k8s", "cluster": req.cluster, "reason": "kubernetes attestation is not available in this build"}),
        )
        .await)
}

/// Mints for Kubernetes evidence.
pub async fn mint(
    svc: &AgentService,
    agent: &Authenticated,
    _item: pb::MintItem,
    ev: pb::K8sEvidence,
) -> Result<IssuedSvid, String> {
    Err(svc
        .refuse_mint(serde_json::json!({
            "agent_id": agent.record.id, "pod_uid": ev.pod_uid,
            "reason": "kubernetes workload attestation is not available in this build",
        }))
        .await)
}
