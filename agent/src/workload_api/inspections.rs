//! Turns to inspect a unix caller (docs/architecture.md, "Workload attestation"): at most one
//! inspection at a time per uid, and a global bound on inspections running at once.
//!
//! An inspection may hash an executable (bounded by `max_exe_hash_bytes` and the 2 s hash
//! cap), so a uid whose callers run huge binaries waits for its own turns and never holds
//! another uid's. The global bound only caps blocking threads; each turn is short. A turn is
//! a [`Turn`] and is freed when dropped; it moves into the blocking task, so a read the kernel
//! does not return from keeps its uid's turn, not anyone else's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sworn_caller::DigestCache;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Inspections running at once, all uids together.
pub const MAX_CONCURRENT_INSPECTIONS: usize = 16;

/// The digest cache and the turns to use it.
#[derive(Debug)]
pub struct Inspections {
    digests: DigestCache,
    global: Arc<Semaphore>,
    per_uid: Arc<Mutex<HashMap<u32, Arc<Semaphore>>>>,
}

/// One caller's turn: its uid's single permit and one of the global ones.
#[derive(Debug)]
pub struct Turn {
    uid: u32,
    uid_permit: Option<OwnedSemaphorePermit>,
    _global: OwnedSemaphorePermit,
    per_uid: Arc<Mutex<HashMap<u32, Arc<Semaphore>>>>,
}

impl Inspections {
    /// Turns for hashing through `digests`.
    pub fn new(digests: DigestCache) -> Self {
        Self {
            digests,
            global: Arc::new(Semaphore::new(MAX_CONCURRENT_INSPECTIONS)),
            per_uid: Arc::default(),
        }
    }

    /// The digest cache (its hit and miss counts feed the metrics).
    pub fn digests(&self) -> &DigestCache {
        &self.digests
    }

    /// Waits for `uid`'s turn, then for a global one. `None` once the agent is closing.
    pub async fn turn(&self, uid: u32) -> Option<Turn> {
        let sem = {
            let mut map = self.per_uid.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(uid)
                .or_insert_with(|| Arc::new(Semaphore::new(1)))
                .clone()
        };
        let uid_permit = sem.acquire_owned().await.ok()?;
        let global = self.global.clone().acquire_owned().await.ok()?;
        Some(Turn {
            uid,
            uid_permit: Some(uid_permit),
            _global: global,
            per_uid: self.per_uid.clone(),
        })
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut map = self.per_uid.lock().unwrap_or_else(|p| p.into_inner());
        drop(self.uid_permit.take());
        // Forget the uid's semaphore once nobody holds or waits for it: the map holds one
        // reference, and every waiter another (taken under this lock).
        if map
            .get(&self.uid)
            .is_some_and(|s| Arc::strong_count(s) == 1)
        {
            map.remove(&self.uid);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn one_turn_per_uid_and_other_uids_do_not_wait() {
        let i = Inspections::new(DigestCache::default());
        let first = i.turn(1000).await.unwrap();
        // Another uid gets its turn at once.
        let other = tokio::time::timeout(Duration::from_secs(1), i.turn(1001))
            .await
            .expect("uid 1001 is not held up by uid 1000");
        drop(other);
        // The same uid waits until the first turn ends.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), i.turn(1000))
                .await
                .is_err()
        );
        drop(first);
        let again = tokio::time::timeout(Duration::from_secs(1), i.turn(1000))
            .await
            .expect("the turn is free again");
        drop(again);
        assert!(i.per_uid.lock().unwrap().is_empty(), "no uid is remembered");
    }
}
