//! The certificate authority: its configuration, its state, the trust bundle and the bundle
//! watch channel (docs/architecture.md, "The CA"). Opening it is in `open.rs`, minting in
//! `mint.rs`, rotation in `rotation.rs`.
//!
//! Invariants:
//! - in-memory state changes only after the matching files and `state.json` are durable;
//! - the bundle published on the watch channel always equals what [`CertificateAuthority::bundle`]
//!   returns.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime};

use spiffe::TrustDomain;
use tokio::sync::watch;

use super::authorities::Authorities;
use super::bundle::Bundle;
use super::error::{CaError, MintError};
use super::keystore::KeyStore;
use super::upstream::{Upstream, UpstreamConfig};
use crate::clock::Clock;

/// Default validity of a CA generation (docs/architecture.md, "The CA").
pub const DEFAULT_CA_TTL: Duration = Duration::from_secs(24 * 3600);

/// What the CA needs from the server configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaConfig {
    /// The trust domain all SVIDs are minted in.
    pub trust_domain: TrustDomain,
    /// Validity of each CA generation. Default [`DEFAULT_CA_TTL`] (24 h): long enough to ride
    /// out a day of outage, short enough that a stolen key is short-lived.
    pub ca_ttl: Duration,
    /// Run as an intermediate under this upstream CA instead of a self-signed root.
    pub upstream: Option<UpstreamConfig>,
}

impl CaConfig {
    /// A self-signed CA with the default TTL.
    pub fn new(trust_domain: TrustDomain) -> Self {
        CaConfig {
            trust_domain,
            ca_ttl: DEFAULT_CA_TTL,
            upstream: None,
        }
    }
}

/// The server's certificate authority. Shared behind an `Arc`; every method takes `&self`.
///
/// Methods that touch files (`load_or_init`, `rotate_if_due`) block on I/O; call them from
/// `spawn_blocking` or at startup.
#[derive(Debug)]
pub struct CertificateAuthority {
    pub(crate) trust_domain: TrustDomain,
    pub(crate) ca_ttl: Duration,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) store: KeyStore,
    pub(crate) upstream: Option<Upstream>,
    pub(crate) authorities: RwLock<Authorities>,
    pub(crate) bundle_tx: watch::Sender<Bundle>,
}

/// A snapshot for health checks and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaStatus {
    /// Generation number of the signing CA.
    pub active_generation: u64,
    /// NotAfter of the signing CA (caps every SVID's NotAfter).
    pub active_not_after: SystemTime,
    /// Generation published and waiting to sign, if any.
    pub prepared_generation: Option<u64>,
    /// Number of roots in the bundle.
    pub bundle_roots: usize,
    /// Sequence number of the bundle.
    pub bundle_sequence: u64,
    /// True when running under an upstream CA.
    pub upstream: bool,
}

impl CertificateAuthority {
    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The current trust bundle.
    pub fn bundle(&self) -> Bundle {
        self.bundle_tx.borrow().clone()
    }

    /// Bundle changes from now on; the receiver starts with the current bundle. A new root is
    /// sent when it is prepared, before anything it signs is issued.
    pub fn subscribe(&self) -> watch::Receiver<Bundle> {
        self.bundle_tx.subscribe()
    }

    /// A snapshot of the generations.
    pub fn status(&self) -> Result<CaStatus, MintError> {
        let a = self.read()?;
        let bundle = self.bundle_tx.borrow();
        Ok(CaStatus {
            active_generation: a.active.number,
            active_not_after: a.active.not_after,
            prepared_generation: a.prepared.as_ref().map(|p| p.number),
            bundle_roots: bundle.roots_der.len(),
            bundle_sequence: bundle.sequence,
            upstream: self.upstream.is_some(),
        })
    }

    pub(crate) fn read(&self) -> Result<RwLockReadGuard<'_, Authorities>, MintError> {
        self.authorities.read().map_err(|_| MintError::Poisoned)
    }

    pub(crate) fn write(&self) -> Result<RwLockWriteGuard<'_, Authorities>, CaError> {
        self.authorities.write().map_err(|_| CaError::Poisoned)
    }

    /// Publishes the bundle of `a` if it differs from the current one.
    pub(crate) fn publish(&self, a: &Authorities) -> bool {
        let bundle = a.bundle(&self.trust_domain, self.upstream.as_ref());
        self.bundle_tx.send_if_modified(|current| {
            if *current == bundle {
                false
            } else {
                *current = bundle;
                true
            }
        })
    }
}
