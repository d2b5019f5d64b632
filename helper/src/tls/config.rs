//! Builders for rustls configurations that follow a [`MaterialWatch`], and the description of
//! a refusal ([`Denial`]) that the verifiers hand to the audit log and the denial hook.

use std::fmt;
use std::sync::Arc;

use rustls::client::Resumption;
use rustls::server::NoServerSessionStorage;
use rustls::{ClientConfig, ServerConfig};
use spiffe::SpiffeId;

use super::verify::{ClientCertResolver, PeerVerifier, ServerCertResolver};
use super::{MaterialWatch, provider};
use crate::Authorizer;

/// Why a configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rustls refused the protocol versions.
    #[error("tls configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// Why a peer was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenialReason {
    /// Its leaf is not an X509-SVID (no or several URI SANs, CA leaf, bad key usage, ...).
    NotSvid(String),
    /// We hold no bundle for its trust domain.
    UnknownTrustDomain,
    /// Its chain does not verify against its trust domain's bundle (expired, wrong issuer, ...).
    Chain(String),
    /// The chain verified but the authorizer does not allow its ID.
    NotAuthorized,
}

impl DenialReason {
    /// A short stable label (for metrics).
    pub fn label(&self) -> &'static str {
        match self {
            DenialReason::NotSvid(_) => "not_svid",
            DenialReason::UnknownTrustDomain => "unknown_trust_domain",
            DenialReason::Chain(_) => "chain",
            DenialReason::NotAuthorized => "not_authorized",
        }
    }
}

impl fmt::Display for DenialReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DenialReason::NotSvid(why) => write!(f, "not an x509-svid: {why}"),
            DenialReason::UnknownTrustDomain => f.write_str("no bundle for its trust domain"),
            DenialReason::Chain(why) => write!(f, "chain does not verify: {why}"),
            DenialReason::NotAuthorized => f.write_str("spiffe id not authorized"),
        }
    }
}

/// A refused peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The peer's SPIFFE ID, when its leaf carried one.
    pub peer_id: Option<SpiffeId>,
    /// Why it was refused.
    pub reason: DenialReason,
}

/// Called once per refused peer, from inside the handshake (keep it cheap).
pub type DenialHook = Arc<dyn Fn(&Denial) + Send + Sync>;

static TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// Options shared by the server and client builders.
#[derive(Clone)]
pub struct TlsOptions {
    /// Which peer IDs are allowed.
    pub authorizer: Authorizer,
    /// Also offer TLS 1.2. Default `false`: TLS 1.3 only (issue 7); TLS 1.2 exists only for
    /// peers that cannot do 1.3.
    pub danger_allow_tls12: bool,
    /// Called for every refused peer (metrics); the audit log line is written regardless.
    pub on_denial: Option<DenialHook>,
    /// ALPN protocols to offer or accept (default none).
    pub alpn_protocols: Vec<Vec<u8>>,
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOptions")
            .field("authorizer", &self.authorizer)
            .field("danger_allow_tls12", &self.danger_allow_tls12)
            .field("on_denial", &self.on_denial.is_some())
            .field("alpn_protocols", &self.alpn_protocols)
            .finish()
    }
}

impl TlsOptions {
    /// TLS 1.3 only, no hook, no ALPN.
    pub fn new(authorizer: Authorizer) -> Self {
        TlsOptions {
            authorizer,
            danger_allow_tls12: false,
            on_denial: None,
            alpn_protocols: Vec::new(),
        }
    }

    fn versions(&self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        if self.danger_allow_tls12 {
            rustls::ALL_VERSIONS
        } else {
            TLS13_ONLY
        }
    }
}

/// A server configuration that presents our current SVID and requires a client SVID that
/// chains to the current bundle and is allowed by `options.authorizer`.
pub fn server_config(watch: MaterialWatch, options: TlsOptions) -> Result<ServerConfig, TlsError> {
    let verifier = Arc::new(PeerVerifier::new(watch.clone(), &options));
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
    let verifier = Arc::new(PeerVerifier::new(watch.clone(), &options));
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(options.versions())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(Arc::new(ClientCertResolver(watch)));
    config.resumption = Resumption::disabled();
    config.alpn_protocols = options.alpn_protocols;
    Ok(config)
}
