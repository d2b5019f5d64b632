//! The closed set of attestation factors (docs/architecture.md, "Factors").
//!
//! Every denial, on the agent and on the server, names exactly one [`Factor`]: the first
//! check that failed. The audit log, the agent's `sworn::audit` log lines and the metrics use
//! [`Factor::as_str`], so the strings are part of the operator-facing contract and never
//! change meaning.

use std::fmt;
use std::str::FromStr;

/// One attestation factor or decision step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Factor {
    /// Node: the agent's credential (Kubernetes: its projected token, reviewed for the agent
    /// audience, used once; join token agents: the join token, used once).
    N1,
    /// Node: the agent's service account is allowed.
    N2,
    /// Node: the token's bound pod is live and is the one named.
    N3,
    /// Node: the node exists and is the pod's node.
    N4,
    /// Node: the agent is not banned.
    N5,
    /// Workload (kernel): which process calls, from its cgroup.
    W1,
    /// Workload (orchestrator): the pod and the calling container, from the node's watch.
    W2,
    /// Workload (possession): the pod's projected token for the workload audience.
    W3,
    /// Workload: the server's re-verification (TokenReview and its own quorum read of the pod).
    W4,
    /// Workload: policy (the default identity, or an entry's selectors and template).
    W5,
    /// The Kubernetes cluster named by an agent is configured on the server.
    Cluster,
    /// The evidence fits the way the agent attested (unix evidence from join-token agents,
    /// Kubernetes evidence from Kubernetes agents).
    AgentMethod,
    /// The evidence is well formed (and, on a unix agent, the caller could be inspected).
    Evidence,
    /// The entry exists and is usable.
    Entry,
    /// The entry is scoped to the asking agent.
    EntryScope,
    /// The CSR and the certificate the CA would build from it.
    Csr,
    /// Unix policy: the entry's selectors hold for the caller's facts.
    Policy,
    /// The Kubernetes API answered. Named by `Unavailable` outcomes (transport errors, 5xx,
    /// 429, the server's own RBAC refusals, deadlines), never by a denial.
    Api,
    /// The datastore answered (outages are `Unavailable`, never a denial).
    Store,
}

impl Factor {
    /// Every factor, in the order of the table in docs/architecture.md.
    pub const ALL: [Factor; 19] = [
        Factor::N1,
        Factor::N2,
        Factor::N3,
        Factor::N4,
        Factor::N5,
        Factor::W1,
        Factor::W2,
        Factor::W3,
        Factor::W4,
        Factor::W5,
        Factor::Cluster,
        Factor::AgentMethod,
        Factor::Evidence,
        Factor::Entry,
        Factor::EntryScope,
        Factor::Csr,
        Factor::Policy,
        Factor::Api,
        Factor::Store,
    ];

    /// The audit string.
    pub const fn as_str(self) -> &'static str {
        match self {
            Factor::N1 => "N1",
            Factor::N2 => "N2",
            Factor::N3 => "N3",
            Factor::N4 => "N4",
            Factor::N5 => "N5",
            Factor::W1 => "W1",
            Factor::W2 => "W2",
            Factor::W3 => "W3",
            Factor::W4 => "W4",
            Factor::W5 => "W5",
            Factor::Cluster => "cluster",
            Factor::AgentMethod => "agent_method",
            Factor::Evidence => "evidence",
            Factor::Entry => "entry",
            Factor::EntryScope => "entry_scope",
            Factor::Csr => "csr",
            Factor::Policy => "policy",
            Factor::Api => "api",
            Factor::Store => "store",
        }
    }
}

impl fmt::Display for Factor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the factors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown factor {0:?}")]
pub struct UnknownFactor(pub String);

impl FromStr for Factor {
    type Err = UnknownFactor;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Factor::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| UnknownFactor(s.to_owned()))
    }
}

impl serde::Serialize for Factor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_factor_round_trips_through_its_audit_string() {
        let mut seen = std::collections::BTreeSet::new();
        for f in Factor::ALL {
            assert_eq!(f.as_str().parse::<Factor>(), Ok(f));
            assert!(seen.insert(f.as_str()), "{f} twice");
        }
        assert!("join_token".parse::<Factor>().is_err());
        assert!("w1".parse::<Factor>().is_err());
    }
}
