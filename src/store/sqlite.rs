//! SQLite backend (the embedded default): WAL journal, foreign keys on,
//! `synchronous=FULL` so an acknowledged write survives power loss, no ping before each use.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sworn_identity::{AgentId, EntryId, Serial};

use super::agent_epoch::AgentEpochs;
use super::{
    AgentMethod, AgentRecord, AttestedAgent, AuditRecord, CredentialKept, Deleted, Entry,
    EntryChanges, EntryScope, EntryTarget, NewAudit, Store, StoreError, StoredRoot, SyncPoint,
    TokenUse,
};

mod audit;
mod entries;
mod upkeep;

/// The SQLite datastore.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    agent_epochs: Arc<AgentEpochs>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // No ping before each statement: the database is a local file, so a pooled
            // connection does not go stale the way a network one can, and an error on the
            // statement itself is reported (and fails closed) just the same.
            .test_before_acquire(false)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(SqliteStore {
            pool,
            agent_epochs: Arc::default(),
        })
    }

    /// Closes the pool, checkpointing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn corrupt(what: &'static str, id: &str, reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what,
        id: id.to_owned(),
        reason: reason.to_string(),
    }
}

fn entry_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Entry, StoreError> {
    let id: String = row.try_get("id")?;
    let entry_id: EntryId = id.parse().map_err(|e| corrupt("entry", &id, e))?;
    let spiffe_id: Option<String> = row.try_get("spiffe_id")?;
    let template: Option<String> = row.try_get("spiffe_id_template")?;
    let target = match (spiffe_id, template) {
        (Some(s), None) => EntryTarget::Id(s),
        (None, Some(t)) => EntryTarget::Template(t),
        _ => {
            return Err(corrupt(
                "entry",
                &id,
                "needs exactly one of spiffe_id, template",
            ));
        }
    };
    let sel_json: String = row.try_get("selectors")?;
    let sel_strings: Vec<String> =
        serde_json::from_str(&sel_json).map_err(|e| corrupt("entry", &id, e))?;
    let selectors = sel_strings
        .iter()
        .map(|s| s.parse())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| corrupt("entry", &id, e))?;
    let dns_json: String = row.try_get("dns_names")?;
    let dns_names = serde_json::from_str(&dns_json).map_err(|e| corrupt("entry", &id, e))?;
    let ttl: Option<i64> = row.try_get("ttl_seconds")?;
    let node = row
        .try_get::<Option<String>, _>("node")?
        .map(|n| n.parse::<AgentId>().map_err(|e| corrupt("entry", &id, e)))
        .transpose()?;
    Ok(Entry {
        id: entry_id,
        target,
        selectors,
        node,
        ttl: ttl.map(|s| Duration::from_secs(s.unsigned_abs())),
        dns_names,
        hint: row.try_get("hint")?,
        created_at: row.try_get("created_at")?,
    })
}

fn agent_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<AgentRecord, StoreError> {
    let id: String = row.try_get("id")?;
    let method: String = row.try_get("method")?;
    let method = match method.as_str() {
        "join_token" => AgentMethod::JoinToken,
        "k8s" => AgentMethod::K8s,
        other => return Err(corrupt("agent", &id, format!("unknown method {other:?}"))),
    };
    let serial = |text: String| -> Result<Serial, StoreError> {
        text.parse().map_err(|e| corrupt("agent", &id, e))
    };
    Ok(AgentRecord {
        agent: AttestedAgent {
            id: id.parse().map_err(|e| corrupt("agent", &id, e))?,
            method,
            node_name: row.try_get("node_name")?,
            node_uid: row.try_get("node_uid")?,
            pod_uid: row.try_get("pod_uid")?,
            cluster: row.try_get("cluster")?,
        },
        serial: serial(row.try_get("serial")?)?,
        prev_serial: row
            .try_get::<Option<String>, _>("prev_serial")?
            .map(serial)
            .transpose()?,
        expires_at: row.try_get("expires_at")?,
        banned: row.try_get::<i64, _>("banned")? != 0,
        attested_at: row.try_get("attested_at")?,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_entry(&self, e: &Entry) -> Result<(), StoreError> {
        self.insert_entry(e).await
    }

    async fn list_entries(&self) -> Result<Vec<Entry>, StoreError> {
        let rows = sqlx::query("SELECT * FROM entries ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(entry_from_row).collect()
    }

    async fn get_entry(&self, id: &EntryId) -> Result<Option<Entry>, StoreError> {
        let row = sqlx::query("SELECT * FROM entries WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(entry_from_row).transpose()
    }

    async fn delete_entry(&self, id: &EntryId, now: i64) -> Result<Deleted, StoreError> {
        self.remove_entry(id, now).await
    }

    async fn entry_changes(
        &self,
        scope: EntryScope<'_>,
        since: Option<&SyncPoint>,
    ) -> Result<EntryChanges, StoreError> {
        self.read_entry_changes(scope, since).await
    }

    async fn prune_entry_tombstones(&self, before: i64, batch: u32) -> Result<u64, StoreError> {
        self.prune_tombstones(before, batch).await
    }

    async fn upsert_agent(&self, a: &AgentRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO agents (id, method, node_name, node_uid, pod_uid, cluster, serial, prev_serial, expires_at, banned, attested_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(id) DO UPDATE SET method = excluded.method, node_name = excluded.node_name,
               node_uid = excluded.node_uid, pod_uid = excluded.pod_uid, cluster = excluded.cluster,
               prev_serial = agents.serial, serial = excluded.serial,
               expires_at = excluded.expires_at, attested_at = excluded.attested_at",
        )
        .bind(a.agent.id.as_str())
        .bind(a.agent.method.as_str())
        .bind(&a.agent.node_name)
        .bind(&a.agent.node_uid)
        .bind(&a.agent.pod_uid)
        .bind(&a.agent.cluster)
        .bind(a.serial.to_string())
        .bind(a.prev_serial.as_ref().map(Serial::to_string))
        .bind(a.expires_at)
        .bind(i64::from(a.banned))
        .bind(a.attested_at)
        .execute(&self.pool)
        .await?;
        self.agent_epochs.changed(a.id());
        Ok(())
    }

    async fn get_agent(&self, id: &AgentId) -> Result<Option<AgentRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM agents WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(agent_from_row).transpose()
    }

    async fn list_agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM agents ORDER BY attested_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(agent_from_row).collect()
    }

    async fn set_agent_banned(
        &self,
        id: &AgentId,
        banned: bool,
    ) -> Result<Option<AgentRecord>, StoreError> {
        let updated = self.set_banned(id, banned).await;
        // Even after an error: a commit whose answer was lost must still be seen.
        self.agent_epochs.changed_all();
        updated
    }

    async fn node_ban(
        &self,
        cluster: &str,
        node_uid: &str,
        node_name: &str,
    ) -> Result<Option<AgentId>, StoreError> {
        self.find_node_ban(cluster, node_uid, node_name).await
    }

    async fn mark_serial_used(&self, id: &AgentId, serial: &Serial) -> Result<(), StoreError> {
        let res = sqlx::query(
            "UPDATE agents SET prev_serial = NULL WHERE id = ? AND serial = ? AND prev_serial IS NOT NULL",
        )
        .bind(id.as_str())
        .bind(serial.to_string())
        .execute(&self.pool)
        .await?;
        if res.rows_affected() > 0 {
            self.agent_epochs.changed(id);
        }
        Ok(())
    }

    fn agent_epoch(&self, id: &AgentId) -> u64 {
        self.agent_epochs.of(id)
    }

    async fn put_root(&self, r: &StoredRoot) -> Result<(), StoreError> {
        sqlx::query("INSERT OR IGNORE INTO bundle (der, not_after, added_at) VALUES (?, ?, strftime('%s','now'))")
            .bind(&r.der)
            .bind(r.not_after)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn list_roots(&self) -> Result<Vec<StoredRoot>, StoreError> {
        let rows = sqlx::query("SELECT der, not_after FROM bundle ORDER BY added_at, not_after")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredRoot {
                    der: r.try_get("der")?,
                    not_after: r.try_get("not_after")?,
                })
            })
            .collect()
    }

    async fn remove_root(&self, der: &[u8]) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM bundle WHERE der = ?")
            .bind(der)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn insert_join_token(
        &self,
        hash: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO join_tokens (hash, expires_at, created_at) VALUES (?, ?, ?)")
            .bind(hash)
            .bind(expires_at)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn consume_join_token(&self, hash: &str, now: i64) -> Result<TokenUse, StoreError> {
        // The conditional UPDATE is the single point of decision: of any
        // number of concurrent callers, exactly one sees a changed row.
        let res = sqlx::query(
            "UPDATE join_tokens SET used_at = ? WHERE hash = ? AND used_at IS NULL AND expires_at > ?",
        )
        .bind(now)
        .bind(hash)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if res.rows_affected() == 1 {
            return Ok(TokenUse::Consumed);
        }
        let row = sqlx::query("SELECT expires_at, used_at FROM join_tokens WHERE hash = ?")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            None => TokenUse::Unknown,
            Some(r) => {
                let used: Option<i64> = r.try_get("used_at")?;
                if used.is_some() {
                    TokenUse::AlreadyUsed
                } else {
                    TokenUse::Expired
                }
            }
        })
    }

    async fn record_credential(&self, jti: &str, kept: CredentialKept) -> Result<bool, StoreError> {
        let res = sqlx::query(
            "INSERT OR IGNORE INTO used_credentials (jti, expires_at, token_exp) VALUES (?, ?, ?)",
        )
        .bind(jti)
        .bind(kept.until)
        .bind(kept.token_exp)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    async fn prune_credentials(&self, now: i64, batch: u32) -> Result<u64, StoreError> {
        self.prune_credentials_batch(now, batch).await
    }

    async fn prune_audit(&self, before: i64, batch: u32) -> Result<u64, StoreError> {
        self.prune_audit_batch(before, batch).await
    }

    async fn append_audits(&self, rows: &[NewAudit]) -> Result<Vec<i64>, StoreError> {
        self.append_audit_rows(rows).await
    }

    async fn list_audit(&self, after_id: i64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM audit WHERE id > ? ORDER BY id LIMIT ?")
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRecord {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    kind: r.try_get("kind")?,
                    decision: r.try_get("decision")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }
}

impl FromStr for AgentMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "join_token" => Ok(AgentMethod::JoinToken),
            "k8s" => Ok(AgentMethod::K8s),
            o => Err(format!("unknown agent method {o:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AttestedAgent;

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        (dir, s)
    }

    #[tokio::test]
    async fn join_token_is_consumed_exactly_once_under_concurrency() {
        let (_d, s) = store().await;
        s.insert_join_token("h", 2000, 1000).await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                s.consume_join_token("h", 1001).await.unwrap()
            }));
        }
        let mut consumed = 0;
        for t in tasks {
            match t.await.unwrap() {
                TokenUse::Consumed => consumed += 1,
                TokenUse::AlreadyUsed => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(consumed, 1);
        assert_eq!(
            s.consume_join_token("nope", 1001).await.unwrap(),
            TokenUse::Unknown
        );
        s.insert_join_token("old", 1000, 900).await.unwrap();
        assert_eq!(
            s.consume_join_token("old", 1001).await.unwrap(),
            TokenUse::Expired
        );
    }

    fn serial(text: &str) -> Serial {
        text.parse().unwrap()
    }

    fn agent(serial_text: &str) -> AgentRecord {
        AgentRecord::issued(
            AttestedAgent {
                id: "spiffe://td/sworn/agent/join/x".parse().unwrap(),
                method: AgentMethod::JoinToken,
                node_name: String::new(),
                node_uid: String::new(),
                pod_uid: String::new(),
                cluster: String::new(),
            },
            serial(serial_text),
            10,
            1,
        )
    }

    /// What every backend must do (see [`Store::upsert_agent`]): re-issuing an agent keeps
    /// its ban and its previous serial, which stays accepted until the new one is used.
    #[tokio::test]
    async fn upsert_rotates_the_previous_serial_and_keeps_the_ban_until_the_new_one_is_used() {
        let (_d, s) = store().await;
        let first = agent("01");
        s.upsert_agent(&first).await.unwrap();
        let id = first.id();
        assert_eq!(s.get_agent(id).await.unwrap().unwrap(), first);
        s.set_agent_banned(id, true).await.unwrap();

        s.upsert_agent(&agent("8002")).await.unwrap();
        let got = s.get_agent(id).await.unwrap().unwrap();
        assert_eq!(
            (got.serial, got.prev_serial, got.banned),
            (serial("8002"), Some(serial("01")), true)
        );
        s.mark_serial_used(id, &serial("01")).await.unwrap();
        assert_eq!(
            s.get_agent(id).await.unwrap().unwrap().prev_serial,
            Some(serial("01")),
            "using the previous serial does not retire it"
        );
        s.mark_serial_used(id, &serial("8002")).await.unwrap();
        assert_eq!(s.get_agent(id).await.unwrap().unwrap().prev_serial, None);
    }

    /// Serials stored before the one encoding (hex of the DER INTEGER content, with the sign
    /// octet) are rewritten by migration 0002, and nothing else in the row changes.
    #[tokio::test]
    async fn serials_stored_with_a_der_sign_octet_are_migrated_to_the_one_encoding() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        {
            let opts = SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true);
            let pool = SqlitePool::connect_with(opts).await.unwrap();
            let mut before = sqlx::migrate!("./migrations/sqlite");
            before.migrations = before.migrations[..1].to_vec().into();
            before.run(&pool).await.unwrap();
            for (id, serial, prev) in [
                (
                    "spiffe://td/sworn/agent/join/padded",
                    "0080ab",
                    Some("00ff01"),
                ),
                ("spiffe://td/sworn/agent/join/plain", "7f00", Some("0a")),
                ("spiffe://td/sworn/agent/join/new", "0090", None),
            ] {
                sqlx::query(
                    "INSERT INTO agents (id, method, node_name, node_uid, pod_uid, cluster, serial, prev_serial, expires_at, banned, attested_at)
                     VALUES (?, 'join_token', 'n', 'nu', 'p', 'c', ?, ?, 20, 1, 5)",
                )
                .bind(id)
                .bind(serial)
                .bind(prev)
                .execute(&pool)
                .await
                .unwrap();
            }
            pool.close().await;
        }
        let s = SqliteStore::open(&path).await.unwrap();
        let agents = s.list_agents().await.unwrap();
        let got: Vec<_> = agents
            .iter()
            .map(|a| {
                (
                    a.id().as_str().rsplit('/').next().unwrap(),
                    a.serial.to_string(),
                    a.prev_serial.as_ref().map(Serial::to_string),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("new", "90".to_string(), None),
                ("padded", "80ab".to_string(), Some("ff01".to_string())),
                ("plain", "7f00".to_string(), Some("0a".to_string())),
            ]
        );
        for a in &agents {
            assert_eq!(
                (
                    a.agent.method,
                    a.agent.node_name.as_str(),
                    a.agent.node_uid.as_str(),
                    a.agent.pod_uid.as_str(),
                    a.agent.cluster.as_str(),
                    a.expires_at,
                    a.banned,
                    a.attested_at
                ),
                (AgentMethod::JoinToken, "n", "nu", "p", "c", 20, true, 5),
                "{}",
                a.id()
            );
        }
    }

    /// A stored ID that is not in its one encoding (a database edited by hand) is a store
    /// error naming the row, for every read of it; it is never served, and never a panic.
    #[tokio::test]
    async fn stored_ids_that_do_not_parse_are_corrupt_rows_named_in_the_error() {
        const GOOD: &str = "0c4a1a6e-3b5d-4f7e-9a2b-1c2d3e4f5a6b";
        for (id, node, why) in [
            ("not-a-uuid", None, "entry id is not a uuid"),
            (
                "0C4A1A6E-3B5D-4F7E-9A2B-1C2D3E4F5A6B",
                None,
                "entry id in upper case",
            ),
            (GOOD, Some("spiffe://td/web"), "node is not an agent id"),
        ] {
            let (_d, s) = store().await;
            sqlx::query(
                "INSERT INTO entries (id, spiffe_id, selectors, node, dns_names, hint, created_at)
                 VALUES (?, 'spiffe://td/w', '[\"k8s:ns:a\"]', ?, '[]', '', 1)",
            )
            .bind(id)
            .bind(node)
            .execute(&s.pool)
            .await
            .unwrap();
            let err = s.list_entries().await.unwrap_err();
            assert!(
                matches!(&err, StoreError::Corrupt { what: "entry", id: row, .. } if row == id),
                "{why}: {err}"
            );
            if let Ok(parsed) = id.parse::<EntryId>() {
                let err = s.get_entry(&parsed).await.unwrap_err();
                assert!(err.to_string().contains(id), "{why}: {err}");
            }
        }

        let (_d, s) = store().await;
        let stored = "spiffe://td/not-an-agent";
        sqlx::query(
            "INSERT INTO agents (id, method, node_name, node_uid, pod_uid, cluster, serial, expires_at, banned, attested_at)
             VALUES (?, 'join_token', '', '', '', '', '01', 20, 0, 5)",
        )
        .bind(stored)
        .execute(&s.pool)
        .await
        .unwrap();
        let err = s.list_agents().await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { what: "agent", id, .. } if id == stored),
            "{err}"
        );
        assert!(err.to_string().contains("not an agent id"), "{err}");
    }

    #[tokio::test]
    async fn entries_read_back_with_their_ids() {
        let (_d, s) = store().await;
        let entry = Entry {
            id: EntryId::generate(),
            target: EntryTarget::Id("spiffe://td/w".into()),
            selectors: vec!["unix:uid:1".parse().unwrap()],
            node: Some("spiffe://td/sworn/agent/join/x".parse().unwrap()),
            ttl: None,
            dns_names: vec![],
            hint: String::new(),
            created_at: 1,
        };
        s.create_entry(&entry).await.unwrap();
        assert_eq!(s.get_entry(&entry.id).await.unwrap(), Some(entry.clone()));
        assert_eq!(
            s.list_entries().await.unwrap(),
            std::slice::from_ref(&entry)
        );
        let stored: String = sqlx::query_scalar("SELECT id FROM entries")
            .fetch_one(&s.pool)
            .await
            .unwrap();
        assert_eq!(stored, entry.id.to_string(), "written in the one encoding");
        assert_eq!(
            s.delete_entry(&entry.id, 2).await.unwrap(),
            Deleted::Entry(Box::new(entry.clone()))
        );
        assert_eq!(s.get_entry(&entry.id).await.unwrap(), None);
        assert_eq!(
            s.delete_entry(&entry.id, 3).await.unwrap(),
            Deleted::NotFound
        );
    }

    #[tokio::test]
    async fn credential_ids_are_single_use() {
        let (_d, s) = store().await;
        let kept = CredentialKept::for_token(Some(100), 0);
        assert!(s.record_credential("jti-1", kept).await.unwrap());
        assert!(!s.record_credential("jti-1", kept).await.unwrap());
    }
}
