//! The Sync stream (docs/architecture.md, "Protocols"): the bundle and the entries scoped
//! to the agent, now and after every change, until the server stops, the agent is banned
//! (at once: the admin ban path signals `changes`), or the certificate the stream was opened
//! with passes its `notAfter` (docs/architecture.md, "Agent API limits").

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use sworn_identity::AgentId;
use sworn_proto::agent as pb;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use super::auth::{Authenticated, standing, store_unavailable};
use super::conn::Busy;
use super::wire::entry_to_pb;
use crate::policy::matching::entry_scoped_to;
use crate::shared::Shared;

/// What `Sync` answers.
pub type SyncStream = Pin<Box<dyn Stream<Item = Result<pb::SyncResponse, Status>> + Send>>;

/// A re-check of the agent's standing even when nothing is signalled, for a ban written
/// where no change is signalled.
const RECHECK: Duration = Duration::from_secs(30);

/// The stream for `agent`; `busy` keeps its connection from counting as idle while it is open.
pub fn stream(
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    agent: Authenticated,
    busy: Option<Busy>,
) -> SyncStream {
    let mut changes = shared.changes.subscribe();
    let mut bundle = shared.ca.subscribe();
    let (agent_id, not_after) = (agent.record.agent.id, agent.not_after);
    // Past `notAfter` means in the next whole second (certificates carry seconds).
    let expires = not_after + Duration::from_secs(1);
    Box::pin(async_stream::try_stream! {
        let _busy = busy;
        let mut expiry = shared.clock.sleep_until(expires);
        loop {
            let revision = *changes.borrow_and_update() + bundle.borrow_and_update().sequence;
            standing(&shared, &agent_id, not_after).await?;
            yield state(&shared, &agent_id, revision).await?;
            let (stopping, expiry_fired) = tokio::select! {
                // Streams end with the server, so a drain never waits on them.
                () = shutdown.cancelled() => (true, false),
                r = changes.changed() => if r.is_err() { break } else { (false, false) },
                r = bundle.changed() => if r.is_err() { break } else { (false, false) },
                // The loop's check decides; a wall clock stepped back re-arms it.
                () = &mut expiry => (false, true),
                () = tokio::time::sleep(RECHECK) => (false, false),
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

/// The agent's state at `revision`.
async fn state(
    shared: &Shared,
    agent_id: &AgentId,
    revision: u64,
) -> Result<pb::SyncResponse, Status> {
    let entries = shared
        .store
        .list_entries()
        .await
        .map_err(store_unavailable)?;
    Ok(pb::SyncResponse {
        bundle: shared.ca.bundle().roots_der,
        entries: entries
            .iter()
            .filter(|e| entry_scoped_to(e, agent_id))
            .map(entry_to_pb)
            .collect(),
        revision,
    })
}
