//! The helper's use of the shared SPIFFE verifier (`sworn_identity::tls::SvidVerifier`): the
//! bundles come from the current [`Material`](super::Material), the authorizer decides, and
//! every decision becomes one audit line (and a denial hook call). Also the resolvers that
//! present our current SVID.

use std::sync::Arc;

use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sworn_identity::TrustDomain;
use sworn_identity::tls::{SvidVerifier, TrustRoots, TrustSource, Verdict};
use tracing::{info, warn};

use super::denial::{Denial, DenialHook};
use super::options::TlsOptions;
use super::watch::MaterialWatch;

impl TrustSource for MaterialWatch {
    fn roots(&self, trust_domain: &TrustDomain) -> Option<TrustRoots> {
        self.current().bundle(trust_domain).cloned()
    }
}

/// The verifier for both roles: bundles from `watch`, IDs allowed by `options.authorizer`.
pub(super) fn peer_verifier(watch: MaterialWatch, options: &TlsOptions) -> Arc<SvidVerifier> {
    let authorizer = options.authorizer.clone();
    let on_denial = options.on_denial.clone();
    Arc::new(
        SvidVerifier::new(
            Arc::new(watch),
            Arc::new(move |id| authorizer.allows(id.spiffe_id())),
        )
        .observed_by(Arc::new(move |verdict| audit(verdict, on_denial.as_ref()))),
    )
}

/// Writes the audit line of a decision and calls the hook for a refusal.
fn audit(verdict: &Verdict<'_>, on_denial: Option<&DenialHook>) {
    match *verdict {
        Verdict::Allowed { side, peer } => {
            info!(target: "sworn_helper::audit", peer_id = %peer, peer_role = side.as_str(), decision = "allow", "peer allowed");
        }
        Verdict::Denied { side, peer, reason } => {
            let shown = peer.map_or_else(|| "none".to_owned(), ToString::to_string);
            warn!(
                target: "sworn_helper::audit",
                peer_id = %shown,
                peer_role = side.as_str(),
                decision = "deny",
                reason = reason.label(),
                detail = %reason,
                "peer denied"
            );
            if let Some(hook) = on_denial {
                hook(&Denial {
                    peer_id: peer.map(|p| p.spiffe_id().clone()),
                    reason: reason.clone(),
                });
            }
        }
    }
}

/// Presents the current SVID as the server certificate.
#[derive(Debug)]
pub(super) struct ServerCertResolver(pub(super) MaterialWatch);

impl ResolvesServerCert for ServerCertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current().certified_key())
    }
}

/// Presents the current SVID as the client certificate.
#[derive(Debug)]
pub(super) struct ClientCertResolver(pub(super) MaterialWatch);

impl ResolvesClientCert for ClientCertResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current().certified_key())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
