//! The server → agent Sync stream (docs/architecture.md, "The agent's SVID cache").
//!
//! The state is the trust bundle and the entries that may apply to this agent. The server
//! sends it whole (`full`) when the stream opens without a usable revision, and afterwards
//! deltas: the entries created since, the IDs deleted since, and the bundle when it changed
//! (docs/architecture.md, "Sync"). Each message is applied to a [`SyncState`] published on a
//! `watch`, which the cache and every open Workload API stream follow, so a deleted entry is
//! redacted as soon as its delta arrives. The stream is reopened with backoff when it breaks,
//! and on the new channel after the agent SVID is renewed, asking for what changed after the
//! last revision applied. While it is down the last state stays in force.

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

/// The server's state for this agent, as of `revision`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncState {
    /// Trust bundle roots, DER.
    pub bundle: Vec<Vec<u8>>,
    /// Entries scoped to this agent or to all agents.
    pub entries: Vec<SyncedEntry>,
    /// The server's revision counter.
    pub revision: u64,
}

/// Where the state the agent holds came from: the server's epoch and revision, sent back when
/// the stream is reopened.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Applied {
    epoch: String,
    revision: u64,
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

    /// This state with the delta `msg` applied: its deleted entries removed, its new entries
    /// added (one with the ID of an entry held replaces it), its bundle if it carries one.
    /// Entries are left out as [`SyncState::from_message`] leaves them out.
    pub fn apply_delta(&self, msg: SyncResponse, agent_id: &str) -> Self {
        let removed: std::collections::HashSet<&str> =
            msg.removed_entry_ids.iter().map(String::as_str).collect();
        let upserted: Vec<SyncedEntry> = msg
            .entries
            .into_iter()
            .filter_map(|e| parse_entry(e, agent_id))
            .collect();
        let mut entries: Vec<SyncedEntry> = self
            .entries
            .iter()
            .filter(|e| {
                !removed.contains(e.id.to_string().as_str())
                    && !upserted.iter().any(|u| u.id == e.id)
            })
            .cloned()
            .collect();
        entries.extend(upserted);
        Self {
            bundle: if msg.bundle.is_empty() {
                self.bundle.clone()
            } else {
                msg.bundle
            },
            entries,
            revision: msg.revision,
        }
    }
}

/// Whether `msg` is a complete state. A server without deltas sends no epoch, and only
/// complete states.
fn is_full(msg: &SyncResponse) -> bool {
    msg.full || msg.epoch.is_empty()
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
        // Kept across reopenings, so a reopened stream starts with a delta.
        let mut applied: Option<Applied> = None;
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
                    let request = SyncRequest {
                        deltas: true,
                        epoch: applied.as_ref().map(|a| a.epoch.clone()).unwrap_or_default(),
                        revision: applied.as_ref().map_or(0, |a| a.revision),
                    };
                    let mut stream = client.sync(request).await?.into_inner();
                    while let Some(msg) = stream.message().await? {
                        if !self.publish(msg, &mut applied) {
                            // Reopen asking for the complete state.
                            applied = None;
                            break;
                        }
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

    /// Applies `msg` and publishes the new state; false when it cannot be applied (a delta
    /// for a state this agent does not hold), and the stream must start over.
    fn publish(&self, msg: SyncResponse, applied: &mut Option<Applied>) -> bool {
        let agent_id = self
            .status
            .get()
            .agent_id
            .map(|id| id.to_string())
            .unwrap_or_default();
        let epoch = msg.epoch.clone();
        let full = is_full(&msg);
        let state = if full {
            SyncState::from_message(msg, &agent_id)
        } else {
            let current = self.state.borrow().clone();
            match current {
                Some(current) if applied.as_ref().is_some_and(|a| a.epoch == epoch) => {
                    current.apply_delta(msg, &agent_id)
                }
                _ => {
                    warn!("a sync delta for a state this agent does not hold; starting over");
                    return false;
                }
            }
        };
        if state.bundle.is_empty() {
            warn!(
                revision = state.revision,
                "ignoring a sync message without a trust bundle"
            );
            return true;
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
            full,
            entries = state.entries.len(),
            "sync state received"
        );
        *applied = Some(Applied {
            epoch,
            revision: state.revision,
        });
        let state = Arc::new(state);
        // Publish first, then prune: streams woken by the pruning already see the new entries
        // and never re-mint a deleted one.
        self.state.send_replace(Some(state.clone()));
        let live: std::collections::HashSet<EntryId> = state.entries.iter().map(|e| e.id).collect();
        self.cache.retain(&live);
        self.status.update(|r| r.synced = true);
        true
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
            full: true,
            epoch: "e".into(),
            ..Default::default()
        };
        let state = SyncState::from_message(msg, AGENT);
        let ids: Vec<String> = state.entries.iter().map(|e| e.id.to_string()).collect();
        assert_eq!(ids, [ID], "only the entry in the one encoding is kept");
        assert_eq!(state.revision, 7);
    }

    #[test]
    fn a_delta_removes_deleted_entries_adds_new_ones_and_keeps_the_bundle_it_omits() {
        const OTHER: &str = "1d5b2b7f-4c6e-4a8f-8b3c-2d3e4f5a6b7c";
        const NEW: &str = "2e6c3c80-5d7f-4b90-9c4d-3e4f5a6b7c8d";
        let state = SyncState::from_message(
            SyncResponse {
                bundle: vec![vec![1]],
                entries: vec![entry(ID), entry(OTHER)],
                revision: 7,
                full: true,
                epoch: "e".into(),
                ..Default::default()
            },
            AGENT,
        );
        let delta = SyncResponse {
            entries: vec![entry(NEW)],
            removed_entry_ids: vec![ID.into(), "never-held".into()],
            revision: 9,
            epoch: "e".into(),
            ..Default::default()
        };
        assert!(!is_full(&delta));
        let next = state.apply_delta(delta, AGENT);
        let ids: Vec<String> = next.entries.iter().map(|e| e.id.to_string()).collect();
        assert_eq!(ids, [OTHER, NEW]);
        assert_eq!(next.bundle, [vec![1]], "a delta without a bundle keeps it");
        assert_eq!(next.revision, 9);
        let rotated = next.apply_delta(
            SyncResponse {
                bundle: vec![vec![1], vec![2]],
                revision: 10,
                epoch: "e".into(),
                ..Default::default()
            },
            AGENT,
        );
        assert_eq!(rotated.bundle, [vec![1], vec![2]]);
        assert_eq!(rotated.entries, next.entries);
    }

    #[test]
    fn a_message_without_an_epoch_is_a_complete_state() {
        assert!(is_full(&SyncResponse::default()));
    }
}
