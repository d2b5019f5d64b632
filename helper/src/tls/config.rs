//! Builders for rustls configurations that follow a [`MaterialWatch`].

use std::sync::Arc;

use rustls::client::Resumption;
use rustls::server::NoServerSessionStorage;
use rustls::{ClientConfig, ServerConfig};
use sworn_identity::tls::provider;

use super::options::TlsOptions;
use super::verify::{ClientCertResolver, ServerCertResolver, peer_verifier};
use super::watch::MaterialWatch;

/// Why a configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rustls refused the protocol versions.
    #[error("tls configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// A server configuration that presents our current SVID and requires a client SVID that
/// chains to the current bundle and is allowed by `options.authorizer`.
pub fn server_config(watch: MaterialWatch, options: TlsOptions) -> Result<ServerConfig, TlsError> {
    let verifier = peer_verifier(watch.clone(), &options);
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(options.versions())?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(ServerCertResolver(watch)));
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.alpn_protocols = options.alpn_protocols;
    Ok(config)
}

/// A client configuration that presents our current SVID and accepts a server only by its
/// SPIFFE ID (allowed by `options.authorizer`), never by the name it was dialled with.
pub fn client_config(watch: MaterialWatch, options: TlsOptions) -> Result<ClientConfig, TlsError> {
    let verifier = peer_verifier(watch.clone(), &options);
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(options.versions())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(Arc::new(ClientCertResolver(watch)));
    config.resumption = Resumption::disabled();
    config.alpn_protocols = options.alpn_protocols;
    Ok(config)
}
