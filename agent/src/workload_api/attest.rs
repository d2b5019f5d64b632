//! Unix workload attestation (docs/architecture.md, "Factors": `evidence`, `policy`): the
//! caller's kernel facts become selectors and the evidence sent with each mint, with the
//! function the server matches with (`sworn_identity::unix::UnixFacts`).
//!
//! The facts come from one guarded inspection of the caller (sworn-caller's `unix_facts`), so
//! they describe the process that connected. The guard is checked again right before each
//! answer ([`Attested::recheck`]), after every read and every mint.

use std::collections::BTreeSet;
use std::sync::Arc;

use sworn_caller::{Caller, CallerError, CallerInfo};
use sworn_identity::Grant;
use sworn_identity::selector::Selector;
use sworn_identity::unix::UnixFacts;
use sworn_proto::agent::UnixEvidence;

use crate::sync::SyncState;

/// Why a caller was refused. The client only ever sees "no identity issued".
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The connection carries no captured caller (not served through our listener).
    #[error("connection has no caller information")]
    NoCallerInfo,
    /// Capturing the caller at accept failed (the message of its `CallerError`).
    #[error("capturing the caller at accept: {0}")]
    Capture(String),
    /// Inspecting the caller failed (it exited, its pid was reused, its identity changed).
    #[error(transparent)]
    Caller(#[from] CallerError),
    /// The inspection task died.
    #[error("caller inspection task failed")]
    Task,
}

impl Refusal {
    /// The factor that failed: a unix caller that cannot be inspected has no evidence.
    pub fn factor(&self) -> sworn_identity::Factor {
        sworn_identity::Factor::Evidence
    }
}

/// A caller's identity facts.
#[derive(Debug, Clone)]
pub struct Attested {
    caller: Arc<Caller>,
    /// The caller's selectors.
    pub selectors: BTreeSet<Selector>,
    /// What the server re-verifies.
    pub evidence: UnixEvidence,
    /// Kubernetes mode: what W1–W3 established (then `evidence` is unused).
    pub k8s: Option<crate::k8s::K8sFacts>,
}

impl Attested {
    /// A Kubernetes caller that passed W1–W3.
    pub fn kubernetes(caller: Arc<Caller>, facts: crate::k8s::K8sFacts) -> Self {
        Attested {
            caller,
            selectors: facts.selectors.clone(),
            evidence: UnixEvidence::default(),
            k8s: Some(facts),
        }
    }

    /// The caller's uid.
    pub fn uid(&self) -> u32 {
        self.caller.uid()
    }

    /// The caller's pid.
    pub fn pid(&self) -> u32 {
        self.caller.pid()
    }

    /// The factor of the kernel's view of this caller: `W1` for a pod, `evidence` for a unix
    /// caller.
    pub fn kernel_factor(&self) -> sworn_identity::Factor {
        match self.k8s {
            Some(_) => sworn_identity::Factor::W1,
            None => sworn_identity::Factor::Evidence,
        }
    }

    /// The PID-reuse guard again: the process is alive and the one captured at accept.
    pub fn recheck(&self) -> Result<(), Refusal> {
        self.caller.verify_unchanged().map_err(Refusal::Caller)
    }

    /// IDs of the entries in `state` whose selectors are all among the caller's.
    pub fn entitled(&self, state: &SyncState) -> Vec<Grant> {
        state
            .entries
            .iter()
            .filter(|e| e.selectors.iter().all(|s| self.selectors.contains(s)))
            .map(|e| Grant::Entry(e.id))
            .collect()
    }
}

/// The captured caller of a request, if any.
pub fn caller_of<T>(request: &tonic::Request<T>) -> Result<Arc<Caller>, Refusal> {
    let info = CallerInfo::from_request(request).ok_or(Refusal::NoCallerInfo)?;
    match info.caller() {
        Ok(c) => Ok(c.clone()),
        Err(e) => Err(Refusal::Capture(e.to_string())),
    }
}

/// Inspects the caller (hashing its executable off the async threads).
pub async fn attest(caller: Arc<Caller>) -> Result<Attested, Refusal> {
    let inspected = caller.clone();
    let facts = tokio::task::spawn_blocking(move || inspected.unix_facts())
        .await
        .map_err(|_| Refusal::Task)?
        .map_err(Refusal::Caller)?;
    let unix = UnixFacts {
        uid: facts.uid,
        gid: facts.gid,
        supplementary_gids: facts.supplementary_gids,
        path: facts
            .exe_path
            .to_str()
            .map(str::to_owned)
            .unwrap_or_default(),
        sha256: facts.exe_sha256.to_hex(),
    };
    Ok(Attested {
        caller,
        selectors: unix.selectors(),
        evidence: unix.into(),
        k8s: None,
    })
}
