//! Retention: the audit table keeps `audit_retention` of history, used credential IDs
//! are forgotten once their token can no longer be accepted (docs/architecture.md,
//! "Storage") and deleted entries' tombstones after [`TOMBSTONE_KEEP`] ("Sync"). A background
//! task prunes them in batches of [`BATCH`] rows, yielding between
//! batches, so a large backlog never holds the database for long. It uses the [`Store`]
//! trait only, so every backend gets it.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Store, StoreError};
use crate::clock::{Clock, unix_now};

/// Rows deleted per statement.
pub const BATCH: u32 = 1000;

/// How often the task looks for rows to prune.
pub const PERIOD: Duration = Duration::from_secs(60);

/// How long a deleted entry's tombstone is kept for agents whose Sync stream is down: one that
/// comes back later gets its full state instead of a delta.
pub const TOMBSTONE_KEEP: Duration = Duration::from_secs(3600);

/// What one pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Audit events older than the retention.
    pub audit: u64,
    /// Credential IDs past their keep time.
    pub credentials: u64,
    /// Tombstones of entries deleted more than [`TOMBSTONE_KEEP`] ago.
    pub tombstones: u64,
    /// Statements it took.
    pub batches: u32,
}

/// One pass at `now` (unix seconds): every audit event older than `retention` and every
/// credential ID past its keep time and every tombstone older than [`TOMBSTONE_KEEP`],
/// [`BATCH`] rows per statement.
pub async fn prune_once(
    store: &dyn Store,
    now: i64,
    retention: Duration,
) -> Result<Pruned, StoreError> {
    let cutoff = now.saturating_sub(i64::try_from(retention.as_secs()).unwrap_or(i64::MAX));
    let mut pruned = Pruned::default();
    loop {
        let n = store.prune_audit(cutoff, BATCH).await?;
        pruned.audit += n;
        pruned.batches += 1;
        if n < u64::from(BATCH) {
            break;
        }
        tokio::task::yield_now().await;
    }
    loop {
        let n = store.prune_credentials(now, BATCH).await?;
        pruned.credentials += n;
        pruned.batches += 1;
        if n < u64::from(BATCH) {
            break;
        }
        tokio::task::yield_now().await;
    }
    let tombstones_before =
        now.saturating_sub(i64::try_from(TOMBSTONE_KEEP.as_secs()).unwrap_or(0));
    loop {
        let n = store
            .prune_entry_tombstones(tombstones_before, BATCH)
            .await?;
        pruned.tombstones += n;
        pruned.batches += 1;
        if n < u64::from(BATCH) {
            break;
        }
        tokio::task::yield_now().await;
    }
    Ok(pruned)
}

/// Prunes at start and then every [`PERIOD`] of `clock` (or of monotonic time, whichever
/// comes first) until `shutdown`.
pub async fn run(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    retention: Duration,
    shutdown: CancellationToken,
) {
    loop {
        match prune_once(store.as_ref(), unix_now(clock.as_ref()), retention).await {
            Ok(p) if p.audit + p.credentials + p.tombstones > 0 => tracing::info!(
                audit = p.audit,
                credentials = p.credentials,
                tombstones = p.tombstones,
                batches = p.batches,
                "pruned the datastore"
            ),
            Ok(_) => {}
            // The next pass retries; nothing depends on a pass succeeding.
            Err(error) => tracing::warn!(%error, "cannot prune the datastore"),
        }
        let next = clock.now() + PERIOD;
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = clock.sleep_until(next) => {}
            () = tokio::time::sleep(PERIOD) => {}
        }
    }
}
