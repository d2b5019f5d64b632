//! What the server and client builders are told: whom to admit, which versions, the hook.

use std::fmt;

use super::denial::DenialHook;
use crate::Authorizer;

static TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// Options shared by the server and client builders.
#[derive(Clone)]
pub struct TlsOptions {
    /// Which peer IDs are allowed.
    pub authorizer: Authorizer,
    /// Also offer TLS 1.2. Default `false`: TLS 1.3 only; TLS 1.2 exists only for peers that
    /// cannot do 1.3.
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

    pub(super) fn versions(&self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        if self.danger_allow_tls12 {
            rustls::ALL_VERSIONS
        } else {
            TLS13_ONLY
        }
    }
}
