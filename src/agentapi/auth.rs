//! Authenticating an agent on every call after attestation.
//!
//! The TLS layer already checked that the presented certificate chains to the
//! current bundle. Here the server checks the rest against its own records:
//! the SPIFFE ID is an agent ID of this trust domain, the agent exists and is
//! not banned, and the certificate's serial is the agent's latest (or the
//! previous one, until the latest is first used, so renewal drops no call).

use std::sync::Arc;

use sworn_identity::{AgentId, Serial};
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::{Request, Status};

use crate::shared::Shared;
use crate::store::AgentRecord;

/// An agent that passed authentication for this call.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// Its record.
    pub record: AgentRecord,
    /// The serial it presented.
    pub serial: Serial,
}

/// Facts read from an agent's client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCert {
    /// The agent's SPIFFE ID.
    pub id: AgentId,
    /// Its serial.
    pub serial: Serial,
}

/// The serial of a certificate, as stored and compared.
pub fn serial_of(der: &[u8]) -> Option<Serial> {
    Serial::of_certificate(der).ok()
}

/// Parses the agent ID and serial from a leaf certificate.
pub fn peer_cert(der: &[u8], td: &spiffe::TrustDomain) -> Result<PeerCert, Status> {
    let bad = || Status::unauthenticated("client certificate is not a sworn agent SVID");
    let id = sworn_identity::leaf_spiffe_id(der).map_err(|_| bad())?;
    let id = AgentId::from_spiffe_id(id)
        .and_then(|id| id.check_trust_domain(td))
        .map_err(|_| bad())?;
    Ok(PeerCert {
        id,
        serial: serial_of(der).ok_or_else(bad)?,
    })
}

/// Authenticates the agent behind `req`.
pub async fn authenticate<T>(
    shared: &Arc<Shared>,
    req: &Request<T>,
) -> Result<Authenticated, Status> {
    let certs = req
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(|i| i.peer_certs())
        .ok_or_else(|| {
            Status::unauthenticated("this call requires the agent's client certificate")
        })?;
    let leaf = certs.first().ok_or_else(|| {
        Status::unauthenticated("this call requires the agent's client certificate")
    })?;
    let peer = peer_cert(leaf.as_ref(), &shared.config.trust_domain)?;
    let record = shared
        .store
        .get_agent(&peer.id)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "agent lookup failed");
            Status::unavailable("datastore unavailable")
        })?
        .ok_or_else(|| Status::unauthenticated("unknown agent; attest again"))?;
    if record.banned {
        return Err(Status::permission_denied("agent is banned"));
    }
    if peer.serial == record.serial {
        if record.prev_serial.is_some() {
            // First use of the new certificate retires the previous one.
            if let Err(e) = shared
                .store
                .mark_serial_used(record.id(), &peer.serial)
                .await
            {
                tracing::warn!(error = %e, agent = %record.id(), "cannot retire the previous serial");
            }
        }
    } else if record.prev_serial.as_ref() != Some(&peer.serial) {
        return Err(Status::unauthenticated(
            "agent certificate was superseded by a newer one; attest again",
        ));
    }
    Ok(Authenticated {
        record,
        serial: peer.serial,
    })
}
