//! The mint queue: every item the cache needs minted, first mints and rotations alike, waits
//! here for a request (docs/architecture.md, "The agent's SVID cache").
//!
//! The sender (`sender.rs`, `SvidCache::run_mints`) keeps at most [`MAX_REQUESTS_IN_FLIGHT`]
//! `MintX509SVIDs` requests in flight on the agent's one HTTP/2 channel and fills each free
//! slot with up to [`MAX_MINT_ITEMS`](super::mint::MAX_MINT_ITEMS) queued items, so items that arrive while the slots are
//! busy share the next request instead of making one each. Invariants:
//! - an item is a claimed flight of its key (single flight is the state's), queued once;
//! - a caller's item goes before rotation's, so a rotation backlog never delays a first mint
//!   by more than the requests already in flight;
//! - a caller that goes away while its item is still queued takes it back and abandons the
//!   flight ([`MintQueue::withdraw`]); once sent, the item is finished by the sender, so
//!   whoever waits on the flight gets the outcome;
//! - every item taken into a request gets exactly one outcome, `Unavailable` if the request
//!   is cut short (the agent shutting down).

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Notify;

use super::scope::{Evidence, Key};

/// `MintX509SVIDs` requests in flight at once. Four keep the server busy while answers
/// travel back (each request is decided item by item on the server), yet bound what one
/// agent asks of it at once: at most 4 × 256 items.
pub const MAX_REQUESTS_IN_FLIGHT: usize = 4;

/// One item waiting for a request: flight `id` of `key`, with the evidence to send.
#[derive(Debug)]
pub struct Pending {
    pub key: Key,
    pub id: u64,
    pub evidence: Evidence,
    /// Whether it renews an SVID the cache holds (counted as a rotation when issued).
    pub rotation: bool,
}

/// The items waiting for a request, callers' first.
#[derive(Debug, Default)]
pub struct MintQueue {
    items: Mutex<Items>,
    /// Wakes the sender when an item arrives.
    pub(super) arrived: Notify,
    /// How many wait (`sworn_agent_mint_items_queued`), set on every change.
    queued: Gauge,
}

#[derive(Debug, Default)]
struct Items {
    callers: VecDeque<Pending>,
    rotations: VecDeque<Pending>,
    /// The sender has stopped: nothing is queued any more.
    closed: bool,
}

impl MintQueue {
    /// An empty queue whose length `queued` follows.
    pub fn new(queued: Gauge) -> Self {
        Self {
            queued,
            ..Self::default()
        }
    }

    fn lock(&self) -> MutexGuard<'_, Items> {
        // A panic while holding the lock leaves plain data behind; carry on with it.
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn counted(&self, items: &Items) {
        let len = items.callers.len() + items.rotations.len();
        self.queued.set(i64::try_from(len).unwrap_or(i64::MAX));
    }

    /// Queues `items` and wakes the sender. Once the queue is closed nothing is queued, and
    /// the items come back (their flights are to end `Unavailable`).
    #[must_use]
    pub fn push(&self, items: impl IntoIterator<Item = Pending>) -> Vec<Pending> {
        let mut queued = self.lock();
        if queued.closed {
            return items.into_iter().collect();
        }
        for item in items {
            if item.rotation {
                queued.rotations.push_back(item);
            } else {
                queued.callers.push_back(item);
            }
        }
        self.counted(&queued);
        drop(queued);
        self.arrived.notify_one();
        Vec::new()
    }

    /// Closes the queue; returns what was still waiting.
    pub(super) fn close(&self) -> Vec<Pending> {
        let mut queued = self.lock();
        queued.closed = true;
        let mut left: Vec<Pending> = queued.callers.drain(..).collect();
        left.extend(queued.rotations.drain(..));
        self.counted(&queued);
        left
    }

    /// Takes flight `id` of `key` back if it is still queued; `false` once it was sent.
    pub fn withdraw(&self, key: &Key, id: u64) -> bool {
        let mut queued = self.lock();
        let Items {
            callers, rotations, ..
        } = &mut *queued;
        let found = [callers, rotations].into_iter().any(|list| {
            list.iter()
                .position(|p| p.id == id && p.key == *key)
                .and_then(|at| list.remove(at))
                .is_some()
        });
        self.counted(&queued);
        found
    }

    /// Up to `max` items, callers' first, each in the order it arrived.
    pub fn take(&self, max: usize) -> Vec<Pending> {
        let mut queued = self.lock();
        let from_callers = queued.callers.len().min(max);
        let mut batch: Vec<Pending> = queued.callers.drain(..from_callers).collect();
        let from_rotations = queued.rotations.len().min(max - batch.len());
        batch.extend(queued.rotations.drain(..from_rotations));
        self.counted(&queued);
        batch
    }
}

#[cfg(test)]
mod tests {
    use sworn_identity::{EntryId, Grant};
    use sworn_proto::agent::UnixEvidence;

    use super::*;
    use crate::cache::mint::MAX_MINT_ITEMS;
    use crate::cache::scope::Scope;

    fn pending(uid: u32, id: u64, rotation: bool) -> Pending {
        let entry: EntryId = "00000000-0000-4000-8000-000000000001".parse().unwrap();
        let evidence = UnixEvidence {
            uid,
            ..Default::default()
        };
        Pending {
            key: Key::new(Scope::Unix(evidence.clone()), Grant::Entry(entry)),
            id,
            evidence: Evidence::Unix(evidence),
            rotation,
        }
    }

    #[test]
    fn requests_hold_at_most_the_limit_and_callers_go_first() {
        let q = MintQueue::default();
        assert!(
            q.push((0..300).map(|i| pending(i, u64::from(i), true)))
                .is_empty()
        );
        assert!(
            q.push((0..10).map(|i| pending(1000 + i, 1000 + u64::from(i), false)))
                .is_empty()
        );
        let first = q.take(MAX_MINT_ITEMS);
        assert_eq!(first.len(), MAX_MINT_ITEMS);
        assert!(first[..10].iter().all(|p| !p.rotation), "callers first");
        assert_eq!(first[10].id, 0, "then rotations in arrival order");
        assert_eq!(q.take(MAX_MINT_ITEMS).len(), 310 - MAX_MINT_ITEMS);
        assert!(q.take(MAX_MINT_ITEMS).is_empty());
    }

    #[test]
    fn a_queued_item_can_be_withdrawn_once_and_a_sent_one_cannot() {
        let q = MintQueue::default();
        let (a, b) = (pending(1, 1, false), pending(2, 2, false));
        let (key_a, key_b) = (a.key.clone(), b.key.clone());
        assert!(q.push([a, b]).is_empty());
        assert!(q.withdraw(&key_a, 1));
        assert!(!q.withdraw(&key_a, 1), "already taken back");
        assert!(!q.withdraw(&key_b, 7), "another flight of the key");
        assert_eq!(q.queued.get(), 1);
        let sent = q.take(MAX_MINT_ITEMS);
        assert_eq!(sent.len(), 1);
        assert_eq!(q.queued.get(), 0);
        assert!(!q.withdraw(&key_b, 2), "sent: the sender finishes it");
        assert!(q.close().is_empty());
        assert_eq!(q.push([pending(3, 3, true)]).len(), 1, "closed: refused");
    }
}
