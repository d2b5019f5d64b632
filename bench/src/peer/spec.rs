//! What both systems are set up from: which system, where its binaries are, the trust
//! domain, the per-instance options, and the entries a scenario asks for (scoped as the
//! `peer` module docs say).

use std::path::PathBuf;

use serde::Serialize;

/// The trust domain both systems serve.
pub const TRUST_DOMAIN: &str = "bench.test";

/// Which system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// This project.
    Sworn,
    /// The peer, SPIRE.
    Spire,
}

impl Kind {
    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Sworn => "sworn",
            Kind::Spire => "spire",
        }
    }
}

/// The executable every local entry also requires (`unix:path` + `unix:sha256`).
#[derive(Debug, Clone)]
pub struct ExeSelectors {
    /// Absolute path of the workload executable.
    pub path: String,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
}

/// Per-instance options; the default is uid-only attestation (SPIRE's default).
#[derive(Debug, Clone, Default)]
pub struct PeerOptions {
    /// `Some`: every entry for a real agent also requires this executable's path and digest,
    /// and SPIRE's unix attestor runs with `discover_workload_path = true` (it is off by
    /// default, and without it SPIRE derives neither selector). `None`: `unix:uid` only.
    pub exe: Option<ExeSelectors>,
}

/// Who an entry is for.
#[derive(Debug, Clone, Copy)]
pub struct EntrySpec {
    /// The workload's uid (selector `unix:uid:<uid>`, ID `spiffe://bench.test/w/<uid>`).
    pub uid: u32,
    /// X509-SVID TTL; `None` = the server default (1 h).
    pub ttl_seconds: Option<u32>,
    /// `None`: a real agent (see `agent`); `Some(k)`: a fake agent `k` that never connects.
    pub fake_node: Option<u32>,
    /// Which real agent of the instance (0 = the first), when `fake_node` is `None`.
    pub agent: usize,
}

impl EntrySpec {
    /// An entry for `uid` on the first agent with the default TTL.
    pub fn local(uid: u32) -> Self {
        Self {
            uid,
            ttl_seconds: None,
            fake_node: None,
            agent: 0,
        }
    }

    /// The SPIFFE ID it names.
    pub fn spiffe_id(&self) -> String {
        match self.fake_node {
            None => format!("spiffe://{TRUST_DOMAIN}/w/{}", self.uid),
            Some(k) => format!("spiffe://{TRUST_DOMAIN}/f/{k}/{}", self.uid),
        }
    }
}

/// Paths of the binaries of both systems.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `sworn-server`.
    pub sworn_server: PathBuf,
    /// `sworn-agent`.
    pub sworn_agent: PathBuf,
    /// `sworn-dev` (the Kubernetes dev environment, for the k8s scenario).
    pub sworn_dev: PathBuf,
    /// `spire-server`, if built.
    pub spire_server: Option<PathBuf>,
    /// `spire-agent`, if built.
    pub spire_agent: Option<PathBuf>,
}
