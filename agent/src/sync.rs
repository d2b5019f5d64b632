//! The server → agent Sync stream (docs/architecture.md, "The agent's SVID cache").
//!
//! Every message is the complete state: trust bundle and the entries that may apply to this
//! agent. It is parsed once into a [`SyncState`] and published on a `watch`, which the cache
//! and every open Workload API stream follow, so a deleted entry is redacted as soon as the
//! message arrives. The stream is reopened with backoff when it breaks, and on the new channel
//! after the agent SVID is renewed. While it is down the last state stays in force.

use std::sync::Arc;
use std::time::Duration;

use sworn_identity::EntryId;
use sworn_identity::selector::Selector;
use sworn_proto::agent::{Entry, SyncRequest, SyncResponse};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::cache::SvidCache;
use crate::node::NodeStore;
use crate::status::Status;
use crate::upstream::Upstream;

/// An entry that may apply to a workload on this agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncedEntry {
    /// The entry ID, half of the SVID cache's key (the other is the workload scope).
    pub id: EntryId,
    /// All must be among the caller's selectors.
    pub selectors: Vec<Selector>,
}

/// The server's complete state for this agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncState {
    /// Trust bundle roots, DER.
    pub bundle: Vec<Vec<u8>>,
    /// Entries scoped to this agent or to all agents.
    pub entries: Vec<SyncedEntry>,
    /// The server's revision counter.
    pub revision: u64,
}

impl SyncState {
    /// Parses a message. Entries scoped to another agent, or with an ID or a selector this agent
    /// does not understand, are left out (and logged): they can never match here.
    pub fn from_message(msg: SyncResponse, agent_id: &str) -> Self {
        let entries = msg
            .entries
            .into_iter()
            .filter_map(|e| parse_entry(e, agent_id))
            .collect();
        Self {
            bundle: msg.bundle,
            entries,
            revision: msg.revision,
        }
    }
}

fn parse_entry(entry: Entry, agent_id: &str) -> Option<SyncedEntry> {
    if !entry.node.is_empty() && entry.node != agent_id {
        return None;
    }
    let mut selectors = Vec::with_capacity(entry.selectors.len());
    for s in &entry.selectors {
        match s.parse::<Selector>() {
            Ok(sel) => selectors.push(sel),
            Err(error) => {
                warn!(entry_id = %entry.id, %error, "ignoring an entry with an unparsable selector");
                return None;
            }
        }
    }
    // An entry without selectors would match every caller; the server never sends one.
    if selectors.is_empty() {
        warn!(entry_id = %entry.id, "ignoring an entry without selectors");
        return None;
    }
    let id = match entry.id.parse::<EntryId>() {
        Ok(id) => id,
        Err(error) => {
            warn!(entry_id = %entry.id, %error, "ignoring an entry whose id is not an entry id");
            return None;
        }
    };
    Some(SyncedEntry { id, selectors })
}

/// Follows the Sync stream and publishes its state.
#[derive(Debug)]
pub(crate) struct SyncTask {
    pub upstream: Arc<Upstream>,
    pub store: NodeStore,
    pub status: Arc<Status>,
    pub state: watch::Sender<Option<Arc<SyncState>>>,
    pub cache: Arc<SvidCache>,
}

impl SyncTask {
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
        let mut channels = self.upstream.subscribe();
        loop {
            let link = tokio::select! {
                () = shutdown.cancelled() => return,
                l = self.upstream.wait_client() => l,
            };
            let (mut client, generation) = (link.client, link.generation);
            channels.borrow_and_update();
            let result = tokio::select! {
                () = shutdown.cancelled() => return,
                r = async {
                    let mut stream = client.sync(SyncRequest {}).await?.into_inner();
                    while let Some(msg) = stream.message().await? {
                        self.publish(msg);
                        backoff.reset();
                    }
                    Ok::<(), tonic::Status>(())
                } => r,
                _ = channels.changed() => {
                    debug!("agent svid renewed; reopening the sync stream on the new channel");
                    continue;
                }
            };
            match result {
                Ok(()) => info!("the server closed the sync stream; reopening"),
                Err(status) => {
                    if matches!(
                        status.code(),
                        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
                    ) {
                        self.upstream.report_refused(generation);
                    }
                    warn!(code = ?status.code(), message = status.message(), "sync stream failed");
                }
            }
            let delay = backoff.next_delay();
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    fn publish(&self, msg: SyncResponse) {
        let agent_id = self
            .status
            .get()
            .agent_id
            .map(|id| id.to_string())
            .unwrap_or_default();
        let state = SyncState::from_message(msg, &agent_id);
        if state.bundle.is_empty() {
            warn!(
                revision = state.revision,
                "ignoring a sync message without a trust bundle"
            );
            return;
        }
        if let Err(error) = self.upstream.verifier().set_roots(&state.bundle) {
            warn!(%error, "the synced trust bundle is unusable for tls; keeping the previous roots");
        }
        let changed_bundle = self
            .state
            .borrow()
            .as_ref()
            .is_none_or(|s| s.bundle != state.bundle);
        if changed_bundle && let Err(error) = self.store.save_bundle(&state.bundle) {
            warn!(%error, "cannot persist the trust bundle");
        }
        debug!(
            revision = state.revision,
            entries = state.entries.len(),
            "sync state received"
        );
        let state = Arc::new(state);
        // Publish first, then prune: streams woken by the pruning already see the new entries
        // and never re-mint a deleted one.
        self.state.send_replace(Some(state.clone()));
        let live: std::collections::HashSet<EntryId> = state.entries.iter().map(|e| e.id).collect();
        self.cache.retain(&live);
        self.status.update(|r| r.synced = true);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const AGENT: &str = "spiffe://example.org/sworn/agent/join/a";
    const ID: &str = "0c4a1a6e-3b5d-4f7e-9a2b-1c2d3e4f5a6b";

    fn entry(id: &str) -> Entry {
        Entry {
            id: id.into(),
            selectors: vec!["unix:uid:1000".into()],
            node: AGENT.into(),
            ..Default::default()
        }
    }

    #[test]
    fn entries_whose_id_is_not_an_entry_id_are_left_out() {
        let msg = SyncResponse {
            bundle: vec![vec![1]],
            entries: ["", "not-a-uuid", &ID.to_uppercase(), ID]
                .into_iter()
                .map(entry)
                .collect(),
            revision: 7,
        };
        let state = SyncState::from_message(msg, AGENT);
        let ids: Vec<String> = state.entries.iter().map(|e| e.id.to_string()).collect();
        assert_eq!(ids, [ID], "only the entry in the one encoding is kept");
        assert_eq!(state.revision, 7);
    }
}
