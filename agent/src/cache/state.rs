//! The cache's state behind its one mutex: SVID slots, remembered denials and the mints in
//! flight, each by [`Key`] (docs/architecture.md, "The agent's SVID cache").
//!
//! Every transition here is synchronous: the mutex is never held across an await, so a mint
//! that stalls on the network holds up nothing but the callers of its own key. A key has at
//! most one mint in flight; everyone else who needs it waits on that flight's outcome.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sworn_identity::outcome::Outcome;
use tokio::sync::watch;

use super::mint::{MintOutcome, retry_backoff};
use super::scope::Key;
use super::svid::WorkloadSvid;
use crate::backoff::Backoff;

/// How long a server refusal for a key is remembered before asking again, so open streams
/// re-evaluating on every change do not hammer the server with doomed mints.
pub const DENIAL_MEMORY: Duration = Duration::from_secs(10);

/// A held SVID and its schedule.
struct Slot {
    svid: Arc<WorkloadSvid>,
    rotate_at: SystemTime,
    /// Retry schedule while the server answers `Unavailable`; reset by a new SVID.
    retry: Backoff,
    /// A caller was handed this SVID since it was issued.
    served: bool,
}

/// How a mint ended, as the callers waiting on it learn it.
#[derive(Debug, Clone)]
pub enum Ended {
    /// The server issued it; it is in the cache.
    Issued(Arc<WorkloadSvid>),
    /// The server denied it (remembered for [`DENIAL_MEMORY`]).
    Denied,
    /// The server or the call failed; nothing changed but the retry schedule.
    Unavailable(String),
    /// The workload or the entry went away while the mint was in flight; its result was
    /// discarded.
    Void,
}

struct Flight {
    id: u64,
    done: watch::Sender<Option<Ended>>,
}

/// What a caller who needs a key does next.
#[derive(Debug)]
pub enum Step {
    /// A valid SVID is cached.
    Hit(Arc<WorkloadSvid>),
    /// The server denied this key a moment ago.
    Refused,
    /// Another caller's mint of this key is in flight: wait for its end (`None` until then;
    /// the sender is dropped without an end if that caller gave up).
    Wait(watch::Receiver<Option<Ended>>),
    /// This caller mints the key, as flight `id`, and waits for its end like any other.
    Claim(u64, watch::Receiver<Option<Ended>>),
}

/// What finishing a flight did.
#[derive(Debug)]
pub struct Finished {
    /// The end, as the flight's waiters see it.
    pub ended: Ended,
    /// Whether the set of held SVIDs changed.
    pub changed: bool,
    /// The retry delay scheduled after `Unavailable`, for a key that still holds an SVID.
    pub retry_in: Option<Duration>,
}

/// Slots, denials and flights.
#[derive(Default)]
pub struct State {
    slots: HashMap<Key, Slot>,
    denied: HashMap<Key, Instant>,
    flights: HashMap<Key, Flight>,
    next_flight: u64,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("slots", &self.slots.len())
            .field("denied", &self.denied.len())
            .field("flights", &self.flights.len())
            .finish()
    }
}

impl State {
    /// SVIDs held.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// The next step for a caller who needs `key` now. A hit marks the SVID served.
    pub fn step(&mut self, key: &Key, now: SystemTime, clock: Instant) -> Step {
        if let Some(slot) = self.slots.get_mut(key)
            && slot.svid.not_after > now
        {
            slot.served = true;
            return Step::Hit(slot.svid.clone());
        }
        if self
            .denied
            .get(key)
            .is_some_and(|at| clock.duration_since(*at) < DENIAL_MEMORY)
        {
            return Step::Refused;
        }
        if let Some(flight) = self.flights.get(key) {
            return Step::Wait(flight.done.subscribe());
        }
        let (id, ended) = self.claim(key);
        Step::Claim(id, ended)
    }

    /// Records that a caller was handed `key`'s SVID (the end of a flight it waited on).
    pub fn mark_served(&mut self, key: &Key) {
        if let Some(slot) = self.slots.get_mut(key) {
            slot.served = true;
        }
    }

    fn claim(&mut self, key: &Key) -> (u64, watch::Receiver<Option<Ended>>) {
        self.next_flight = self.next_flight.wrapping_add(1);
        let id = self.next_flight;
        let (done, ended) = watch::channel(None);
        self.flights.insert(key.clone(), Flight { id, done });
        (id, ended)
    }

    /// Whether flight `id` of `key` is still the one in flight (not ended, voided or
    /// abandoned).
    pub fn is_flight(&self, key: &Key, id: u64) -> bool {
        self.flights.get(key).is_some_and(|f| f.id == id)
    }

    /// Claims `key` for rotation unless a mint of it is already in flight.
    pub fn claim_idle(&mut self, key: &Key) -> Option<u64> {
        (!self.flights.contains_key(key)).then(|| self.claim(key).0)
    }

    /// Gives up flight `id` of `key` without an end (its caller went away): the waiters try
    /// again, one of them as the new owner.
    pub fn abandon(&mut self, key: &Key, id: u64) {
        if self.flights.get(key).is_some_and(|f| f.id == id) {
            self.flights.remove(key);
        }
    }

    /// Applies the outcome of flight `id` of `key`. `Issued` replaces the slot; `Denied` drops
    /// it and is remembered; `Unavailable` keeps it and schedules its retry. A flight voided
    /// in the meantime, or a workload that is no longer `live`, keeps nothing.
    pub fn finish(
        &mut self,
        key: &Key,
        id: u64,
        outcome: MintOutcome,
        live: bool,
        now: SystemTime,
        clock: Instant,
    ) -> Finished {
        let void = Finished {
            ended: Ended::Void,
            changed: false,
            retry_in: None,
        };
        match self.flights.get(key) {
            Some(f) if f.id == id => {}
            _ => return void,
        }
        let Some(flight) = self.flights.remove(key) else {
            return void;
        };
        let finished = if live {
            self.apply(key, outcome, now, clock)
        } else {
            Finished {
                changed: self.slots.remove(key).is_some(),
                ..void
            }
        };
        flight.done.send_replace(Some(finished.ended.clone()));
        finished
    }

    fn apply(
        &mut self,
        key: &Key,
        outcome: MintOutcome,
        now: SystemTime,
        clock: Instant,
    ) -> Finished {
        match outcome {
            Outcome::Issued(svid) => {
                // Count the lifetime from receipt: the server backdates `notBefore`, which
                // would put half-life of a short-lived SVID in the past.
                let issued = svid.not_before.max(now);
                let life = svid.not_after.duration_since(issued).unwrap_or_default();
                let svid = Arc::new(svid);
                self.slots.insert(
                    key.clone(),
                    Slot {
                        rotate_at: crate::cert::renew_at(issued, svid.not_after),
                        retry: retry_backoff(life),
                        svid: svid.clone(),
                        served: false,
                    },
                );
                self.denied.remove(key);
                Finished {
                    ended: Ended::Issued(svid),
                    changed: true,
                    retry_in: None,
                }
            }
            Outcome::Denied(_) => {
                self.denied.insert(key.clone(), clock);
                Finished {
                    ended: Ended::Denied,
                    changed: self.slots.remove(key).is_some(),
                    retry_in: None,
                }
            }
            Outcome::Unavailable(u) => {
                let retry_in = self.slots.get_mut(key).map(|slot| {
                    let delay = slot.retry.next_delay();
                    slot.rotate_at = now + delay;
                    delay
                });
                Finished {
                    ended: Ended::Unavailable(u.reason),
                    changed: false,
                    retry_in,
                }
            }
        }
    }

    /// Drops every slot, denial and flight whose key matches; flights end `Void`. Returns the
    /// keys of the SVIDs and flights that went (a key with both, twice).
    pub fn drop_where(&mut self, doomed: impl Fn(&Key) -> bool) -> Vec<Key> {
        let mut gone = Vec::new();
        self.slots.retain(|k, _| {
            let keep = !doomed(k);
            if !keep {
                gone.push(k.clone());
            }
            keep
        });
        self.denied.retain(|k, _| !doomed(k));
        self.flights.retain(|k, f| {
            let keep = !doomed(k);
            if !keep {
                f.done.send_replace(Some(Ended::Void));
                gone.push(k.clone());
            }
            keep
        });
        gone
    }

    /// Drops SVIDs past `notAfter`; returns their keys.
    pub fn drop_expired(&mut self, now: SystemTime) -> Vec<Key> {
        let mut gone = Vec::new();
        self.slots.retain(|k, s| {
            let keep = s.svid.not_after > now;
            if !keep {
                gone.push(k.clone());
            }
            keep
        });
        gone
    }

    /// Keys due for rotation with no mint in flight, and whether each was served.
    pub fn due(&self, now: SystemTime) -> Vec<(Key, bool)> {
        self.slots
            .iter()
            .filter(|(k, s)| s.rotate_at <= now && !self.flights.contains_key(*k))
            .map(|(k, s)| (k.clone(), s.served))
            .collect()
    }

    /// The next time rotation has something to do: a slot falls due (unless its mint is in
    /// flight) or expires.
    pub fn next_wake(&self) -> Option<SystemTime> {
        self.slots
            .iter()
            .map(|(k, s)| {
                if self.flights.contains_key(k) {
                    s.svid.not_after
                } else {
                    s.rotate_at.min(s.svid.not_after)
                }
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use sworn_identity::outcome::{Denial, Unavailable};
    use sworn_identity::{EntryId, Factor, Grant};
    use sworn_proto::agent::UnixEvidence;

    use super::*;
    use crate::cache::scope::Scope;

    /// The key of the entry named `entry` (see [`entry_id`]) for `uid`.
    fn key(uid: u32, entry: &str) -> Key {
        Key::new(
            Scope::Unix(UnixEvidence {
                uid,
                ..Default::default()
            }),
            entry_id(entry).into(),
        )
    }

    /// An entry ID spelled from `name` (at most six bytes): distinct names, distinct entries.
    fn entry_id(name: &str) -> EntryId {
        assert!(name.len() <= 6, "{name}");
        let n = name.bytes().fold(0u64, |n, b| (n << 8) | u64::from(b));
        format!("00000000-0000-4000-8000-{n:012x}").parse().unwrap()
    }

    fn svid(life: Duration) -> WorkloadSvid {
        let now = SystemTime::now();
        WorkloadSvid {
            spiffe_id: "spiffe://example.org/w".into(),
            entry_id: Grant::Entry(entry_id("e")),
            chain: Vec::new(),
            key: Default::default(),
            hint: String::new(),
            not_before: now,
            not_after: now + life,
        }
    }

    fn claim(state: &mut State, key: &Key) -> u64 {
        match state.step(key, SystemTime::now(), Instant::now()) {
            Step::Claim(id, _) => id,
            other => panic!("expected a claim, got {other:?}"),
        }
    }

    fn finish(state: &mut State, key: &Key, id: u64, outcome: MintOutcome) -> Finished {
        state.finish(key, id, outcome, true, SystemTime::now(), Instant::now())
    }

    fn issue(state: &mut State, key: &Key, id: u64, life: Duration) -> Finished {
        finish(state, key, id, Outcome::Issued(svid(life)))
    }

    fn wait(state: &mut State, key: &Key) -> watch::Receiver<Option<Ended>> {
        match state.step(key, SystemTime::now(), Instant::now()) {
            Step::Wait(waiter) => waiter,
            other => panic!("a second caller of the same key waits, got {other:?}"),
        }
    }

    #[test]
    fn one_flight_per_key_and_keys_are_independent() {
        let mut state = State::default();
        let (a, b) = (key(1, "a"), key(1, "b"));
        let id = claim(&mut state, &a);
        let mut waiter = wait(&mut state, &a);
        // Another key, or the same entry for another workload, never waits on it.
        claim(&mut state, &b);
        claim(&mut state, &key(2, "a"));
        let f = issue(&mut state, &a, id, Duration::from_secs(60));
        assert!(f.changed);
        assert!(matches!(
            *waiter.borrow_and_update(),
            Some(Ended::Issued(_))
        ));
        assert!(matches!(
            state.step(&a, SystemTime::now(), Instant::now()),
            Step::Hit(_)
        ));
    }

    #[test]
    fn a_denial_drops_the_svid_and_is_remembered_an_outage_keeps_it() {
        let mut state = State::default();
        let a = key(1, "a");
        let id = claim(&mut state, &a);
        issue(&mut state, &a, id, Duration::from_secs(60));
        let id = state.claim_idle(&a).unwrap();
        let f = finish(
            &mut state,
            &a,
            id,
            Outcome::Unavailable(Unavailable::new(Factor::Store, "locked")),
        );
        assert!(!f.changed && f.retry_in.is_some(), "{f:?}");
        assert_eq!(state.len(), 1);
        let id = state.claim_idle(&a).unwrap();
        let f = finish(
            &mut state,
            &a,
            id,
            Outcome::Denied(Denial::new(Factor::Policy, "no")),
        );
        assert!(f.changed);
        assert_eq!(state.len(), 0);
        assert!(matches!(
            state.step(&a, SystemTime::now(), Instant::now()),
            Step::Refused
        ));
        let later = Instant::now() + DENIAL_MEMORY;
        assert!(matches!(
            state.step(&a, SystemTime::now(), later),
            Step::Claim(..)
        ));
    }

    #[test]
    fn a_dropped_workload_voids_its_flights_and_discards_their_result() {
        let mut state = State::default();
        let a = key(1, "a");
        let id = claim(&mut state, &a);
        let mut waiter = wait(&mut state, &a);
        assert_eq!(state.drop_where(|k| k.scope == a.scope).len(), 1);
        assert!(matches!(*waiter.borrow_and_update(), Some(Ended::Void)));
        let f = issue(&mut state, &a, id, Duration::from_secs(60));
        assert!(matches!(f.ended, Ended::Void) && !f.changed);
        assert_eq!(state.len(), 0);
        // A result for a workload that is gone is not kept either.
        let id = claim(&mut state, &a);
        let f = state.finish(
            &a,
            id,
            Outcome::Issued(svid(Duration::from_secs(60))),
            false,
            SystemTime::now(),
            Instant::now(),
        );
        assert!(matches!(f.ended, Ended::Void));
        assert_eq!(state.len(), 0);
    }

    #[test]
    fn an_abandoned_flight_lets_the_next_caller_claim() {
        let mut state = State::default();
        let a = key(1, "a");
        let id = claim(&mut state, &a);
        let waiter = wait(&mut state, &a);
        state.abandon(&a, id);
        assert!(waiter.has_changed().is_err(), "the sender is gone");
        claim(&mut state, &a);
    }

    #[test]
    fn due_slots_in_flight_are_not_due_again() {
        let mut state = State::default();
        let a = key(1, "a");
        let id = claim(&mut state, &a);
        issue(&mut state, &a, id, Duration::from_secs(2));
        let later = SystemTime::now() + Duration::from_millis(1500);
        assert_eq!(state.due(later).len(), 1);
        assert!(state.next_wake().unwrap() < later);
        state.claim_idle(&a).unwrap();
        assert!(state.due(later).is_empty());
        assert!(
            state.next_wake().unwrap() > later,
            "only the expiry is left"
        );
        assert_eq!(state.drop_expired(later + Duration::from_secs(1)).len(), 1);
    }
}
