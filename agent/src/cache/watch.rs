//! Per-scope change notices (docs/architecture.md, "The agent's SVID cache"): a change of
//! the cache (an SVID issued, rotated, dropped or expired) is published to the scope whose
//! key changed, so an open Workload API stream wakes only for its own caller's SVIDs.
//!
//! A scope has a `watch` while some stream follows it; the last follower to go removes it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use super::scope::Scope;

/// The watches of the scopes someone follows.
#[derive(Debug, Default)]
pub struct ScopeWatches {
    map: Mutex<HashMap<Scope, watch::Sender<u64>>>,
}

impl ScopeWatches {
    fn lock(&self) -> MutexGuard<'_, HashMap<Scope, watch::Sender<u64>>> {
        // A panic while holding the lock leaves plain data behind; carry on with it.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Follows the changes of `scope`'s SVIDs.
    pub fn follow(self: &Arc<Self>, scope: &Scope) -> ScopeWatch {
        let changes = self
            .lock()
            .entry(scope.clone())
            .or_insert_with(|| watch::Sender::new(0))
            .subscribe();
        ScopeWatch {
            changes,
            scope: scope.clone(),
            watches: self.clone(),
        }
    }

    /// Tells the followers of each of `scopes` that its SVIDs changed.
    pub fn changed<'a>(&self, scopes: impl IntoIterator<Item = &'a Scope>) {
        let map = self.lock();
        for scope in scopes {
            if let Some(tx) = map.get(scope) {
                tx.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
    }
}

/// One follower of a scope's changes.
#[derive(Debug)]
pub struct ScopeWatch {
    changes: watch::Receiver<u64>,
    scope: Scope,
    watches: Arc<ScopeWatches>,
}

impl ScopeWatch {
    /// Resolves at the next change not yet seen.
    pub async fn changed(&mut self) {
        // The sender stays in the map while this receiver lives, so this cannot fail.
        if self.changes.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Marks every change so far as seen (call it before reading the cache).
    pub fn seen(&mut self) {
        self.changes.borrow_and_update();
    }
}

impl Drop for ScopeWatch {
    fn drop(&mut self) {
        let mut map = self.watches.lock();
        // This receiver is still alive: 1 means nobody else follows the scope.
        if map
            .get(&self.scope)
            .is_some_and(|tx| tx.receiver_count() == 1)
        {
            map.remove(&self.scope);
        }
    }
}
