//! A test hook on the mint path: hold the mint of chosen SPIFFE IDs for a while, after the
//! server has verified the item and before it signs, so a test can show that one slow mint
//! holds up nothing else (docs/architecture.md, "The agent's SVID cache"); and hold whole
//! mint calls naming a chosen entry ID before the server looks at the agent's certificate,
//! until the test releases them, so a test can renew the agent's SVID while a call made
//! with the old one is on its way; and hold `Attest` calls once admitted, as a slow
//! TokenReview would, so a test can fill the attestation cap.
//!
//! No configuration key reaches it: it is empty unless code holding the in-process server
//! (`RunningServer::shared`) adds a stall, which only tests do.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use sworn_proto::agent::MintX509SvidsRequest;
use tokio::sync::watch;

/// The stalls, by SPIFFE ID. Empty in production.
#[derive(Debug)]
pub struct MintStalls {
    stalls: Mutex<HashMap<String, Duration>>,
    /// How many mints of each SPIFFE ID (or calls naming each held entry ID) are being held
    /// right now.
    holding: watch::Sender<HashMap<String, usize>>,
    /// Entry IDs whose mint calls wait before authentication.
    held_calls: watch::Sender<HashSet<String>>,
    /// Whether admitted `Attest` calls wait, and how many are waiting.
    attests: watch::Sender<(bool, usize)>,
}

impl Default for MintStalls {
    fn default() -> Self {
        MintStalls {
            stalls: Mutex::new(HashMap::new()),
            holding: watch::Sender::new(HashMap::new()),
            held_calls: watch::Sender::new(HashSet::new()),
            attests: watch::Sender::new((false, 0)),
        }
    }
}

impl MintStalls {
    /// Every later mint of `spiffe_id` waits `delay` before it is signed.
    pub fn stall(&self, spiffe_id: &str, delay: Duration) {
        self.stalls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(spiffe_id.to_owned(), delay);
    }

    /// Resolves once a mint of `spiffe_id` is being held.
    pub async fn held(&self, spiffe_id: &str) {
        let mut rx = self.holding.subscribe();
        // The sender lives in `self`, so waiting cannot fail while `self` is borrowed.
        let _ = rx.wait_for(|h| h.contains_key(spiffe_id)).await;
    }

    /// Whether a mint of `spiffe_id` is being held right now.
    pub fn holding(&self, spiffe_id: &str) -> bool {
        self.holding.borrow().contains_key(spiffe_id)
    }

    /// Every later mint call naming `entry_id` waits, before the agent is authenticated,
    /// until [`MintStalls::release_calls`]. [`MintStalls::held`] with the entry ID resolves
    /// once such a call is waiting.
    pub fn hold_calls(&self, entry_id: &str) {
        self.held_calls.send_modify(|h| {
            h.insert(entry_id.to_owned());
        });
    }

    /// Lets the calls held by [`MintStalls::hold_calls`] go on.
    pub fn release_calls(&self, entry_id: &str) {
        self.held_calls.send_modify(|h| {
            h.remove(entry_id);
        });
    }

    /// Waits while any of `entry_ids` is held (the mint call calls this first).
    pub async fn before_authenticating(&self, request: &MintX509SvidsRequest) {
        for entry_id in request.items.iter().map(|i| i.entry_id.as_str()) {
            if !self.held_calls.borrow().contains(entry_id) {
                continue;
            }
            self.holding.send_modify(|h| {
                *h.entry(entry_id.to_owned()).or_default() += 1;
            });
            let _held = Held {
                holding: &self.holding,
                spiffe_id: entry_id,
            };
            let mut rx = self.held_calls.subscribe();
            // The sender lives in `self`, so waiting cannot fail while `self` is borrowed.
            let _ = rx.wait_for(|h| !h.contains(entry_id)).await;
        }
    }

    /// Every later admitted `Attest` call waits until [`MintStalls::release_attests`].
    pub fn hold_attests(&self) {
        self.attests.send_modify(|(hold, _)| *hold = true);
    }

    /// Lets the `Attest` calls held by [`MintStalls::hold_attests`] go on.
    pub fn release_attests(&self) {
        self.attests.send_modify(|(hold, _)| *hold = false);
    }

    /// Resolves once `n` `Attest` calls are being held.
    pub async fn attests_held(&self, n: usize) {
        let mut rx = self.attests.subscribe();
        // The sender lives in `self`, so waiting cannot fail while `self` is borrowed.
        let _ = rx.wait_for(|(_, held)| *held >= n).await;
    }

    /// Waits while `Attest` calls are held (the attest call calls this once admitted).
    pub async fn before_attesting(&self) {
        if !self.attests.borrow().0 {
            return;
        }
        self.attests.send_modify(|(_, held)| *held += 1);
        // Counted down even if the call is cancelled while held.
        let _held = HeldAttest(&self.attests);
        let mut rx = self.attests.subscribe();
        // The sender lives in `self`, so waiting cannot fail while `self` is borrowed.
        let _ = rx.wait_for(|(hold, _)| !*hold).await;
    }

    /// Waits out the stall of `spiffe_id`, if there is one (the mint path calls this).
    pub async fn before_signing(&self, spiffe_id: &str) {
        let delay = self
            .stalls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(spiffe_id)
            .copied();
        let Some(delay) = delay else {
            return;
        };
        self.holding.send_modify(|h| {
            *h.entry(spiffe_id.to_owned()).or_default() += 1;
        });
        // Counted down even if the call is cancelled while held.
        let _held = Held {
            holding: &self.holding,
            spiffe_id,
        };
        tokio::time::sleep(delay).await;
    }
}

/// One held `Attest` call, counted while it lives.
struct HeldAttest<'a>(&'a watch::Sender<(bool, usize)>);

impl Drop for HeldAttest<'_> {
    fn drop(&mut self) {
        self.0
            .send_modify(|(_, held)| *held = held.saturating_sub(1));
    }
}

/// One held mint, counted while it lives.
struct Held<'a> {
    holding: &'a watch::Sender<HashMap<String, usize>>,
    spiffe_id: &'a str,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.holding.send_modify(|h| {
            if let Some(n) = h.get_mut(self.spiffe_id) {
                *n -= 1;
                if *n == 0 {
                    h.remove(self.spiffe_id);
                }
            }
        });
    }
}
