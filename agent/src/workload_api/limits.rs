//! Per-caller limits on Workload API connections and streams.
//!
//! One local user must not be able to exhaust the agent's fds or memory: connections are
//! capped per uid and in total, streams per uid and per pid. Counts live in a map and are
//! released by dropping the permit, so a client that disconnects in any state frees its share.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// Connections one uid may hold open.
pub const MAX_CONNECTIONS_PER_UID: usize = 128;
/// Connections in total (including callers whose capture failed).
pub const MAX_CONNECTIONS: usize = 1024;
/// Concurrent streams one uid may hold.
pub const MAX_STREAMS_PER_UID: usize = 64;
/// Concurrent streams one process may hold.
pub const MAX_STREAMS_PER_PID: usize = 16;

#[derive(Debug)]
struct Counter<K: Hash + Eq> {
    limit: usize,
    counts: Mutex<HashMap<K, usize>>,
}

impl<K: Hash + Eq + Clone> Counter<K> {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            counts: Mutex::new(HashMap::new()),
        }
    }

    fn try_add(&self, key: &K) -> bool {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(key.clone()).or_insert(0);
        if *n >= self.limit {
            return false;
        }
        *n += 1;
        true
    }

    fn remove(&self, key: &K) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(key);
            }
        }
    }
}

/// The limits of one Workload API server.
#[derive(Debug)]
pub struct Limits {
    connections_by_uid: Counter<Option<u32>>,
    connections_total: Counter<()>,
    streams_by_uid: Counter<u32>,
    streams_by_pid: Counter<u32>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connections_by_uid: Counter::new(MAX_CONNECTIONS_PER_UID),
            connections_total: Counter::new(MAX_CONNECTIONS),
            streams_by_uid: Counter::new(MAX_STREAMS_PER_UID),
            streams_by_pid: Counter::new(MAX_STREAMS_PER_PID),
        }
    }
}

/// Holds one connection slot until dropped.
#[derive(Debug)]
pub struct ConnectionPermit {
    limits: Arc<Limits>,
    uid: Option<u32>,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.limits.connections_by_uid.remove(&self.uid);
        self.limits.connections_total.remove(&());
    }
}

/// Holds one stream slot until dropped.
#[derive(Debug)]
pub struct StreamPermit {
    limits: Arc<Limits>,
    uid: u32,
    pid: u32,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        self.limits.streams_by_uid.remove(&self.uid);
        self.limits.streams_by_pid.remove(&self.pid);
    }
}

impl Limits {
    /// A connection slot for `uid` (`None`: capture failed), or `None` if over a limit.
    pub fn connection(self: &Arc<Self>, uid: Option<u32>) -> Option<ConnectionPermit> {
        if !self.connections_total.try_add(&()) {
            return None;
        }
        if !self.connections_by_uid.try_add(&uid) {
            self.connections_total.remove(&());
            return None;
        }
        Some(ConnectionPermit {
            limits: self.clone(),
            uid,
        })
    }

    /// A stream slot for the process `pid` of `uid`, or `None` if over a limit.
    pub fn stream(self: &Arc<Self>, uid: u32, pid: u32) -> Option<StreamPermit> {
        if !self.streams_by_uid.try_add(&uid) {
            return None;
        }
        if !self.streams_by_pid.try_add(&pid) {
            self.streams_by_uid.remove(&uid);
            return None;
        }
        Some(StreamPermit {
            limits: self.clone(),
            uid,
            pid,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_slots_are_released_on_drop() {
        let limits = Arc::new(Limits::default());
        let held: Vec<_> = (0..MAX_STREAMS_PER_PID)
            .filter_map(|_| limits.stream(1000, 42))
            .collect();
        assert_eq!(held.len(), MAX_STREAMS_PER_PID);
        assert!(limits.stream(1000, 42).is_none());
        assert!(limits.stream(1000, 43).is_some());
        drop(held);
        assert!(limits.stream(1000, 42).is_some());
    }
}
