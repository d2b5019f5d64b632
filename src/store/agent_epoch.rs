//! Epochs of the stored agent records, for copies kept outside the store (the agent API
//! keeps each connection's record for the life of its certificate, docs/architecture.md,
//! "Agent API limits").
//!
//! A backend bumps the epoch of an agent after every write to its record commits (a new
//! SVID, a retired serial), and every agent's epoch after a ban or unban, since a node ban
//! covers agents it does not name. A reader takes the epoch *before* it reads the record:
//! the copy is then current for as long as the epoch stays the same, and a write that lands
//! between the two reads only costs one more read. Epochs only grow, so equality is the test.
//! They live in the process: a writer outside it (another replica, a hand edit) is not seen.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use sworn_identity::AgentId;

/// Agents share a counter by the hash of their ID: a renewal costs the other agents of its
/// shard one read each, and the table stays a few hundred bytes whatever the fleet's size.
const SHARDS: usize = 64;

/// The epochs of one store's agent records.
#[derive(Debug)]
pub struct AgentEpochs {
    all: AtomicU64,
    shards: [AtomicU64; SHARDS],
}

impl Default for AgentEpochs {
    fn default() -> Self {
        AgentEpochs {
            all: AtomicU64::new(0),
            shards: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl AgentEpochs {
    fn shard(&self, id: &AgentId) -> &AtomicU64 {
        let mut h = DefaultHasher::new();
        id.as_str().hash(&mut h);
        // Truncating the hash on a 32-bit target still spreads agents over the shards.
        &self.shards[h.finish() as usize % SHARDS]
    }

    /// The epoch of `id`'s record now: the sum of two counters that only grow, so it moves
    /// whenever either does.
    pub fn of(&self, id: &AgentId) -> u64 {
        self.all
            .load(Ordering::SeqCst)
            .wrapping_add(self.shard(id).load(Ordering::SeqCst))
    }

    /// `id`'s record changed (call after the write committed).
    pub fn changed(&self, id: &AgentId) {
        self.shard(id).fetch_add(1, Ordering::SeqCst);
    }

    /// Records of agents not named may have changed (a ban): every epoch moves.
    pub fn changed_all(&self) {
        self.all.fetch_add(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_moves_the_agents_epoch_and_a_ban_moves_every_epoch() {
        let epochs = AgentEpochs::default();
        let a: AgentId = "spiffe://td/sworn/agent/join/a".parse().unwrap();
        let b: AgentId = "spiffe://td/sworn/agent/join/b".parse().unwrap();
        let (a0, b0) = (epochs.of(&a), epochs.of(&b));
        epochs.changed(&a);
        assert_ne!(epochs.of(&a), a0);
        let (a1, b1) = (epochs.of(&a), epochs.of(&b));
        epochs.changed_all();
        assert_ne!(epochs.of(&a), a1);
        assert_ne!(epochs.of(&b), b1);
        assert_ne!(epochs.of(&b), b0);
    }
}
