-- Delta Sync (docs/architecture.md, "Sync"). Every entry change takes the next revision of
-- one counter; a deletion leaves a tombstone with its revision, so an agent that applied
-- revision R hears of exactly what changed after R. No row is removed or rewritten here:
-- existing entries get revision 0, which every agent's first (full) state already covers.

-- The revision space. `epoch` is random per datastore: an agent's revision from another
-- datastore (a restored or replaced one) never passes for one of this one.
CREATE TABLE sync_revision (
    id        INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    epoch     TEXT NOT NULL,
    revision  INTEGER NOT NULL
);
INSERT INTO sync_revision (id, epoch, revision) VALUES (1, lower(hex(randomblob(16))), 0);

-- The revision of the entry's last change (entries are created and deleted, never edited).
ALTER TABLE entries ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;

-- Sync reads one agent's entries (`node = ?`) and the unscoped ones (`node IS NULL`), since a
-- revision: node first, then revision, serves both the full read and the delta.
CREATE INDEX entries_node_revision ON entries (node, revision);

-- Deleted entries, for agents that still hold them. `node` is the entry's, so an agent reads
-- only its own tombstones and the unscoped ones. Pruned by age (`deleted_at`, unix seconds).
CREATE TABLE entry_tombstones (
    id          TEXT PRIMARY KEY NOT NULL,
    node        TEXT,
    revision    INTEGER NOT NULL,
    deleted_at  INTEGER NOT NULL
);
CREATE INDEX entry_tombstones_node_revision ON entry_tombstones (node, revision);
CREATE INDEX entry_tombstones_deleted_at ON entry_tombstones (deleted_at);

-- Per scope (an agent ID, or '' for entries without `--node`), the newest revision whose
-- tombstone was pruned: an agent behind its own scopes' marks may have missed a deletion and
-- is sent its full state; pruning other agents' tombstones never costs it one. At most one
-- row per agent ID an entry was ever scoped to, plus one.
CREATE TABLE tombstone_marks (
    node            TEXT PRIMARY KEY NOT NULL,
    pruned_through  INTEGER NOT NULL
);
