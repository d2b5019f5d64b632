//! Unix workload attestation (docs/architecture.md, "Factors": `evidence`, `policy`): the
//! caller's kernel facts become selectors and the evidence sent with each mint, with the
//! function the server matches with (`sworn_identity::unix::UnixFacts`).
//!
//! The facts come from one guarded inspection of the caller (sworn-caller's `unix_facts`), so
//! they describe the process that connected. The guard is checked again right before each
//! answer ([`Attested::recheck`]), after every read and every mint. An inspection runs in its
//! uid's [`Turn`], hashes under `max_exe_hash_bytes` and the hash time cap, and reports a
//! `unix:path` only when the path names the running executable in the agent's own mount
//! namespace; a withheld path is audited with factor `evidence`.
//!
//! The executable is hashed only while some synced entry has a `unix:sha256` selector
//! ([`Hash`]). Facts without a digest have no `unix:sha256` selector, so no such entry can
//! match them, here or on the server, which re-derives the selectors from the evidence; a
//! stream attested without one is inspected again, hashing, once such an entry arrives.

use std::collections::BTreeSet;
use std::sync::Arc;

use sworn_caller::{Caller, CallerError, CallerInfo, DigestSource};
use sworn_identity::Grant;
use sworn_identity::selector::Selector;
use sworn_identity::unix::UnixFacts;
use sworn_proto::agent::UnixEvidence;

use super::entitlements::Derived;
use super::inspections::{Inspections, Turn};
use crate::telemetry::Metrics;

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
    /// The inspection did not return within the hash time cap (a read that blocks in the
    /// kernel, which the hashing loop cannot interrupt).
    #[error("hash timeout: the inspection did not finish within {0:?}")]
    Timeout(std::time::Duration),
    /// The agent is shutting down.
    #[error("the agent is shutting down")]
    Closing,
}

impl Refusal {
    /// The factor that failed: a unix caller that cannot be inspected has no evidence.
    pub fn factor(&self) -> sworn_identity::Factor {
        sworn_identity::Factor::Evidence
    }
}

/// Whether an inspection hashes the caller's executable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    /// Some entry has a `unix:sha256` selector.
    Needed,
    /// No entry has one: the facts carry no digest.
    Skipped,
}

/// A caller's identity facts.
#[derive(Debug, Clone)]
pub struct Attested {
    caller: Arc<Caller>,
    /// Whether the facts carry the executable's digest (always, for a pod: none is needed).
    pub hash: Hash,
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
            hash: Hash::Needed,
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

    /// Whose SVIDs this caller is served: its evidence's scope in the cache.
    pub fn scope(&self) -> crate::cache::Scope {
        match &self.k8s {
            Some(facts) => crate::cache::Scope::of(&crate::k8s::svids::evidence(facts)),
            None => crate::cache::Scope::Unix(self.evidence.clone()),
        }
    }

    /// The caller as captured at accept, to inspect it again.
    pub fn caller(&self) -> &Arc<Caller> {
        &self.caller
    }

    /// IDs of the entries of the state `derived` whose selectors are all among the
    /// caller's (through its index, not a scan).
    pub fn entitled(&self, derived: &Derived) -> Vec<Grant> {
        derived.entitled(&self.selectors)
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

/// Grace past the hashing loop's own time cap before the waiting request gives up on a
/// blocking read the loop cannot interrupt.
const INSPECTION_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// Inspects the caller in its uid's turn, hashing its executable off the async threads if
/// `hash` says so.
pub async fn attest(
    caller: Arc<Caller>,
    inspections: &Arc<Inspections>,
    metrics: &Metrics,
    hash: Hash,
) -> Result<Attested, Refusal> {
    let turn: Turn = inspections
        .turn(caller.uid())
        .await
        .ok_or(Refusal::Closing)?;
    let (inspected, shared) = (caller.clone(), inspections.clone());
    let limit = inspections.digests().limits().timeout + INSPECTION_GRACE;
    let task = tokio::task::spawn_blocking(move || {
        // The turn ends with the inspection itself, even after the request gave up on it.
        let _turn = turn;
        let digests = (hash == Hash::Needed).then(|| shared.digests());
        inspected.unix_facts(digests)
    });
    let facts = tokio::time::timeout(limit, task)
        .await
        .map_err(|_| Refusal::Timeout(limit))?
        .map_err(|_| Refusal::Task)?
        .map_err(Refusal::Caller)?;
    tracing::debug!(
        uid = facts.uid,
        pid = caller.pid(),
        handle = ?caller.pid_handle(),
        digest = ?facts.digest_source,
        "unix caller inspected"
    );
    match facts.digest_source {
        Some(DigestSource::Cached) => metrics.exe_digest("hit"),
        Some(DigestSource::Hashed) => metrics.exe_digest("miss"),
        None => {}
    }
    let path = match &facts.exe_path {
        Some(path) => path.to_str().map(str::to_owned).unwrap_or_default(),
        None => {
            tracing::info!(
                target: "sworn::audit",
                factor = %sworn_identity::Factor::Evidence,
                uid = facts.uid,
                pid = caller.pid(),
                exe = %facts.exe_link.display(),
                "unix:path withheld: the path does not name the caller's executable in the agent's mount namespace"
            );
            String::new()
        }
    };
    let unix = UnixFacts {
        uid: facts.uid,
        gid: facts.gid,
        supplementary_gids: facts.supplementary_gids,
        path,
        sha256: facts.exe_sha256.map(|d| d.to_hex()).unwrap_or_default(),
    };
    Ok(Attested {
        caller,
        hash,
        selectors: unix.selectors(),
        evidence: unix.into(),
        k8s: None,
    })
}
