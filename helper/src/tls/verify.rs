//! The verifier (one type for both roles) and the certificate resolvers. See the module root
//! for the invariants; this is the single place that decides what a refused peer sees.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, verify_server_cert_signed_by_trust_anchor};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use spiffe::SpiffeId;
use tracing::{info, warn};

use super::config::{Denial, DenialHook, DenialReason, TlsOptions};
use super::material::TrustBundle;
use super::peer::peer_spiffe_id;
use super::{MaterialWatch, provider};
use crate::Authorizer;

/// Which side of the handshake the peer is, for the audit line.
#[derive(Debug, Clone, Copy)]
enum PeerRole {
    Client,
    Server,
}

impl PeerRole {
    fn as_str(self) -> &'static str {
        match self {
            PeerRole::Client => "client",
            PeerRole::Server => "server",
        }
    }
}

/// Verifies peers by X509-SVID profile, chain to their trust domain's bundle, and ID.
pub(crate) struct PeerVerifier {
    watch: MaterialWatch,
    authorizer: Authorizer,
    on_denial: Option<DenialHook>,
    provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for PeerVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerVerifier")
            .field("authorizer", &self.authorizer)
            .finish_non_exhaustive()
    }
}

impl PeerVerifier {
    pub(crate) fn new(watch: MaterialWatch, options: &TlsOptions) -> Self {
        PeerVerifier {
            watch,
            authorizer: options.authorizer.clone(),
            on_denial: options.on_denial.clone(),
            provider: provider(),
        }
    }

    /// Runs the profile, bundle and authorization checks around `chain_check`.
    fn verify(
        &self,
        role: PeerRole,
        end_entity: &CertificateDer<'_>,
        chain_check: impl FnOnce(&TrustBundle) -> Result<(), rustls::Error>,
    ) -> Result<SpiffeId, rustls::Error> {
        let id = match peer_spiffe_id(end_entity) {
            Ok(id) => id,
            Err(e) => {
                return Err(self.deny(
                    role,
                    None,
                    DenialReason::NotSvid(e.to_string()),
                    CertificateError::BadEncoding.into(),
                ));
            }
        };
        let material = self.watch.current();
        let Some(bundle) = material.bundle(id.trust_domain()) else {
            return Err(self.deny(
                role,
                Some(id),
                DenialReason::UnknownTrustDomain,
                CertificateError::UnknownIssuer.into(),
            ));
        };
        if let Err(e) = chain_check(bundle) {
            let reason = DenialReason::Chain(e.to_string());
            return Err(self.deny(role, Some(id), reason, e));
        }
        if !self.authorizer.allows(&id) {
            return Err(self.deny(
                role,
                Some(id),
                DenialReason::NotAuthorized,
                CertificateError::ApplicationVerificationFailure.into(),
            ));
        }
        info!(target: "sworn_helper::audit", peer_id = %id, peer_role = role.as_str(), decision = "allow", "peer allowed");
        Ok(id)
    }

    /// Logs the audit line, calls the hook, and returns the error rustls turns into an alert.
    fn deny(
        &self,
        role: PeerRole,
        peer_id: Option<SpiffeId>,
        reason: DenialReason,
        error: rustls::Error,
    ) -> rustls::Error {
        let shown = peer_id
            .as_ref()
            .map_or_else(|| "none".to_owned(), ToString::to_string);
        warn!(
            target: "sworn_helper::audit",
            peer_id = %shown,
            peer_role = role.as_str(),
            decision = "deny",
            reason = reason.label(),
            detail = %reason,
            "peer denied"
        );
        if let Some(hook) = &self.on_denial {
            hook(&Denial { peer_id, reason });
        }
        error
    }

    fn schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl ClientCertVerifier for PeerVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // SPIFFE peers pick their SVID from the Workload API, not from CA hints.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.verify(PeerRole::Client, end_entity, |bundle| {
            bundle
                .client_verifier
                .verify_client_cert(end_entity, intermediates, now)
                .map(|_| ())
        })?;
        Ok(ClientCertVerified::assertion())
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The name we dialled is deliberately ignored: the SPIFFE ID is the identity.
        self.verify(PeerRole::Server, end_entity, |bundle| {
            let cert = ParsedCertificate::try_from(end_entity)?;
            verify_server_cert_signed_by_trust_anchor(
                &cert,
                &bundle.store,
                intermediates,
                now,
                self.provider.signature_verification_algorithms.all,
            )
        })?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}

/// Presents the current SVID as the server certificate.
#[derive(Debug)]
pub(crate) struct ServerCertResolver(pub(crate) MaterialWatch);

impl ResolvesServerCert for ServerCertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current().certified_key())
    }
}

/// Presents the current SVID as the client certificate.
#[derive(Debug)]
pub(crate) struct ClientCertResolver(pub(crate) MaterialWatch);

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
