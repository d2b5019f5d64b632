//! The SQLite side of entries and their revisions (docs/architecture.md, "Sync"): a change
//! bumps `sync_revision` in the transaction that makes it, so revisions follow commit order
//! (SQLite has one writer at a time), and a Sync read is one read transaction, so the
//! revision it reports covers exactly the rows it read.

use sqlx::Row;
use sqlx::sqlite::SqliteConnection;
use sworn_identity::{AgentId, EntryId};

use super::{SqliteStore, corrupt, entry_from_row};
use crate::store::{Deleted, Entry, EntryChanges, EntryScope, EntryTarget, StoreError, SyncPoint};

/// Takes the next revision, inside the caller's write transaction.
async fn next_revision(tx: &mut SqliteConnection) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("UPDATE sync_revision SET revision = revision + 1 RETURNING revision")
            .fetch_one(tx)
            .await?,
    )
}

fn revision(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn stored(revision: u64) -> i64 {
    i64::try_from(revision).unwrap_or(i64::MAX)
}

impl SqliteStore {
    /// [`crate::store::Store::create_entry`].
    pub(super) async fn insert_entry(&self, e: &Entry) -> Result<(), StoreError> {
        let (id, tpl) = match &e.target {
            EntryTarget::Id(s) => (Some(s.as_str()), None),
            EntryTarget::Template(t) => (None, Some(t.as_str())),
        };
        let sels: Vec<String> = e.selectors.iter().map(ToString::to_string).collect();
        let entry_id = e.id.to_string();
        let sels = serde_json::to_string(&sels).map_err(|err| corrupt("entry", &entry_id, err))?;
        let dns =
            serde_json::to_string(&e.dns_names).map_err(|err| corrupt("entry", &entry_id, err))?;
        let mut tx = self.pool.begin().await?;
        let revision = next_revision(&mut tx).await?;
        let res = sqlx::query(
            "INSERT INTO entries (id, spiffe_id, spiffe_id_template, selectors, node, ttl_seconds, dns_names, hint, created_at, revision)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&entry_id)
        .bind(id)
        .bind(tpl)
        .bind(sels)
        .bind(e.node.as_ref().map(AgentId::as_str))
        .bind(e.ttl.map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)))
        .bind(dns)
        .bind(&e.hint)
        .bind(e.created_at)
        .bind(revision)
        .execute(&mut *tx)
        .await;
        match res {
            Ok(_) => {}
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                return Err(StoreError::Conflict(format!("entry {}", e.id)));
            }
            Err(err) => return Err(err.into()),
        }
        // An ID is never reused, but if it were, the new entry must not read as deleted.
        sqlx::query("DELETE FROM entry_tombstones WHERE id = ?")
            .bind(&entry_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// [`crate::store::Store::delete_entry`].
    pub(super) async fn remove_entry(&self, id: &EntryId, now: i64) -> Result<Deleted, StoreError> {
        let entry_id = id.to_string();
        let mut tx = self.pool.begin().await?;
        // Write first: a transaction that read first could not write after a concurrent
        // commit (SQLITE_BUSY_SNAPSHOT). Without the entry the transaction rolls back.
        let revision = next_revision(&mut tx).await?;
        let Some(row) = sqlx::query("SELECT * FROM entries WHERE id = ?")
            .bind(&entry_id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(Deleted::NotFound);
        };
        let node: Option<String> = row.try_get("node")?;
        sqlx::query("DELETE FROM entries WHERE id = ?")
            .bind(&entry_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT OR REPLACE INTO entry_tombstones (id, node, revision, deleted_at) VALUES (?, ?, ?, ?)",
        )
        .bind(&entry_id)
        .bind(node)
        .bind(revision)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(match entry_from_row(&row) {
            Ok(entry) => Deleted::Entry(Box::new(entry)),
            Err(_) => Deleted::Corrupt,
        })
    }

    /// [`crate::store::Store::entry_changes`].
    pub(super) async fn read_entry_changes(
        &self,
        scope: EntryScope<'_>,
        since: Option<&SyncPoint>,
    ) -> Result<EntryChanges, StoreError> {
        // One read transaction: the revision and the rows come from one snapshot.
        let mut tx = self.pool.begin().await?;
        let meta = sqlx::query("SELECT epoch, revision FROM sync_revision")
            .fetch_one(&mut *tx)
            .await?;
        let at = SyncPoint {
            epoch: meta.try_get("epoch")?,
            revision: revision(meta.try_get("revision")?),
        };
        let agent = scope.agent.as_str();
        let pruned_through: Option<i64> = sqlx::query_scalar(if scope.unscoped {
            "SELECT max(pruned_through) FROM tombstone_marks WHERE node IN (?1, '')"
        } else {
            "SELECT max(pruned_through) FROM tombstone_marks WHERE node = ?1"
        })
        .bind(agent)
        .fetch_one(&mut *tx)
        .await?;
        let pruned_through = pruned_through.map_or(0, revision);
        let after = since.filter(|p| {
            p.epoch == at.epoch && p.revision <= at.revision && p.revision >= pruned_through
        });
        let (upserted, removed) = match after {
            None => {
                let sql = if scope.unscoped {
                    "SELECT * FROM entries WHERE node = ?1
                     UNION ALL SELECT * FROM entries WHERE node IS NULL
                     ORDER BY created_at, id"
                } else {
                    "SELECT * FROM entries WHERE node = ?1 ORDER BY created_at, id"
                };
                let rows = sqlx::query(sql).bind(agent).fetch_all(&mut *tx).await?;
                (rows, Vec::new())
            }
            Some(p) => {
                let from = stored(p.revision);
                let (entries, tombstones) = if scope.unscoped {
                    (
                        "SELECT * FROM entries WHERE node = ?1 AND revision > ?2
                         UNION ALL SELECT * FROM entries WHERE node IS NULL AND revision > ?2
                         ORDER BY revision",
                        "SELECT id FROM entry_tombstones WHERE node = ?1 AND revision > ?2
                         UNION ALL SELECT id FROM entry_tombstones WHERE node IS NULL AND revision > ?2",
                    )
                } else {
                    (
                        "SELECT * FROM entries WHERE node = ?1 AND revision > ?2 ORDER BY revision",
                        "SELECT id FROM entry_tombstones WHERE node = ?1 AND revision > ?2",
                    )
                };
                let rows = sqlx::query(entries)
                    .bind(agent)
                    .bind(from)
                    .fetch_all(&mut *tx)
                    .await?;
                let gone = sqlx::query(tombstones)
                    .bind(agent)
                    .bind(from)
                    .fetch_all(&mut *tx)
                    .await?;
                (rows, gone)
            }
        };
        tx.commit().await?;
        let upserted = upserted
            .iter()
            .map(entry_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let removed = removed
            .iter()
            .map(|r| {
                let id: String = r.try_get("id")?;
                id.parse::<EntryId>()
                    .map_err(|e| corrupt("entry tombstone", &id, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EntryChanges {
            at,
            upserted,
            removed,
            full: after.is_none(),
        })
    }

    /// [`crate::store::Store::prune_entry_tombstones`]: the tombstones and their scopes'
    /// marks in one transaction.
    pub(super) async fn prune_tombstones(
        &self,
        before: i64,
        batch: u32,
    ) -> Result<u64, StoreError> {
        const BATCH: &str = "SELECT id FROM entry_tombstones WHERE deleted_at < ?1
                             ORDER BY deleted_at, revision LIMIT ?2";
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO tombstone_marks (node, pruned_through)
               SELECT coalesce(node, ''), max(revision) FROM entry_tombstones
                WHERE id IN ({BATCH}) GROUP BY coalesce(node, '')
             ON CONFLICT (node) DO UPDATE
               SET pruned_through = max(pruned_through, excluded.pruned_through)"
        ))
        .bind(before)
        .bind(i64::from(batch))
        .execute(&mut *tx)
        .await?;
        let res = sqlx::query(&format!(
            "DELETE FROM entry_tombstones WHERE id IN ({BATCH})"
        ))
        .bind(before)
        .bind(i64::from(batch))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(res.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    const A: &str = "spiffe://td/sworn/agent/join/a";
    const B: &str = "spiffe://td/sworn/agent/join/b";

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        (dir, s)
    }

    fn agent(id: &str) -> AgentId {
        id.parse().unwrap()
    }

    async fn entry(s: &SqliteStore, node: Option<&str>, selector: &str) -> EntryId {
        let mut e = Entry::unscoped(
            EntryId::generate(),
            EntryTarget::Id("spiffe://td/w".into()),
            vec![selector.parse().unwrap()],
            1,
        );
        e.node = node.map(agent);
        s.create_entry(&e).await.unwrap();
        e.id
    }

    fn scope(agent: &AgentId, unscoped: bool) -> EntryScope<'_> {
        EntryScope { agent, unscoped }
    }

    fn ids(c: &EntryChanges) -> Vec<EntryId> {
        c.upserted.iter().map(|e| e.id).collect()
    }

    #[tokio::test]
    async fn a_delta_reads_only_the_agents_rows_changed_after_its_revision() {
        let (_d, s) = store().await;
        let (a, b) = (agent(A), agent(B));
        let mine = entry(&s, Some(A), "unix:uid:1").await;
        for _ in 0..5 {
            entry(&s, Some(B), "unix:uid:2").await;
        }
        let full = s.entry_changes(scope(&a, false), None).await.unwrap();
        assert!(full.full);
        assert_eq!(ids(&full), [mine]);
        assert_eq!(full.rows_read(), 1, "B's rows are never read for A");

        let new = entry(&s, Some(A), "unix:uid:1").await;
        entry(&s, Some(B), "unix:uid:2").await;
        let k8s = entry(&s, None, "k8s:ns:default").await;
        assert_eq!(
            s.delete_entry(&mine, 5).await.unwrap(),
            Deleted::Entry(Box::new(s_entry(&full, mine),))
        );
        let delta = s
            .entry_changes(scope(&a, false), Some(&full.at))
            .await
            .unwrap();
        assert!(!delta.full);
        assert_eq!(ids(&delta), [new]);
        assert_eq!(delta.removed, [mine]);
        assert_eq!(delta.at.revision, full.at.revision + 4);
        // A Kubernetes agent reads the entries without --node too.
        let k = s
            .entry_changes(scope(&b, true), Some(&full.at))
            .await
            .unwrap();
        assert_eq!(k.upserted.len(), 2, "B's new entry and the unscoped one");
        assert!(ids(&k).contains(&k8s));
        // Nothing changed since: nothing read.
        let none = s
            .entry_changes(scope(&a, false), Some(&delta.at))
            .await
            .unwrap();
        assert_eq!((none.full, none.rows_read()), (false, 0));
    }

    fn s_entry(c: &EntryChanges, id: EntryId) -> Entry {
        c.upserted.iter().find(|e| e.id == id).unwrap().clone()
    }

    #[tokio::test]
    async fn a_point_of_another_epoch_ahead_or_behind_a_pruned_tombstone_gets_the_full_state() {
        let (_d, s) = store().await;
        let (a, b) = (agent(A), agent(B));
        let first = entry(&s, Some(A), "unix:uid:1").await;
        let at = s.entry_changes(scope(&a, false), None).await.unwrap().at;
        let other_epoch = SyncPoint {
            epoch: "another".into(),
            revision: at.revision,
        };
        let ahead = SyncPoint {
            epoch: at.epoch.clone(),
            revision: at.revision + 1,
        };
        for p in [&other_epoch, &ahead] {
            let c = s.entry_changes(scope(&a, false), Some(p)).await.unwrap();
            assert!(c.full, "{p:?}");
            assert_eq!(ids(&c), [first]);
        }
        // B's deletions, pruned, cost A nothing.
        let theirs = entry(&s, Some(B), "unix:uid:2").await;
        s.delete_entry(&theirs, 10).await.unwrap();
        assert_eq!(s.prune_entry_tombstones(11, 100).await.unwrap(), 1);
        assert!(
            !s.entry_changes(scope(&a, false), Some(&at))
                .await
                .unwrap()
                .full
        );
        assert!(
            s.entry_changes(scope(&b, false), Some(&at))
                .await
                .unwrap()
                .full
        );
        // A's own: a tombstone too young stays; once pruned, A's old point is full.
        s.delete_entry(&first, 20).await.unwrap();
        assert_eq!(s.prune_entry_tombstones(20, 100).await.unwrap(), 0);
        let delta = s.entry_changes(scope(&a, false), Some(&at)).await.unwrap();
        assert_eq!((delta.full, delta.removed.clone()), (false, vec![first]));
        assert_eq!(s.prune_entry_tombstones(21, 100).await.unwrap(), 1);
        let full = s.entry_changes(scope(&a, false), Some(&at)).await.unwrap();
        assert!(full.full);
        assert!(full.upserted.is_empty());
        // A point at or after the pruned tombstone still gets deltas.
        assert!(
            !s.entry_changes(scope(&a, false), Some(&full.at))
                .await
                .unwrap()
                .full
        );
    }

    #[tokio::test]
    async fn sync_reads_go_through_the_node_index() {
        let (_d, s) = store().await;
        for sql in [
            "SELECT * FROM entries WHERE node = ?1 AND revision > ?2",
            "SELECT * FROM entries WHERE node IS NULL AND revision > ?2",
            "SELECT id FROM entry_tombstones WHERE node = ?1 AND revision > ?2",
        ] {
            let plan: Vec<String> = sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
                .bind(A)
                .bind(0_i64)
                .fetch_all(&s.pool)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<String, _>("detail"))
                .collect();
            assert!(
                plan.iter()
                    .any(|d| d.contains("USING INDEX") || d.contains("USING COVERING INDEX")),
                "{sql}: {plan:?}"
            );
        }
    }
}
