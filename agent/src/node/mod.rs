//! Node attestation, client side (DESIGN.md §3.1, §3.3; issue 4 "Agent SVIDs").
//!
//! The agent proves which node it runs on with a one-time join token (unix mode) or its pod's
//! projected service-account token (Kubernetes) and receives an agent SVID for a key it made
//! itself. Invariants:
//! - the key is generated on the agent; key and SVID are persisted in `data_dir` (key 0600,
//!   atomic writes), so a join-token agent restarts without a new token while its SVID is
//!   valid;
//! - the SVID is renewed at half-life with jitter: `RenewAgent` over mTLS for join-token agents
//!   (the token is spent), a full re-attestation with a freshly read token for Kubernetes;
//! - the new SVID reaches the server on a new channel; the old one serves in-flight calls.

mod attest;
mod renewal;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use spiffe::SpiffeId;
use zeroize::Zeroizing;

use crate::cert;
use crate::storage::{self, StorageError};

pub use attest::NodeError;
pub(crate) use renewal::NodeTask;

const SVID_FILE: &str = "agent_svid.pem";
const KEY_FILE: &str = "agent_key.pem";
const BUNDLE_FILE: &str = "bundle.pem";

/// The agent's own X509-SVID and key.
pub struct NodeSvid {
    /// The agent's SPIFFE ID (the leaf's URI SAN).
    pub agent_id: SpiffeId,
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
            .field("agent_id", &self.agent_id.to_string())
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl NodeSvid {
    /// Builds the SVID from a server answer, checking that the leaf names `agent_id`.
    pub fn from_parts(
        agent_id: &str,
        chain: Vec<Vec<u8>>,
        key: Zeroizing<Vec<u8>>,
    ) -> Result<Self, String> {
        let agent_id = SpiffeId::new(agent_id).map_err(|e| format!("agent id: {e}"))?;
        let leaf = chain.first().ok_or("empty certificate chain")?;
        match crate::tls::single_uri_san(leaf) {
            Some(uri) if uri == agent_id.to_string() => {}
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

/// The agent's files in `data_dir`.
#[derive(Debug, Clone)]
pub struct NodeStore {
    dir: PathBuf,
}

impl NodeStore {
    /// The store in `data_dir` (created 0700 on first write).
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.to_owned(),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Loads the persisted SVID, if there is one. A missing file is `Ok(None)`; a corrupt one
    /// is an error (never silently replaced).
    pub fn load_svid(&self) -> Result<Option<NodeSvid>, StorageError> {
        let svid_path = self.dir.join(SVID_FILE);
        if !svid_path.exists() {
            return Ok(None);
        }
        let chain = storage::read_pem_certs(&svid_path)?;
        let key = storage::read_pem_key(&self.dir.join(KEY_FILE))?;
        let agent_id = chain
            .first()
            .and_then(|leaf| crate::tls::single_uri_san(leaf))
            .ok_or_else(|| StorageError::Pem {
                path: svid_path.clone(),
                reason: "leaf has no single URI SAN".into(),
            })?;
        NodeSvid::from_parts(&agent_id, chain, key)
            .map(Some)
            .map_err(|reason| StorageError::Pem {
                path: svid_path,
                reason,
            })
    }

    /// Persists the SVID: key first (0600), then the chain.
    pub fn save_svid(&self, svid: &NodeSvid) -> Result<(), StorageError> {
        storage::ensure_private_dir(&self.dir)?;
        let key_pem = storage::key_to_pem(&svid.key);
        storage::write_atomic(&self.dir.join(KEY_FILE), key_pem.as_bytes(), 0o600)?;
        let chain_pem = storage::certs_to_pem(&svid.chain);
        storage::write_atomic(&self.dir.join(SVID_FILE), chain_pem.as_bytes(), 0o600)
    }

    /// The last bundle the server sent, if any.
    pub fn load_bundle(&self) -> Result<Option<Vec<Vec<u8>>>, StorageError> {
        let path = self.dir.join(BUNDLE_FILE);
        if !path.exists() {
            return Ok(None);
        }
        storage::read_pem_certs(&path).map(Some)
    }

    /// Persists the bundle (public, but kept with the rest at 0600).
    pub fn save_bundle(&self, roots: &[Vec<u8>]) -> Result<(), StorageError> {
        storage::ensure_private_dir(&self.dir)?;
        storage::write_atomic(
            &self.dir.join(BUNDLE_FILE),
            storage::certs_to_pem(roots).as_bytes(),
            0o600,
        )
    }
}
