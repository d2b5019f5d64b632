//! TLS for the agent API.
//!
//! The server presents an X509-SVID for `spiffe://<td>/sworn/server` (agents
//! pin that ID, docs/architecture.md, "Node attestation"). Client certificates are optional at the TLS
//! layer because `Attest` is the one call made before an agent has an SVID;
//! a certificate that *is* presented must chain to the current bundle, and
//! every other RPC requires one (see [`super::auth`]). TLS 1.3 only.
//!
//! The server certificate is renewed at half-life and the client verifier is
//! rebuilt whenever the bundle changes; each handshake uses the newest config.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use sworn_identity::SpiffeIdentity;
use tokio_rustls::TlsAcceptor;

use crate::ca::{MintRequest, SvidKeyPair};
use crate::shared::Shared;

/// Why TLS material could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The server SVID could not be minted.
    #[error("minting the server certificate: {0}")]
    Mint(String),
    /// rustls refused the material.
    #[error("rustls: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built.
    #[error("client verifier: {0}")]
    Verifier(String),
}

/// The current acceptor, swapped on renewal or bundle change.
pub struct TlsState {
    acceptor: RwLock<TlsAcceptor>,
    /// When the current server certificate should be renewed.
    renew_at: RwLock<std::time::SystemTime>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl std::fmt::Debug for TlsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsState").finish_non_exhaustive()
    }
}

impl TlsState {
    /// Builds the first acceptor.
    pub fn new(shared: &Shared) -> Result<Self, TlsError> {
        let (acceptor, renew_at) = build(shared)?;
        Ok(TlsState {
            acceptor: RwLock::new(acceptor),
            renew_at: RwLock::new(renew_at),
        })
    }

    /// The acceptor for the next handshake.
    pub fn acceptor(&self) -> TlsAcceptor {
        match self.acceptor.read() {
            Ok(a) => a.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Rebuilds when forced (bundle changed) or when the certificate is at half-life.
    pub fn refresh(&self, shared: &Shared, force: bool) -> Result<(), TlsError> {
        let due = match self.renew_at.read() {
            Ok(t) => shared.clock.now() >= *t,
            Err(_) => true,
        };
        if !(force || due) {
            return Ok(());
        }
        let (acceptor, renew_at) = build(shared)?;
        if let Ok(mut a) = self.acceptor.write() {
            *a = acceptor;
        }
        if let Ok(mut r) = self.renew_at.write() {
            *r = renew_at;
        }
        tracing::info!("agent API TLS material renewed");
        Ok(())
    }
}

fn build(shared: &Shared) -> Result<(TlsAcceptor, std::time::SystemTime), TlsError> {
    let td = &shared.config.trust_domain;
    let id = SpiffeIdentity::sworn_server(td).map_err(|e| TlsError::Mint(e.to_string()))?;
    let key = SvidKeyPair::generate().map_err(|e| TlsError::Mint(format!("{e:?}")))?;
    let csr = key.csr_der().map_err(|e| TlsError::Mint(e.to_string()))?;
    let ttl = Duration::from_secs(3600).min(shared.config.ca_ttl / 2);
    let svid = shared
        .ca
        .mint_sworn_svid(MintRequest {
            spiffe_id: id,
            csr_der: csr,
            ttl,
            dns_names: Vec::new(),
        })
        .map_err(|e| TlsError::Mint(e.to_string()))?;
    let life = svid
        .not_after
        .duration_since(shared.clock.now())
        .unwrap_or_default();
    let renew_at = shared.clock.now() + life / 2;
    let chain: Vec<CertificateDer<'static>> = svid
        .chain_der
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.pkcs8_der().to_vec()));

    let mut roots = rustls::RootCertStore::empty();
    for r in shared.ca.bundle().roots_der {
        roots
            .add(CertificateDer::from(r))
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key_der)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(config)), renew_at))
}
