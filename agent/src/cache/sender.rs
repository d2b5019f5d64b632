//! The mint queue's sender: takes queued items into `MintX509SVIDs` requests, at most
//! [`MAX_REQUESTS_IN_FLIGHT`] at once, and applies each item's outcome to the cache
//! (docs/architecture.md, "The agent's SVID cache"; the queue's invariants are in `queue.rs`).

use std::sync::Arc;

use sworn_identity::Factor;
use sworn_identity::outcome::{Outcome, Unavailable};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug_span};

use super::mint::{self, MAX_MINT_ITEMS};
use super::queue::{MAX_REQUESTS_IN_FLIGHT, Pending};
use super::svid_cache::SvidCache;

/// Items that have not been given their outcome yet; whatever is left when it is dropped (a
/// request task aborted at shutdown, items refused by a closed queue) ends `Unavailable`.
struct InFlight<'a> {
    cache: &'a SvidCache,
    items: Vec<Pending>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        for p in self.items.drain(..) {
            let outcome = Outcome::Unavailable(Unavailable::new(
                Factor::Store,
                "the agent is shutting down",
            ));
            self.cache.finish(&p.key, p.id, outcome, p.rotation);
        }
    }
}

impl SvidCache {
    /// Sends queued items, at most [`MAX_REQUESTS_IN_FLIGHT`] requests at once, until
    /// `shutdown`; then ends every item queued or in flight `Unavailable`.
    pub(super) async fn run_mints(self: Arc<Self>, shutdown: CancellationToken) {
        let mut requests = JoinSet::new();
        loop {
            while requests.len() < MAX_REQUESTS_IN_FLIGHT {
                let batch = self.sendable(self.queue.take(MAX_MINT_ITEMS));
                if batch.is_empty() {
                    break;
                }
                let span = debug_span!("mint_request", items = batch.len());
                requests.spawn(self.clone().send(batch).instrument(span));
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.queue.arrived.notified(), if requests.len() < MAX_REQUESTS_IN_FLIGHT => {}
                Some(_) = requests.join_next(), if !requests.is_empty() => {}
            }
        }
        requests.shutdown().await;
        let left = self.queue.close();
        drop(InFlight {
            cache: &self,
            items: left,
        });
    }

    /// Queues `items` for the sender; after shutdown they end `Unavailable` at once.
    pub(super) fn enqueue(&self, items: Vec<Pending>) {
        let refused = self.queue.push(items);
        if !refused.is_empty() {
            drop(InFlight {
                cache: self,
                items: refused,
            });
        }
    }

    /// Leaves out items whose flight ended while they were queued (their workload or entry
    /// went away): nobody waits for them.
    fn sendable(&self, batch: Vec<Pending>) -> Vec<Pending> {
        if batch.is_empty() {
            return batch;
        }
        let state = self.lock();
        batch
            .into_iter()
            .filter(|p| state.is_flight(&p.key, p.id))
            .collect()
    }

    /// One request for `batch`, and each item's outcome applied.
    async fn send(self: Arc<Self>, batch: Vec<Pending>) {
        let items = batch
            .iter()
            .map(|p| (p.key.entry, p.evidence.clone()))
            .collect();
        let mut in_flight = InFlight {
            cache: &self,
            items: batch,
        };
        let outcomes = mint::mint_items(&self.upstream, &self.metrics, items).await;
        for (p, (_, outcome)) in std::mem::take(&mut in_flight.items)
            .into_iter()
            .zip(outcomes)
        {
            self.finish(&p.key, p.id, outcome, p.rotation);
        }
    }
}
