//! The agent's own X509-SVID, checked against the agent ID it names.

use std::time::SystemTime;

use sworn_identity::AgentId;
use zeroize::Zeroizing;

use crate::cert;

/// The agent's own X509-SVID and key.
pub struct NodeSvid {
    /// The agent's SPIFFE ID (the leaf's URI SAN).
    pub agent_id: AgentId,
    /// DER chain, leaf first.
    pub chain: Vec<Vec<u8>>,
    /// PKCS#8 DER private key.
    pub key: Zeroizing<Vec<u8>>,
    /// Leaf `notBefore`.
    pub not_before: SystemTime,
    /// Leaf `notAfter`.
    pub not_after: SystemTime,
}

impl std::fmt::Debug for NodeSvid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeSvid")
            .field("agent_id", &self.agent_id)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl NodeSvid {
    /// Builds the SVID from a server answer, checking that `agent_id` is an agent ID and the
    /// leaf names it.
    pub fn from_parts(
        agent_id: &str,
        chain: Vec<Vec<u8>>,
        key: Zeroizing<Vec<u8>>,
    ) -> Result<Self, String> {
        let agent_id = agent_id.parse::<AgentId>().map_err(|e| e.to_string())?;
        let leaf = chain.first().ok_or("empty certificate chain")?;
        match crate::tls::single_uri_san(leaf) {
            Some(uri) if uri == agent_id.as_str() => {}
            _ => return Err("the leaf certificate does not name the agent id".into()),
        }
        let (not_before, not_after) = cert::validity(leaf).ok_or("unparsable leaf certificate")?;
        Ok(Self {
            agent_id,
            chain,
            key,
            not_before,
            not_after,
        })
    }

    /// Valid now.
    pub fn is_valid(&self) -> bool {
        let now = SystemTime::now();
        self.not_before <= now && now < self.not_after
    }
}
