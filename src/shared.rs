//! The state every service of a running server shares: configuration, store, CA, audit,
//! metrics, clock, Kubernetes clusters and the change signal agents' Sync streams wait on.
//! The admin and agent APIs depend on this module, never on [`crate::server`], which
//! builds it (docs/architecture.md, "Server modules").

use std::sync::Arc;

use crate::audit::Audit;
use crate::ca::CertificateAuthority;
use crate::clock::Clock;
use crate::config::Config;
use crate::store::Store;
use crate::telemetry::Metrics;

mod changes;

pub use changes::{Affected, Changes, RECHECK, Subscription};

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
    /// The open Sync streams, woken by the changes that concern them (entries, bans). Bundle
    /// changes reach every stream through the CA's own watch.
    pub changes: Changes,
    /// Test hook: mints held on purpose. Empty unless a test adds a stall (no config key).
    pub mint_stalls: crate::agentapi::stall::MintStalls,
}

impl Shared {
    /// Wakes the Sync streams of the agents `affected` names, and only those, and counts them
    /// (`sworn_server_sync_wakeups_total`).
    pub fn notify_change(&self, affected: &Affected) {
        let woken = self.changes.notify(affected);
        self.metrics.sync_wakeups.inc_by(woken);
    }

    /// Now, in unix seconds.
    pub fn now(&self) -> i64 {
        crate::clock::unix_now(self.clock.as_ref())
    }
}
