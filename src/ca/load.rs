//! Reading a CA directory back into memory, and the bundle it implies.
//!
//! Every file the state names must be present and usable; anything else is a [`CaError`]
//! naming the file, never a reason to start over (DESIGN.md §4).

use spiffe::TrustDomain;

use super::authority::Authorities;
use super::bundle::Bundle;
use super::error::CaError;
use super::generation::Generation;
use super::keystore::{self, KeyStore, Mode};
use super::upstream::Upstream;

/// Reads every generation the state names.
pub(crate) fn load(
    store: &KeyStore,
    trust_domain: &TrustDomain,
    mode: Mode,
) -> Result<Authorities, CaError> {
    let state = store.read_state()?;
    let state_path = store.path(keystore::STATE_FILE);
    if state.trust_domain != trust_domain.as_str() {
        return Err(CaError::ConfigMismatch {
            path: state_path,
            stored: format!("trust domain {}", state.trust_domain),
            configured: format!("trust domain {trust_domain}"),
        });
    }
    if state.mode != mode {
        return Err(CaError::ConfigMismatch {
            path: state_path,
            stored: format!("a {:?} ca", state.mode),
            configured: format!("a {mode:?} ca"),
        });
    }
    let with_key = |g: u64| -> Result<Generation, CaError> {
        let chain = store.read_chain(g)?;
        let key = store.read_key(g)?;
        Generation::from_parts(
            g,
            chain,
            Some(key),
            &store.path(&keystore::cert_file(g)),
            &store.path(&keystore::key_file(g)),
        )
    };
    let active = with_key(state.active)?;
    let prepared = state.prepared.map(with_key).transpose()?;
    let retired = state
        .retired
        .iter()
        .map(|&g| {
            let cert_path = store.path(&keystore::cert_file(g));
            let key_path = store.path(&keystore::key_file(g));
            Generation::from_parts(g, store.read_chain(g)?, None, &cert_path, &key_path)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Authorities {
        state,
        active,
        prepared,
        retired,
    })
}

/// The bundle for the given generations: self-signed roots oldest first, or the upstream roots.
pub(crate) fn bundle_of(
    trust_domain: &TrustDomain,
    a: &Authorities,
    upstream: Option<&Upstream>,
) -> Bundle {
    let roots_der = match upstream {
        Some(up) => up.roots.clone(),
        None => a
            .retired
            .iter()
            .chain(std::iter::once(&a.active))
            .chain(a.prepared.iter())
            .map(|g| g.cert_der().to_vec())
            .collect(),
    };
    Bundle {
        trust_domain: trust_domain.clone(),
        roots_der,
        sequence: a.state.bundle_sequence,
    }
}
