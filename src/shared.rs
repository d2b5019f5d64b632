//! The state every service of a running server shares: configuration, store, CA, audit,
//! metrics, clock, Kubernetes clusters and the change signal agents' Sync streams wait on.
//! The admin and agent APIs depend on this module, never on [`crate::server`], which
//! builds it (docs/architecture.md, "Server modules").

use std::sync::Arc;

use tokio::sync::watch;

use crate::audit::Audit;
use crate::ca::CertificateAuthority;
use crate::clock::Clock;
use crate::config::Config;
use crate::store::Store;
use crate::telemetry::Metrics;

/// State every service shares.
#[derive(Debug)]
pub struct Shared {
    /// Validated configuration.
    pub config: Config,
    /// The datastore.
    pub store: Arc<dyn Store>,
    /// The CA.
    pub ca: Arc<CertificateAuthority>,
    /// The audit log.
    pub audit: Audit,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Kubernetes clusters whose agents may attest.
    pub clusters: crate::k8s::Clusters,
    /// Bumped on every change agents must hear about (entries, bans).
    pub changes: watch::Sender<u64>,
    /// Test hook: mints held on purpose. Empty unless a test adds a stall (no config key).
    pub mint_stalls: crate::agentapi::stall::MintStalls,
}

impl Shared {
    /// Tells every agent stream to resend its state.
    pub fn notify_change(&self) {
        self.changes.send_modify(|r| *r += 1);
    }

    /// Now, in unix seconds.
    pub fn now(&self) -> i64 {
        crate::clock::unix_now(self.clock.as_ref())
    }
}
