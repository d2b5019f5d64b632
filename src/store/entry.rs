//! Registration entries, and what Sync reads of them (docs/architecture.md, "Sync"): every
//! entry change takes the next revision of one counter and a deletion leaves a tombstone, so
//! the entries that can apply to one agent are read either whole or as what changed after
//! the revision it applied.

use std::time::Duration;

use sworn_identity::selector::Selector;
use sworn_identity::{AgentId, EntryId};

/// Where an entry's SPIFFE ID comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryTarget {
    /// A fixed SPIFFE ID (already validated).
    Id(String),
    /// An ID template (already validated), rendered per workload.
    Template(String),
}

/// A registration entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Server-assigned ID.
    pub id: EntryId,
    /// The identity it grants.
    pub target: EntryTarget,
    /// All must match (AND).
    pub selectors: Vec<Selector>,
    /// Agent ID the entry is scoped to; `None` means every agent for a Kubernetes entry, and no agent for a unix entry (see `policy::matching::check_scope`).
    pub node: Option<AgentId>,
    /// SVID TTL; `None` means the server default.
    pub ttl: Option<Duration>,
    /// DNS SANs to add.
    pub dns_names: Vec<String>,
    /// Workload API hint.
    pub hint: String,
    /// Unix seconds.
    pub created_at: i64,
}

impl Entry {
    /// An entry for `target` and `selectors` with no `--node`, the server's default TTL, no
    /// DNS names and no hint.
    pub fn unscoped(
        id: EntryId,
        target: EntryTarget,
        selectors: Vec<Selector>,
        created_at: i64,
    ) -> Self {
        Entry {
            id,
            target,
            selectors,
            node: None,
            ttl: None,
            dns_names: Vec::new(),
            hint: String::new(),
            created_at,
        }
    }
}

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
