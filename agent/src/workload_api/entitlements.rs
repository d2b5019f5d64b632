//! What the Sync state asks of callers, derived once per state (docs/architecture.md,
//! "Workload attestation"): whether any entry needs a caller's executable digest, and the
//! index that finds a caller's entries without a scan.
//!
//! The Sync follower publishes each state as a new `Arc`, so a state is derived the first
//! time a caller looks at it and reused until the next one arrives (compared by pointer:
//! the memo holds the `Arc`, so an address is never reused while it is remembered).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use sworn_identity::Grant;
use sworn_identity::selector::Selector;

use crate::cache::EntryIndex;
use crate::sync::SyncState;

/// One Sync state and what was derived from it.
#[derive(Debug)]
pub struct Derived {
    /// The state it was derived from.
    pub state: Arc<SyncState>,
    /// Some entry has a `unix:sha256` selector: unix callers must be hashed.
    pub needs_sha256: bool,
    index: EntryIndex,
}

impl Derived {
    fn of(state: Arc<SyncState>) -> Self {
        let needs_sha256 = state
            .entries
            .iter()
            .any(|e| e.selectors.iter().any(Selector::is_unix_sha256));
        let index = crate::k8s::svids::index(&state);
        Derived {
            state,
            needs_sha256,
            index,
        }
    }

    /// The index of the state's entries.
    pub fn index(&self) -> &EntryIndex {
        &self.index
    }

    /// The entries whose selectors are all among `selectors`, in the state's order.
    pub fn entitled(&self, selectors: &BTreeSet<Selector>) -> Vec<Grant> {
        // The index holds positions into this very state's entries.
        let entries = &self.state.entries;
        self.index
            .matching(selectors, |p| &entries[p].selectors)
            .positions
            .into_iter()
            .map(|p| Grant::Entry(entries[p].id))
            .collect()
    }
}

/// The memo: the last state derived.
#[derive(Debug, Default)]
pub struct Entitlements {
    last: Mutex<Option<Arc<Derived>>>,
}

impl Entitlements {
    /// What `state` asks of callers (derived now if it is not the last state seen).
    pub fn of(&self, state: &Arc<SyncState>) -> Arc<Derived> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = last.as_ref().filter(|d| Arc::ptr_eq(&d.state, state)) {
            return d.clone();
        }
        let derived = Arc::new(Derived::of(state.clone()));
        *last = Some(derived.clone());
        derived
    }
}
