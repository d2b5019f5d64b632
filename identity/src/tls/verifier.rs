//! [`SvidVerifier`]: the rustls client and server certificate verifier for SPIFFE peers.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::provider::provider;
use super::rejection::{PeerSide, Rejection, Verdict};
use super::roots::TrustSource;
use crate::svid::{Purpose, check_for};
use crate::{Expected, SpiffeIdentity, leaf_spiffe_id};

/// Decides whether a peer's SPIFFE ID may connect (after its chain verified).
pub type Authorize = Arc<dyn Fn(&SpiffeIdentity) -> bool + Send + Sync>;

/// Sees every decision, from inside the handshake (keep it cheap).
pub type Observer = Arc<dyn Fn(&Verdict<'_>) + Send + Sync>;

/// Verifies SPIFFE peers; one type for both sides of the handshake. See the module root for
/// what it checks.
pub struct SvidVerifier {
    trust: Arc<dyn TrustSource>,
    authorize: Authorize,
    observe: Option<Observer>,
    client_auth_mandatory: bool,
    signatures: HandshakeSignatures,
}

impl fmt::Debug for SvidVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SvidVerifier")
            .field("trust", &self.trust)
            .field("observed", &self.observe.is_some())
            .field("client_auth_mandatory", &self.client_auth_mandatory)
            .finish_non_exhaustive()
    }
}

impl SvidVerifier {
    /// Trusts the roots `trust` holds for the peer's trust domain and admits the IDs
    /// `authorize` allows. As a client verifier, a client certificate is required.
    pub fn new(trust: Arc<dyn TrustSource>, authorize: Authorize) -> Self {
        SvidVerifier {
            trust,
            authorize,
            observe: None,
            client_auth_mandatory: true,
            signatures: HandshakeSignatures::new(),
        }
    }

    /// Reports every decision to `observer` (audit lines, metrics).
    pub fn observed_by(mut self, observer: Observer) -> Self {
        self.observe = Some(observer);
        self
    }

    /// As a client verifier, lets clients connect without a certificate (a certificate that
    /// is presented is still verified); for servers with calls made before the peer has an
    /// SVID.
    pub fn client_auth_optional(mut self) -> Self {
        self.client_auth_mandatory = false;
        self
    }

    /// Verifies a peer's leaf and intermediates at `now`; the observer sees the verdict.
    pub fn verify_peer(
        &self,
        side: PeerSide,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<SpiffeIdentity, Rejection> {
        let id = match leaf_spiffe_id(end_entity) {
            Ok(id) => id,
            Err(e) => return Err(self.seen_denied(side, None, Rejection::NoSpiffeId(e))),
        };
        match self.judge(side, &id, end_entity, intermediates, now) {
            Ok(()) => {
                if let Some(observe) = &self.observe {
                    observe(&Verdict::Allowed { side, peer: &id });
                }
                Ok(id)
            }
            Err(reason) => Err(self.seen_denied(side, Some(&id), reason)),
        }
    }

    /// Everything after reading the peer's ID: its bundle, its chain and profile, its ID.
    fn judge(
        &self,
        side: PeerSide,
        id: &SpiffeIdentity,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), Rejection> {
        let roots = self
            .trust
            .roots(id.trust_domain())
            .ok_or(Rejection::UnknownTrustDomain)?;
        let purpose = match side {
            PeerSide::Client => Purpose::ClientAuth,
            PeerSide::Server => Purpose::ServerAuth,
        };
        check_for(
            end_entity,
            intermediates,
            Expected::MemberOf(id.trust_domain()),
            roots.as_slice(),
            UNIX_EPOCH + Duration::from_secs(now.as_secs()),
            purpose,
        )
        .map_err(|e| {
            if e.is_chain_error() {
                Rejection::Chain(e)
            } else {
                Rejection::NotSvid(e)
            }
        })?;
        if !(self.authorize)(id) {
            return Err(Rejection::NotAuthorized);
        }
        Ok(())
    }

    fn seen_denied(
        &self,
        side: PeerSide,
        peer: Option<&SpiffeIdentity>,
        reason: Rejection,
    ) -> Rejection {
        if let Some(observe) = &self.observe {
            observe(&Verdict::Denied {
                side,
                peer,
                reason: &reason,
            });
        }
        reason
    }

    fn verify(
        &self,
        side: PeerSide,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        self.verify_peer(side, end_entity, intermediates, now)
            .map(|_| ())
            .map_err(|r| rustls::Error::InvalidCertificate(r.certificate_error()))
    }
}

impl ClientCertVerifier for SvidVerifier {
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
        self.verify(PeerSide::Client, end_entity, intermediates, now)?;
        Ok(ClientCertVerified::assertion())
    }

    fn client_auth_mandatory(&self) -> bool {
        self.client_auth_mandatory
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.verify_tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.verify_tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.signatures.schemes()
    }
}

impl ServerCertVerifier for SvidVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The name we dialled is deliberately ignored: the SPIFFE ID is the identity.
        self.verify(PeerSide::Server, end_entity, intermediates, now)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.verify_tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.verify_tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.signatures.schemes()
    }
}

/// The handshake-signature half of a verifier (the peer holds the key of the certificate it
/// sent), with the provider's algorithms; for verifiers that judge the certificate elsewhere.
#[derive(Debug, Clone, Copy)]
pub struct HandshakeSignatures {
    algs: WebPkiSupportedAlgorithms,
}

impl Default for HandshakeSignatures {
    fn default() -> Self {
        Self::new()
    }
}

impl HandshakeSignatures {
    /// The algorithms of [`super::provider`].
    pub fn new() -> Self {
        HandshakeSignatures {
            algs: provider().signature_verification_algorithms,
        }
    }

    /// A TLS 1.2 handshake signature.
    pub fn verify_tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    /// A TLS 1.3 handshake signature.
    pub fn verify_tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    /// The signature schemes offered.
    pub fn schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}
