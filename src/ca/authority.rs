//! The certificate authority: loading or creating the key store, the trust bundle, and the
//! bundle watch channel (DESIGN.md §4).
//!
//! Invariants:
//! - a missing or corrupt store is never replaced by a fresh CA: once `<data_dir>/ca/` exists,
//!   or the caller says the datastore already holds a bundle, anything missing or unreadable
//!   is a [`CaError`] naming the file;
//! - in-memory state changes only after the matching files and `state.json` are durable;
//! - the bundle published on the watch channel always equals what [`CertificateAuthority::bundle`]
//!   returns.

use std::io::ErrorKind;
use std::path::Path;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime};

use spiffe::TrustDomain;
use tokio::sync::watch;

use super::bundle::Bundle;
use super::error::{CaError, MintError};
use super::generation::Generation;
use super::keystore::{self, KeyStore, Mode, State};
use super::load::{bundle_of, load};
use super::upstream::{Upstream, UpstreamConfig};
use crate::clock::Clock;

/// Default validity of a CA generation (DESIGN.md §4).
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

/// The live CA generations.
#[derive(Debug)]
pub(crate) struct Authorities {
    pub state: State,
    pub active: Generation,
    pub prepared: Option<Generation>,
    pub retired: Vec<Generation>,
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
    /// Opens the CA in `<data_dir>/ca/`, creating it on first start.
    ///
    /// Creates a new CA only if the directory does not exist and `expect_existing` is false.
    /// Pass `expect_existing = true` when the datastore already holds a bundle: then a missing
    /// directory is an error too, since minting under a new root would strand every agent.
    pub fn load_or_init(
        data_dir: &Path,
        config: CaConfig,
        clock: Arc<dyn Clock>,
        expect_existing: bool,
    ) -> Result<Self, CaError> {
        if config.ca_ttl < Duration::from_secs(60) {
            return Err(CaError::Config(format!(
                "ca ttl {:?} is shorter than one minute",
                config.ca_ttl
            )));
        }
        let dir = data_dir.join("ca");
        let upstream = config.upstream.as_ref().map(Upstream::load).transpose()?;
        let mode = if upstream.is_some() {
            Mode::Upstream
        } else {
            Mode::SelfSigned
        };
        // A symlink to a directory is fine; a dangling one (volume not mounted) must not be
        // mistaken for a first start.
        let meta = std::fs::symlink_metadata(&dir).and_then(|m| {
            if m.file_type().is_symlink() {
                std::fs::metadata(&dir)
            } else {
                Ok(m)
            }
        });
        let dangling = meta.is_err() && std::fs::symlink_metadata(&dir).is_ok();
        if dangling {
            return Err(CaError::Missing {
                path: dir,
                why: "it is a symlink whose target is missing",
            });
        }
        match meta {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(CaError::CorruptState {
                    path: dir,
                    reason: "exists but is not a directory".into(),
                });
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                if expect_existing {
                    return Err(CaError::ExpectedExisting { dir });
                }
                let now = clock.now();
                let first = Generation::create(
                    1,
                    &config.trust_domain,
                    now,
                    config.ca_ttl,
                    upstream.as_ref(),
                )?;
                let state = State::new(config.trust_domain.to_string(), mode);
                keystore::create_dir_atomically(&dir, |ks| {
                    let key = first.key().ok_or_else(|| CaError::Generate {
                        what: "key",
                        reason: "new generation has no key".into(),
                    })?;
                    ks.write_key(1, key)?;
                    ks.write_chain(1, &first.chain)?;
                    ks.write_state(&state)
                })?;
                tracing::info!(
                    dir = %dir.display(),
                    trust_domain = %config.trust_domain,
                    ?mode,
                    "created a new ca"
                );
            }
            Err(source) => {
                return Err(CaError::Io {
                    path: dir,
                    action: "stat",
                    source,
                });
            }
        }
        let store = KeyStore::new(dir);
        let authorities = load(&store, &config.trust_domain, mode)?;
        let bundle = bundle_of(&config.trust_domain, &authorities, upstream.as_ref());
        let (bundle_tx, _) = watch::channel(bundle);
        let ca = CertificateAuthority {
            trust_domain: config.trust_domain,
            ca_ttl: config.ca_ttl,
            clock,
            store,
            upstream,
            authorities: RwLock::new(authorities),
            bundle_tx,
        };
        ca.self_test()?;
        Ok(ca)
    }

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
        let bundle = bundle_of(&self.trust_domain, a, self.upstream.as_ref());
        self.bundle_tx.send_if_modified(|current| {
            if *current == bundle {
                false
            } else {
                *current = bundle;
                true
            }
        })
    }

    /// Mints a throwaway SVID for `spiffe://<td>/sworn/self-test` and checks it against the
    /// bundle, so a store or upstream configuration that cannot issue is caught at startup.
    fn self_test(&self) -> Result<(), CaError> {
        let expired = {
            let a = self.read().map_err(|_| CaError::Poisoned)?;
            a.active.not_after <= self.clock.now()
        };
        if expired {
            tracing::warn!("the active ca has expired; rotation will replace it");
            return Ok(());
        }
        super::mint::self_test(self).map_err(|e| CaError::SelfTest(e.to_string()))
    }
}
