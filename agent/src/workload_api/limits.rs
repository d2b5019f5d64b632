//! Per-caller limits on Workload API connections and streams.
//!
//! One workload must not be able to exhaust the agent's fds or memory, nor another workload's
//! share (docs/architecture.md, "Workload API connections"). Connections and streams are
//! counted per [`Tenant`]: the pod in Kubernetes mode, where pods commonly share uids (0, 1000,
//! 65532), and the uid in unix mode. Connections are also capped in total, streams per
//! process. Counts live in a map and are released by dropping the permit, so a client that
//! disconnects in any state frees its share.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use sworn_identity::PodUid;

/// Connections one tenant may hold open.
pub const MAX_CONNECTIONS_PER_TENANT: usize = 128;
pub use crate::config::DEFAULT_MAX_CONNECTIONS;
/// Concurrent streams one tenant may hold.
pub const MAX_STREAMS_PER_TENANT: usize = 64;
/// Concurrent streams one process may hold.
pub const MAX_STREAMS_PER_PID: usize = 16;

/// Whose share a connection or stream counts against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Tenant {
    /// Kubernetes mode: the caller's pod, from its cgroup.
    Pod(PodUid),
    /// Unix mode, or a Kubernetes-mode caller outside any pod: its uid.
    Uid(u32),
    /// The caller could not be captured at accept; all such connections share one share.
    Unknown,
}

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
    connections_by_tenant: Counter<Tenant>,
    connections_total: Counter<()>,
    streams_by_tenant: Counter<Tenant>,
    streams_by_pid: Counter<u32>,
}

impl Default for Limits {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_CONNECTIONS)
    }
}

/// Holds one connection slot until dropped.
#[derive(Debug)]
pub struct ConnectionPermit {
    limits: Arc<Limits>,
    tenant: Tenant,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.limits.connections_by_tenant.remove(&self.tenant);
        self.limits.connections_total.remove(&());
    }
}

/// Holds one stream slot until dropped.
#[derive(Debug)]
pub struct StreamPermit {
    limits: Arc<Limits>,
    tenant: Tenant,
    pid: u32,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        self.limits.streams_by_tenant.remove(&self.tenant);
        self.limits.streams_by_pid.remove(&self.pid);
    }
}

impl Limits {
    /// At most `max_connections` connections in total.
    pub fn new(max_connections: usize) -> Self {
        Self {
            connections_by_tenant: Counter::new(MAX_CONNECTIONS_PER_TENANT),
            connections_total: Counter::new(max_connections),
            streams_by_tenant: Counter::new(MAX_STREAMS_PER_TENANT),
            streams_by_pid: Counter::new(MAX_STREAMS_PER_PID),
        }
    }

    /// A connection slot for `tenant`, or `None` if over a limit.
    pub fn connection(self: &Arc<Self>, tenant: Tenant) -> Option<ConnectionPermit> {
        if !self.connections_total.try_add(&()) {
            return None;
        }
        if !self.connections_by_tenant.try_add(&tenant) {
            self.connections_total.remove(&());
            return None;
        }
        Some(ConnectionPermit {
            limits: self.clone(),
            tenant,
        })
    }

    /// A stream slot for the process `pid` of `tenant`, or `None` if over a limit.
    pub fn stream(self: &Arc<Self>, tenant: Tenant, pid: u32) -> Option<StreamPermit> {
        if !self.streams_by_tenant.try_add(&tenant) {
            return None;
        }
        if !self.streams_by_pid.try_add(&pid) {
            self.streams_by_tenant.remove(&tenant);
            return None;
        }
        Some(StreamPermit {
            limits: self.clone(),
            tenant,
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
        let t = Tenant::Uid(1000);
        let held: Vec<_> = (0..MAX_STREAMS_PER_PID)
            .filter_map(|_| limits.stream(t.clone(), 42))
            .collect();
        assert_eq!(held.len(), MAX_STREAMS_PER_PID);
        assert!(limits.stream(t.clone(), 42).is_none());
        assert!(limits.stream(t.clone(), 43).is_some());
        drop(held);
        assert!(limits.stream(t, 42).is_some());
    }

    #[test]
    fn the_total_cap_is_the_configured_one() {
        let limits = Arc::new(Limits::new(3));
        let held: Vec<_> = (0..3u32)
            .filter_map(|uid| limits.connection(Tenant::Uid(uid)))
            .collect();
        assert_eq!(held.len(), 3);
        assert!(limits.connection(Tenant::Uid(99)).is_none());
    }
}
