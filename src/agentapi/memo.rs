//! What an agent API connection remembers of the agent behind it between calls
//! (docs/architecture.md, "Agent API limits"): the record its certificate authenticated
//! with, and the store's epoch of that record when it was read
//! ([`crate::store::Store::agent_epoch`]). [`super::conn`] keeps one per connection;
//! [`super::auth`] fills and reads it.

use std::sync::Mutex;

use sworn_identity::Serial;

use crate::store::AgentRecord;

/// One connection's memory of its agent (empty until its first authenticated call).
#[derive(Debug, Default)]
pub struct AgentMemo(Mutex<Option<Remembered>>);

/// A record read for the certificate with `serial`, at `epoch`.
#[derive(Debug)]
pub struct Remembered {
    /// The serial of the certificate it authenticated.
    pub serial: Serial,
    /// The store's epoch of the record, taken before the read.
    pub epoch: u64,
    /// The record.
    pub record: AgentRecord,
}

impl AgentMemo {
    /// The record remembered for `serial`, if it was read at `epoch` (nothing changed since).
    pub fn get(&self, serial: &Serial, epoch: u64) -> Option<AgentRecord> {
        let memo = self.0.lock().unwrap_or_else(|p| p.into_inner());
        memo.as_ref()
            .filter(|m| &m.serial == serial && m.epoch == epoch)
            .map(|m| m.record.clone())
    }

    /// Remembers `remembered` in place of what was there.
    pub fn put(&self, remembered: Remembered) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(remembered);
    }
}
