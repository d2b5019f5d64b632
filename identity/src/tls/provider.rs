//! The crypto provider: ring, as everywhere in the workspace.

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;

/// The ring provider, built once and passed explicitly so no process-wide default is
/// installed behind the caller's back.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}
