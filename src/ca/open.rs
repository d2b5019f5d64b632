//! Opening the CA: loading `<data_dir>/ca/`, or creating it on first start
//! (docs/architecture.md, "The CA").
//!
//! Invariant: a missing or corrupt store is never replaced by a fresh CA. Once
//! `<data_dir>/ca/` exists, or the caller says the datastore already holds a bundle, anything
//! missing or unreadable is a [`CaError`] naming the file.

use std::io::ErrorKind;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use super::authority::{CaConfig, CertificateAuthority};
use super::error::CaError;
use super::generation::Generation;
use super::keystore::{self, KeyStore, Mode, State};
use super::load::load;
use super::mint;
use super::upstream::Upstream;
use crate::clock::Clock;

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
        let bundle = authorities.bundle(&config.trust_domain, upstream.as_ref());
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
        self_test(&ca)?;
        Ok(ca)
    }
}

/// Mints a throwaway SVID for `spiffe://<td>/sworn/self-test` and checks it against the
/// bundle, so a store or upstream configuration that cannot issue is caught at startup.
fn self_test(ca: &CertificateAuthority) -> Result<(), CaError> {
    let expired = {
        let a = ca.read().map_err(|_| CaError::Poisoned)?;
        a.active.not_after <= ca.clock.now()
    };
    if expired {
        tracing::warn!("the active ca has expired; rotation will replace it");
        return Ok(());
    }
    mint::self_test(ca).map_err(|e| CaError::SelfTest(e.to_string()))
}
