//! The agent's files in `data_dir`: its key and SVID (0600, atomic writes) and the last
//! trust bundle, so a join-token agent restarts without a new token while its SVID is valid.

use std::path::{Path, PathBuf};

use super::svid::NodeSvid;
use crate::storage::{self, StorageError};

const SVID_FILE: &str = "agent_svid.pem";
const KEY_FILE: &str = "agent_key.pem";
const BUNDLE_FILE: &str = "bundle.pem";

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
