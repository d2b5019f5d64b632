//! Reading a CA directory back into memory.
//!
//! Every file the state names must be present and usable; anything else is a [`CaError`]
//! naming the file, never a reason to start over (docs/architecture.md, "The CA").

use spiffe::TrustDomain;

use super::authorities::Authorities;
use super::error::CaError;
use super::generation::Generation;
use super::keystore::{self, KeyStore, Mode};

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
