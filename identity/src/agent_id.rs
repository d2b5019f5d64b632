//! Agent IDs: the SPIFFE ID a node agent is issued at attestation (docs/architecture.md,
//! "Node attestation").
//!
//! Invariant: an [`AgentId`] is a [`SpiffeIdentity`] (the SPIFFE-ID spec and sworn's rules)
//! whose path is `/sworn/agent/<one or more segments>`: `join/<uuid>` for a join-token agent,
//! `k8s/<cluster>/<node uid>/<pod uid>` for a Kubernetes agent. Its one text form is the ID's
//! URI. This is the only place that rule is written: the server applies it to the client
//! certificate of every agent call and to an entry's `--node`, and the store to what it reads
//! back.
//!
//! [`str::parse`] checks the form only; where the trust domain is known (the server's own),
//! [`AgentId::parse_in`] or [`AgentId::check_trust_domain`] also require it.

use std::fmt;
use std::str::FromStr;

use spiffe::TrustDomain;

use crate::id::{IdError, SpiffeIdentity};

/// The path prefix of every agent ID.
const AGENT_PREFIX: &str = "/sworn/agent/";

/// Why a string or a SPIFFE ID is not an [`AgentId`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AgentIdError {
    /// Not a SPIFFE ID at all.
    #[error("agent id: {0}")]
    Id(#[source] IdError),
    /// A SPIFFE ID, but not under `/sworn/agent/`.
    #[error("{0:?} is not an agent id (spiffe://<trust domain>/sworn/agent/...)")]
    NotAgent(String),
    /// An agent ID of another trust domain.
    #[error("agent id {id:?} is not in trust domain {trust_domain}")]
    ForeignTrustDomain {
        /// The ID.
        id: String,
        /// The trust domain it had to be in.
        trust_domain: String,
    },
}

/// A node agent's SPIFFE ID, `spiffe://<td>/sworn/agent/...`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgentId(SpiffeIdentity);

impl AgentId {
    /// The agent ID `spiffe://<td>/sworn/agent/<segments...>`; `segments` must not be empty.
    pub fn new(trust_domain: &TrustDomain, segments: &[&str]) -> Result<Self, AgentIdError> {
        if segments.is_empty() {
            return Err(AgentIdError::NotAgent(format!(
                "{}{}",
                trust_domain.id_string(),
                AGENT_PREFIX.trim_end_matches('/')
            )));
        }
        SpiffeIdentity::sworn_agent(trust_domain, segments)
            .map(AgentId)
            .map_err(AgentIdError::Id)
    }

    /// A SPIFFE ID (one read from a certificate, say) as an agent ID.
    pub fn from_spiffe_id(id: SpiffeIdentity) -> Result<Self, AgentIdError> {
        let under_agent = id
            .path()
            .strip_prefix(AGENT_PREFIX)
            .is_some_and(|rest| !rest.is_empty());
        if under_agent {
            Ok(AgentId(id))
        } else {
            Err(AgentIdError::NotAgent(id.to_string()))
        }
    }

    /// Parses an agent ID that must be in `trust_domain`.
    pub fn parse_in(s: &str, trust_domain: &TrustDomain) -> Result<Self, AgentIdError> {
        s.parse::<AgentId>()?.check_trust_domain(trust_domain)
    }

    /// This ID, if it is in `trust_domain`.
    pub fn check_trust_domain(self, trust_domain: &TrustDomain) -> Result<Self, AgentIdError> {
        if self.0.trust_domain() == trust_domain {
            Ok(self)
        } else {
            Err(AgentIdError::ForeignTrustDomain {
                id: self.to_string(),
                trust_domain: trust_domain.to_string(),
            })
        }
    }

    /// The URI form, `spiffe://<td>/sworn/agent/...`.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The ID as a SPIFFE ID (to mint the agent's SVID).
    pub fn spiffe_identity(&self) -> &SpiffeIdentity {
        &self.0
    }

    /// Its trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        self.0.trust_domain()
    }
}

impl FromStr for AgentId {
    type Err = AgentIdError;

    /// Accepts an agent ID of any trust domain (see [`AgentId::parse_in`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let id = SpiffeIdentity::parse_including_reserved(s).map_err(AgentIdError::Id)?;
        Self::from_spiffe_id(id)
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgentId({self})")
    }
}

impl AsRef<str> for AgentId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl serde::Serialize for AgentId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for AgentId {
    /// The same rule as [`str::parse`]: the form, in any trust domain.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn td() -> TrustDomain {
        TrustDomain::new("example.org").unwrap()
    }

    #[test]
    fn agent_ids_are_spiffe_ids_under_sworn_agent() {
        for ok in [
            "spiffe://example.org/sworn/agent/join/0c4a1a6e-3b5d-4f7e-9a2b-1c2d3e4f5a6b",
            "spiffe://example.org/sworn/agent/k8s/c1/node-uid/pod-uid",
            "spiffe://other.org/sworn/agent/x",
        ] {
            let id: AgentId = ok.parse().unwrap();
            assert_eq!(id.to_string(), ok);
            assert_eq!(id.as_str().parse::<AgentId>().unwrap(), id);
        }
        for bad in [
            "spiffe://example.org/sworn/server",
            "spiffe://example.org/sworn/agent",
            "spiffe://example.org/sworn/agentx/y",
            "spiffe://example.org/Sworn/agent/x",
            "spiffe://example.org/web",
            "spiffe://example.org/x/sworn/agent/y",
        ] {
            assert_eq!(
                bad.parse::<AgentId>(),
                Err(AgentIdError::NotAgent(bad.into())),
                "{bad}"
            );
        }
        for bad in [
            "",
            "not-an-id",
            "SPIFFE://example.org/sworn/agent/x",
            "spiffe://Example.org/sworn/agent/x",
            "spiffe://example.org/sworn/agent/x/",
            "spiffe://example.org/sworn/agent/../x",
        ] {
            assert!(
                matches!(bad.parse::<AgentId>(), Err(AgentIdError::Id(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_trust_domain_is_checked_where_it_is_known() {
        let ours = "spiffe://example.org/sworn/agent/join/n1";
        assert_eq!(AgentId::parse_in(ours, &td()).unwrap().as_str(), ours);
        let theirs = "spiffe://other.org/sworn/agent/join/n1";
        let err = AgentId::parse_in(theirs, &td()).unwrap_err();
        assert_eq!(
            err,
            AgentIdError::ForeignTrustDomain {
                id: theirs.into(),
                trust_domain: "example.org".into()
            }
        );
        assert!(err.to_string().contains("example.org"), "{err}");
    }

    #[test]
    fn built_ids_are_agent_ids() {
        let id = AgentId::new(&td(), &["k8s", "c1", "n", "p"]).unwrap();
        assert_eq!(id.as_str(), "spiffe://example.org/sworn/agent/k8s/c1/n/p");
        assert_eq!(id.trust_domain(), &td());
        assert!(id.spiffe_identity().is_reserved());
        assert!(matches!(
            AgentId::new(&td(), &[]),
            Err(AgentIdError::NotAgent(_))
        ));
        assert!(matches!(
            AgentId::new(&td(), &["a/b"]),
            Err(AgentIdError::Id(_))
        ));
    }

    #[test]
    fn serde_is_the_uri() {
        let text = "spiffe://example.org/sworn/agent/join/n1";
        let id: AgentId = text.parse().unwrap();
        assert_eq!(serde_json::to_value(&id).unwrap(), serde_json::json!(text));
        assert_eq!(
            serde_json::from_value::<AgentId>(serde_json::json!(text)).unwrap(),
            id
        );
        assert!(
            serde_json::from_value::<AgentId>(serde_json::json!("spiffe://example.org/web"))
                .is_err()
        );
    }
}
