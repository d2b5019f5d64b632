//! Node attestation requests as the server reads them (docs/architecture.md, "Bounded
//! input"): `Attest` is the one call made before the caller is known, so every field is
//! bounded here, before the server logs, audits or looks anything up by it.

use std::fmt;

use sworn_proto::agent as pb;

use crate::evidence_bounds::{
    EvidenceError, MAX_CLUSTER_BYTES, MAX_CSR_BYTES, MAX_JOIN_TOKEN_BYTES, MAX_TOKEN_BYTES,
    Problem, check_len,
};
use crate::factor::Factor;
use crate::selector::is_dns_label;

/// A Kubernetes agent's attestation: a cluster name of the server's form and a bounded token.
#[derive(Clone, PartialEq, Eq)]
pub struct K8sNodeEvidence {
    /// The cluster the agent names: a DNS-1123 label (it may still be unknown).
    pub cluster: String,
    /// The agent pod's projected token. Never logged.
    pub token: String,
}

impl fmt::Debug for K8sNodeEvidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("K8sNodeEvidence")
            .field("cluster", &self.cluster)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl K8sNodeEvidence {
    /// Parses the request: the cluster (factor `cluster`), then the token (`N1`).
    pub fn from_proto(req: &pb::K8sAttestation) -> Result<Self, EvidenceError> {
        check_len(
            Factor::Cluster,
            "cluster",
            req.cluster.len(),
            MAX_CLUSTER_BYTES,
            true,
        )?;
        if !is_dns_label(&req.cluster) {
            return Err(EvidenceError::new(
                Factor::Cluster,
                "cluster",
                Problem::Malformed("not a DNS-1123 label"),
            ));
        }
        check_len(Factor::N1, "token", req.token.len(), MAX_TOKEN_BYTES, true)?;
        Ok(K8sNodeEvidence {
            cluster: req.cluster.clone(),
            token: req.token.clone(),
        })
    }
}

/// A join token as sent, bounded (`N1`). Never logged; the server keeps only its hash.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinTokenEvidence(String);

impl fmt::Debug for JoinTokenEvidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JoinTokenEvidence(<redacted>)")
    }
}

impl JoinTokenEvidence {
    /// Parses the request's token.
    pub fn from_proto(req: &pb::JoinTokenAttestation) -> Result<Self, EvidenceError> {
        check_len(
            Factor::N1,
            "join_token",
            req.token.len(),
            MAX_JOIN_TOKEN_BYTES,
            true,
        )?;
        Ok(JoinTokenEvidence(req.token.clone()))
    }

    /// The token text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A CSR's size (`csr`), before it is parsed: [`MAX_CSR_BYTES`].
pub fn check_csr(csr: &[u8]) -> Result<(), EvidenceError> {
    check_len(Factor::Csr, "csr", csr.len(), MAX_CSR_BYTES, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_attest_field_is_bounded_and_names_itself() {
        let ok = pb::K8sAttestation {
            cluster: "dev".into(),
            token: "a.b.c".into(),
        };
        assert_eq!(K8sNodeEvidence::from_proto(&ok).unwrap().cluster, "dev");
        let huge = pb::K8sAttestation {
            cluster: "c".repeat(3 << 20),
            ..ok.clone()
        };
        let e = K8sNodeEvidence::from_proto(&huge).unwrap_err();
        assert_eq!((e.factor(), e.field), (Factor::Cluster, "cluster"));
        let odd = pb::K8sAttestation {
            cluster: "Dev\n".into(),
            ..ok.clone()
        };
        assert_eq!(
            K8sNodeEvidence::from_proto(&odd).unwrap_err().problem,
            Problem::Malformed("not a DNS-1123 label")
        );
        let long_token = pb::K8sAttestation {
            token: "t".repeat(MAX_TOKEN_BYTES + 1),
            ..ok
        };
        assert_eq!(
            K8sNodeEvidence::from_proto(&long_token).unwrap_err().field,
            "token"
        );
        let join = pb::JoinTokenAttestation {
            token: "j".repeat(MAX_JOIN_TOKEN_BYTES + 1),
        };
        assert_eq!(
            JoinTokenEvidence::from_proto(&join).unwrap_err().factor(),
            Factor::N1
        );
        assert_eq!(
            check_csr(&vec![0; MAX_CSR_BYTES + 1]).unwrap_err().factor(),
            Factor::Csr
        );
        assert!(check_csr(&[]).is_err());
    }

    #[test]
    fn debug_never_shows_a_token() {
        let k = K8sNodeEvidence {
            cluster: "dev".into(),
            token: "secret-claims".into(),
        };
        assert!(!format!("{k:?}").contains("secret"));
        let j = JoinTokenEvidence("secret-join".into());
        assert!(!format!("{j:?}").contains("secret"));
    }
}
