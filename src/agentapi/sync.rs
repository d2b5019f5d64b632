//! The Sync stream (docs/architecture.md, "Sync"): the bundle and the entries that can apply
//! to the agent, then what changed, until the server stops, the agent is banned (at once: the
//! admin ban path wakes the agent's stream), or the certificate the stream was opened with
//! passes its `notAfter` (docs/architecture.md, "Agent API limits").
//!
//! A stream wakes only for a change that concerns its agent ([`crate::shared::Affected`]), a
//! bundle change, its expiry, and a re-check every [`crate::shared::RECHECK`]. It reads
//! only its agent's entries, since the revision it last read, and sends only when something
//! changed for the agent: a delta to an agent that asked for deltas, else the complete state.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use sworn_proto::agent as pb;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use super::auth::{Authenticated, standing, store_unavailable};
use super::conn::Busy;
use super::wire::entry_to_pb;
use crate::policy::matching::entry_synced_to;
use crate::shared::Shared;
use crate::store::{AgentMethod, AttestedAgent, EntryChanges, EntryScope, SyncPoint};
use crate::telemetry::SyncMessageLabels;

/// What `Sync` answers.
pub type SyncStream = Pin<Box<dyn Stream<Item = Result<pb::SyncResponse, Status>> + Send>>;

/// The stream for `agent`, which asked `request`; `busy` keeps its connection from counting as
/// idle while it is open.
pub fn stream(
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    agent: Authenticated,
    request: pb::SyncRequest,
    busy: Option<Busy>,
) -> SyncStream {
    let who = agent.record.agent.clone();
    let subscription = shared.changes.subscribe(who.clone());
    let mut bundle = shared.ca.subscribe();
    let not_after = agent.not_after;
    // Past `notAfter` means in the next whole second (certificates carry seconds).
    let expires = not_after + Duration::from_secs(1);
    let mut view = View::new(who, &request);
    Box::pin(async_stream::try_stream! {
        let _busy = busy;
        let mut expiry = shared.clock.sleep_until(expires);
        loop {
            standing(&shared, &view.agent.id, not_after).await?;
            if let Some(message) = view.next_message(&shared).await? {
                yield message;
            }
            let (stopping, expiry_fired) = tokio::select! {
                // Streams end with the server, so a drain never waits on them.
                () = shutdown.cancelled() => (true, false),
                () = subscription.changed() => (false, false),
                r = bundle.changed() => if r.is_err() { break } else { (false, false) },
                // The loop's check decides; a wall clock stepped back re-arms it.
                () = &mut expiry => (false, true),
                () = tokio::time::sleep(shared.changes.recheck_period()) => {
                    shared.metrics.sync_rechecks.inc();
                    (false, false)
                }
            };
            if stopping {
                Err(Status::unavailable("the server is shutting down"))?;
            }
            if expiry_fired {
                expiry = shared.clock.sleep_until(expires);
            }
        }
    })
}

/// What one stream knows of its agent's state.
struct View {
    agent: AttestedAgent,
    /// The agent applies deltas.
    deltas: bool,
    /// Where the next read starts: the agent's point from its request, then the revision
    /// this stream last read (which the agent holds, or which changed nothing of its own).
    point: Option<SyncPoint>,
    /// The bundle last sent; `None` before the first message.
    sent_bundle: Option<Vec<Vec<u8>>>,
}

impl View {
    fn new(agent: AttestedAgent, request: &pb::SyncRequest) -> Self {
        let point = (request.deltas && !request.epoch.is_empty()).then(|| SyncPoint {
            epoch: request.epoch.clone(),
            revision: request.revision,
        });
        View {
            agent,
            deltas: request.deltas,
            point,
            sent_bundle: None,
        }
    }

    /// The message to send now, if any: always on a stream's first read, afterwards only when
    /// an entry of the agent or the bundle changed.
    async fn next_message(&mut self, shared: &Shared) -> Result<Option<pb::SyncResponse>, Status> {
        let mut changes = self.read(shared, self.point.clone()).await?;
        let roots = shared.ca.bundle().roots_der;
        let first = self.sent_bundle.is_none();
        let bundle_changed = self.sent_bundle.as_ref() != Some(&roots);
        let entries: Vec<pb::Entry> = changes
            .upserted
            .iter()
            .filter(|e| entry_synced_to(e, &self.agent.id, self.agent.method))
            .map(entry_to_pb)
            .collect();
        let changed = !entries.is_empty() || !changes.removed.is_empty();
        self.point = Some(changes.at.clone());
        if !(first || bundle_changed || changed || changes.full) {
            return Ok(None);
        }
        let mut message = pb::SyncResponse {
            bundle: if changes.full || bundle_changed {
                roots.clone()
            } else {
                Vec::new()
            },
            entries,
            revision: changes.at.revision,
            full: changes.full,
            removed_entry_ids: changes.removed.iter().map(ToString::to_string).collect(),
            epoch: changes.at.epoch.clone(),
        };
        if !self.deltas && !changes.full {
            // An agent without deltas gets the complete state on every change.
            changes = self.read(shared, None).await?;
            message = pb::SyncResponse {
                bundle: roots.clone(),
                entries: changes
                    .upserted
                    .iter()
                    .filter(|e| entry_synced_to(e, &self.agent.id, self.agent.method))
                    .map(entry_to_pb)
                    .collect(),
                revision: changes.at.revision,
                full: true,
                removed_entry_ids: Vec::new(),
                epoch: changes.at.epoch.clone(),
            };
            self.point = Some(changes.at);
        }
        self.sent_bundle = Some(roots);
        let kind = if message.full { "full" } else { "delta" };
        shared
            .metrics
            .sync_messages
            .get_or_create(&SyncMessageLabels { kind })
            .inc();
        Ok(Some(message))
    }

    /// The agent's entries since `since` (all of them for `None`), counted.
    async fn read(
        &self,
        shared: &Shared,
        since: Option<SyncPoint>,
    ) -> Result<EntryChanges, Status> {
        let scope = EntryScope {
            agent: &self.agent.id,
            unscoped: self.agent.method == AgentMethod::K8s,
        };
        let changes = shared
            .store
            .entry_changes(scope, since.as_ref())
            .await
            .map_err(store_unavailable)?;
        shared
            .metrics
            .sync_entry_rows_read
            .inc_by(u64::try_from(changes.rows_read()).unwrap_or(u64::MAX));
        Ok(changes)
    }
}
