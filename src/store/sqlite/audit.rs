//! The SQLite side of the audit log's group commit (docs/architecture.md, "Outcomes"): the
//! rows of one decision batch (a mint request's items) go in one transaction, so one
//! `synchronous=FULL` commit, and one fsync of the WAL, acknowledges them all.

use super::SqliteStore;
use crate::store::{NewAudit, StoreError};

impl SqliteStore {
    /// [`crate::store::Store::append_audits`]: every row or none.
    pub(super) async fn append_audit_rows(
        &self,
        rows: &[NewAudit],
    ) -> Result<Vec<i64>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut ids = Vec::with_capacity(rows.len());
        for row in rows {
            let res =
                sqlx::query("INSERT INTO audit (at, kind, decision, detail) VALUES (?, ?, ?, ?)")
                    .bind(row.at)
                    .bind(&row.kind)
                    .bind(&row.decision)
                    .bind(&row.detail)
                    .execute(&mut *tx)
                    .await?;
            ids.push(res.last_insert_rowid());
        }
        // Dropping an uncommitted transaction rolls it back: an error above stores nothing.
        tx.commit().await?;
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn row(detail: &str) -> NewAudit {
        NewAudit {
            at: 1,
            kind: "mint".into(),
            decision: "allow".into(),
            detail: detail.into(),
        }
    }

    #[tokio::test]
    async fn a_batch_whose_one_row_is_refused_stores_none_of_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        let ids = s.append_audits(&[row("{}"), row("{}")]).await.unwrap();
        assert_eq!(ids.len(), 2);
        assert!(ids[0] < ids[1]);
        sqlx::query(
            "CREATE TRIGGER refuse BEFORE INSERT ON audit WHEN NEW.detail = '{\"bad\":1}'
             BEGIN SELECT RAISE(ABORT, 'refused'); END",
        )
        .execute(&s.pool)
        .await
        .unwrap();
        s.append_audits(&[row("{}"), row("{\"bad\":1}"), row("{}")])
            .await
            .unwrap_err();
        assert_eq!(s.list_audit(0, 100).await.unwrap().len(), 2);
    }
}
