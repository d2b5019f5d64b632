//! What the Sync state asks of callers, derived once per state (docs/architecture.md,
//! "Workload attestation"): whether any entry needs a caller's executable digest.
//!
//! The Sync follower publishes each state as a new `Arc`, so a state is derived the first
//! time a caller looks at it and reused until the next one arrives (compared by pointer:
//! the memo holds the `Arc`, so an address is never reused while it is remembered).

use std::sync::{Arc, Mutex};

use sworn_identity::selector::Selector;

use crate::sync::SyncState;

/// One Sync state and what was derived from it.
#[derive(Debug)]
pub struct Derived {
    /// The state it was derived from.
    pub state: Arc<SyncState>,
    /// Some entry has a `unix:sha256` selector: unix callers must be hashed.
    pub needs_sha256: bool,
}

impl Derived {
    fn of(state: Arc<SyncState>) -> Self {
        let needs_sha256 = state
            .entries
            .iter()
            .any(|e| e.selectors.iter().any(Selector::is_unix_sha256));
        Derived {
            state,
            needs_sha256,
        }
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
