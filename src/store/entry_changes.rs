//! What Sync reads of the entries (docs/architecture.md, "Sync"): every entry change takes the
//! next revision of one counter and a deletion leaves a tombstone, so the entries that can
//! apply to one agent are read either whole or as what changed after the revision it applied.

use sworn_identity::{AgentId, EntryId};

use super::Entry;

/// A point in the revision space: the revision an agent applied, in the epoch (the datastore)
/// it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPoint {
    /// Random per datastore.
    pub epoch: String,
    /// Increases with every entry change.
    pub revision: u64,
}

/// The entries a Sync read covers: those scoped to `agent` (`--node`), and with `unscoped`
/// those without `--node` (see `policy::matching::entry_synced_to`, which decides for each
/// row read).
#[derive(Debug, Clone, Copy)]
pub struct EntryScope<'a> {
    /// The agent.
    pub agent: &'a AgentId,
    /// Whether entries without `--node` are read too (Kubernetes agents).
    pub unscoped: bool,
}

/// What one Sync read found, all in one read of the datastore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryChanges {
    /// The revision space when it was read: what the agent has applied once it applies this.
    pub at: SyncPoint,
    /// Every entry in scope, oldest first (`full`), or those changed after the agent's point.
    pub upserted: Vec<Entry>,
    /// Entries in scope deleted after the agent's point (always empty when `full`).
    pub removed: Vec<EntryId>,
    /// The complete state: the agent had no point, or one of another epoch, ahead of the
    /// datastore, or behind tombstones already pruned.
    pub full: bool,
}

impl EntryChanges {
    /// Rows read from the datastore for it (entries and tombstones).
    pub fn rows_read(&self) -> usize {
        self.upserted.len() + self.removed.len()
    }
}

/// What deleting an entry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    /// There was no such entry.
    NotFound,
    /// The entry, as it was.
    Entry(Box<Entry>),
    /// The row was deleted but did not parse (a database edited by hand): no agent's Sync
    /// could have held it.
    Corrupt,
}
