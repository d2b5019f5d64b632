//! The node task: first attestation, then renewal at half-life with jitter.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::attest::{self, Attested, NodeError};
use super::store::NodeStore;
use super::svid::NodeSvid;
use crate::backoff::Backoff;
use crate::cert;
use crate::config::NodeAttestation;
use crate::status::Status;
use crate::telemetry::Metrics;
use crate::upstream::Upstream;

/// Everything the node task needs.
#[derive(Debug)]
pub(crate) struct NodeTask {
    /// How to attest.
    pub method: NodeAttestation,
    /// Skip server verification for the first `Attest` (no bundle known yet).
    pub insecure_first_attest: bool,
    /// The link to the server.
    pub upstream: Arc<Upstream>,
    /// Files in `data_dir`.
    pub store: NodeStore,
    /// Readiness.
    pub status: Arc<Status>,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

/// The agent SVID's validity, kept after the key went into the TLS config.
#[derive(Debug, Clone, Copy)]
struct Validity {
    not_before: SystemTime,
    not_after: SystemTime,
}

impl NodeTask {
    fn is_join_token(&self) -> bool {
        matches!(self.method, NodeAttestation::JoinToken(_))
    }

    /// Obtains the first identity and installs it. Returns `Err` only for errors an operator
    /// must fix (a refused join token, no token at all, an unusable data directory);
    /// `Ok(false)` means shutdown came first.
    pub async fn start(&self, shutdown: &CancellationToken) -> Result<bool, NodeError> {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let svid = loop {
            match self.obtain().await {
                Ok(svid) => break svid,
                Err(e) if self.is_fatal(&e) => return Err(e),
                Err(e) => {
                    let delay = backoff.next_delay();
                    warn!(error = %e, retry_in = ?delay, "agent attestation failed; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return Ok(false),
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        };
        Ok(self.install(svid, shutdown).await.is_some())
    }

    fn is_fatal(&self, e: &NodeError) -> bool {
        match e {
            NodeError::Refused { .. } => self.is_join_token(),
            NodeError::NoIdentity(_) | NodeError::Storage(_) | NodeError::Key(_) => true,
            NodeError::Unreachable(_)
            | NodeError::Token { .. }
            | NodeError::BadResponse(_)
            | NodeError::Tls(_) => false,
        }
    }

    /// A join-token agent carries on with its persisted SVID while it is valid; otherwise
    /// the agent attests.
    async fn obtain(&self) -> Result<NodeSvid, NodeError> {
        if self.is_join_token()
            && let Some(svid) = self.store.load_svid()?
        {
            if svid.is_valid() {
                info!(agent_id = %svid.agent_id, "using the persisted agent svid");
                return Ok(svid);
            }
            info!(agent_id = %svid.agent_id, "the persisted agent svid has expired");
        }
        let insecure = self.insecure_first_attest && !self.upstream.verifier().has_roots();
        if insecure {
            warn!(
                "DANGER: danger_insecure_bootstrap is set: attesting to a server whose certificate \
                 is NOT verified; anyone on the network path can impersonate it"
            );
        }
        let attested =
            attest::attest(&self.upstream, &self.method, insecure, self.store_dir()).await?;
        self.accept(attested)
    }

    fn store_dir(&self) -> &std::path::Path {
        self.store.dir()
    }

    /// Persists a new SVID and the bundle that came with it, and trusts that bundle.
    fn accept(&self, attested: Attested) -> Result<NodeSvid, NodeError> {
        self.upstream.verifier().set_roots(&attested.bundle)?;
        self.store.save_bundle(&attested.bundle)?;
        self.store.save_svid(&attested.svid)?;
        info!(agent_id = %attested.svid.agent_id, not_after = ?attested.svid.not_after, "agent svid issued");
        Ok(attested.svid)
    }

    /// Connects with `svid` until that works (or it expires, or shutdown).
    async fn install(&self, svid: NodeSvid, shutdown: &CancellationToken) -> Option<Validity> {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        loop {
            match self.upstream.install_identity(&svid.chain, &svid.key).await {
                Ok(()) => {
                    self.status.update(|r| {
                        r.agent_id = Some(svid.agent_id.clone());
                        r.attested = true;
                        r.rejected = false;
                    });
                    // Count the lifetime from now: the server backdates `notBefore`, and a
                    // persisted SVID is renewed halfway through what is left of it.
                    return Some(Validity {
                        not_before: svid.not_before.max(SystemTime::now()),
                        not_after: svid.not_after,
                    });
                }
                Err(e) if svid.is_valid() => {
                    let delay = backoff.next_delay();
                    warn!(error = %e, retry_in = ?delay, "cannot connect with the agent svid; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return None,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
                Err(e) => {
                    warn!(error = %e, "the agent svid expired before the server could be reached");
                    self.status.update(|r| r.attested = false);
                    return None;
                }
            }
        }
    }

    /// Renews forever: at half-life with jitter, or at once when another call was refused.
    pub async fn run(self, shutdown: CancellationToken) {
        let Some(mut validity) = self.current_validity() else {
            return;
        };
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let mut due = cert::renew_at(validity.not_before, validity.not_after);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(cert::until(due)) => {}
                () = self.upstream.refused() => {
                    warn!("the server refused the agent certificate; renewing now");
                }
            }
            let result = if self.is_join_token() {
                attest::renew(&self.upstream).await
            } else {
                attest::attest(&self.upstream, &self.method, false, self.store_dir()).await
            };
            match result.and_then(|a| self.accept(a)) {
                Ok(svid) => {
                    self.metrics.agent_renewals.inc();
                    if let Some(v) = self.install(svid, &shutdown).await {
                        validity = v;
                        backoff.reset();
                        due = cert::renew_at(validity.not_before, validity.not_after);
                        continue;
                    }
                }
                Err(e) if e.is_refusal() && self.is_join_token() => {
                    error!(error = %e, "the server refuses this agent and a join-token agent cannot \
                        re-attest by itself: serving cached svids while they last; generate a new \
                        join token, remove the agent files from data_dir and restart");
                    self.status.update(|r| r.rejected = true);
                }
                Err(e) => warn!(error = %e, "agent svid renewal failed"),
            }
            if SystemTime::now() >= validity.not_after {
                self.status.update(|r| r.attested = false);
            }
            due = SystemTime::now() + backoff.next_delay();
        }
    }

    fn current_validity(&self) -> Option<Validity> {
        match self.store.load_svid() {
            Ok(Some(svid)) => Some(Validity {
                not_before: svid.not_before.max(SystemTime::now()),
                not_after: svid.not_after,
            }),
            _ => None,
        }
    }
}
