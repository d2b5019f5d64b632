//! The SQLite side of bans by node, credential lifetimes and audit retention
//! (docs/architecture.md, "Bans" and "Storage"): each is one statement or one transaction,
//! and pruning deletes at most one batch per call so no write waits long behind it.

use sworn_identity::AgentId;

use super::{SqliteStore, agent_from_row};
use crate::store::{AgentMethod, AgentRecord, StoreError};

/// Agents of one node: same cluster, and the same node UID or the same node name.
const SAME_NODE: &str = "method = 'k8s' AND cluster = ? AND (node_uid = ? OR node_name = ?)";

impl SqliteStore {
    /// [`crate::store::Store::set_agent_banned`]: one transaction, so a ban and the records it
    /// covers never disagree.
    pub(super) async fn set_banned(
        &self,
        id: &AgentId,
        banned: bool,
    ) -> Result<Option<AgentRecord>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("SELECT * FROM agents WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(record) = row.as_ref().map(agent_from_row).transpose()? else {
            return Ok(None);
        };
        let a = &record.agent;
        if a.method == AgentMethod::K8s {
            if banned {
                sqlx::query(
                    "INSERT OR IGNORE INTO node_bans (cluster, node_uid, node_name, agent_id)
                     VALUES (?, ?, ?, ?)",
                )
                .bind(&a.cluster)
                .bind(&a.node_uid)
                .bind(&a.node_name)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
            } else {
                sqlx::query(
                    "DELETE FROM node_bans WHERE cluster = ? AND (node_uid = ? OR node_name = ?)",
                )
                .bind(&a.cluster)
                .bind(&a.node_uid)
                .bind(&a.node_name)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(&format!("UPDATE agents SET banned = ? WHERE {SAME_NODE}"))
                .bind(i64::from(banned))
                .bind(&a.cluster)
                .bind(&a.node_uid)
                .bind(&a.node_name)
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query("UPDATE agents SET banned = ? WHERE id = ?")
                .bind(i64::from(banned))
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        let row = sqlx::query("SELECT * FROM agents WHERE id = ?")
            .bind(id.as_str())
            .fetch_one(&mut *tx)
            .await?;
        let updated = agent_from_row(&row)?;
        tx.commit().await?;
        Ok(Some(updated))
    }

    /// [`crate::store::Store::node_ban`].
    pub(super) async fn find_node_ban(
        &self,
        cluster: &str,
        node_uid: &str,
        node_name: &str,
    ) -> Result<Option<AgentId>, StoreError> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT agent_id FROM node_bans WHERE cluster = ? AND (node_uid = ? OR node_name = ?)
             ORDER BY agent_id LIMIT 1",
        )
        .bind(cluster)
        .bind(node_uid)
        .bind(node_name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(id,)| {
            id.parse().map_err(|e| StoreError::Corrupt {
                what: "node ban",
                id: id.clone(),
                reason: format!("{e}"),
            })
        })
        .transpose()
    }

    /// [`crate::store::Store::prune_audit`].
    pub(super) async fn prune_audit_batch(
        &self,
        before: i64,
        batch: u32,
    ) -> Result<u64, StoreError> {
        let res = sqlx::query(
            "DELETE FROM audit WHERE id IN
               (SELECT id FROM audit WHERE at < ? ORDER BY at, id LIMIT ?)",
        )
        .bind(before)
        .bind(i64::from(batch))
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected())
    }

    /// [`crate::store::Store::prune_credentials`].
    pub(super) async fn prune_credentials_batch(
        &self,
        now: i64,
        batch: u32,
    ) -> Result<u64, StoreError> {
        let res = sqlx::query(
            "DELETE FROM used_credentials WHERE jti IN
               (SELECT jti FROM used_credentials WHERE expires_at < ? LIMIT ?)",
        )
        .bind(now)
        .bind(i64::from(batch))
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CREDENTIAL_SKEW_SECS, CredentialKept, Store};

    #[tokio::test]
    async fn a_credential_id_is_kept_until_its_tokens_exp_plus_skew() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        let now = 1_000_000;
        let long = now + 72 * 3600;
        s.record_credential("long", CredentialKept::for_token(Some(long), now))
            .await
            .unwrap();
        s.record_credential("short", CredentialKept::for_token(Some(now + 600), now))
            .await
            .unwrap();
        // 49 hours on: only the short token's ID is forgotten.
        assert_eq!(s.prune_credentials(now + 49 * 3600, 1000).await.unwrap(), 1);
        assert!(
            !s.record_credential("long", CredentialKept::for_token(Some(long), now))
                .await
                .unwrap()
        );
        // Just before exp + skew it stays; after, it goes.
        assert_eq!(
            s.prune_credentials(long + CREDENTIAL_SKEW_SECS - 1, 1000)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            s.prune_credentials(long + CREDENTIAL_SKEW_SECS + 1, 1000)
                .await
                .unwrap(),
            1
        );
    }
}
