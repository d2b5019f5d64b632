//! Authenticating an agent on every call after attestation.
//!
//! The TLS layer already checked that the presented certificate chains to the
//! current bundle. Here the server checks the rest against its own records:
//! the SPIFFE ID is an agent ID of this trust domain, the agent exists and is
//! not banned, the certificate is within its validity on the server's clock (TLS checked
//! it only when the connection was made, and an HTTP/2 connection outlives it), and its
//! serial is the agent's latest (or the previous one, until the latest is first used, so
//! renewal drops no call).
//!
//! The record is read once per connection and kept with it ([`super::memo`]) for the life of
//! the certificate the connection presents, while the store's epoch of the record
//! ([`crate::store::Store::agent_epoch`]) stays the same: a ban, a renewal or a retired
//! serial moves the epoch, so the very next call reads the record again and sees it.

use std::sync::Arc;
use std::time::SystemTime;

use sworn_identity::{AgentId, Serial};
use tonic::{Request, Status};

use super::conn;
use super::memo::Remembered;
use crate::clock::{from_unix_secs, unix_secs};
use crate::shared::Shared;
use crate::store::{AgentRecord, StoreError};

/// An agent that passed authentication for this call.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// Its record.
    pub record: AgentRecord,
    /// The serial it presented.
    pub serial: Serial,
    /// When the certificate it presented expires: calls after it are refused.
    pub not_after: SystemTime,
}

/// Why a call was not authenticated.
#[derive(Debug)]
pub enum Refused {
    /// The agent (or its node) is banned, factor N5: a decision, which the caller audits.
    Banned(AgentId),
    /// Anything else, as the agent hears it.
    Status(Status),
}

impl From<Status> for Refused {
    fn from(s: Status) -> Self {
        Refused::Status(s)
    }
}

impl From<Refused> for Status {
    fn from(r: Refused) -> Self {
        match r {
            Refused::Banned(_) => banned(),
            Refused::Status(s) => s,
        }
    }
}

/// Facts read from an agent's client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCert {
    /// The agent's SPIFFE ID.
    pub id: AgentId,
    /// Its serial.
    pub serial: Serial,
    /// Its `notAfter`.
    pub not_after: SystemTime,
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
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|_| bad())?;
    Ok(PeerCert {
        id,
        serial: serial_of(der).ok_or_else(bad)?,
        not_after: from_unix_secs(cert.validity().not_after.timestamp()),
    })
}

/// Authenticates the agent behind `req`.
pub async fn authenticate<T>(
    shared: &Arc<Shared>,
    req: &Request<T>,
) -> Result<Authenticated, Refused> {
    let info = conn::info(req);
    let certs = info.and_then(|i| i.tls.peer_certs()).ok_or_else(|| {
        Status::unauthenticated("this call requires the agent's client certificate")
    })?;
    let leaf = certs.first().ok_or_else(|| {
        Status::unauthenticated("this call requires the agent's client certificate")
    })?;
    let peer = peer_cert(leaf.as_ref(), &shared.config.trust_domain)?;
    check_expiry(shared, peer.not_after)?;
    let memo = info.map(|i| &i.agent);
    // Before the read: a write that commits after it moves the epoch, so it is seen next.
    let epoch = shared.store.agent_epoch(&peer.id);
    if let Some(record) = memo.and_then(|m| m.get(&peer.serial, epoch)) {
        return Ok(Authenticated {
            record,
            serial: peer.serial,
            not_after: peer.not_after,
        });
    }
    let record = lookup(shared, &peer.id)
        .await?
        .ok_or_else(|| Status::unauthenticated("unknown agent; attest again"))?;
    if record.banned {
        return Err(Refused::Banned(peer.id));
    }
    if peer.serial == record.serial {
        if record.prev_serial.is_some() {
            // First use of the new certificate retires the previous one (which moves the
            // epoch, so the next call reads the record without it).
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
        )
        .into());
    }
    if let Some(memo) = memo {
        memo.put(Remembered {
            serial: peer.serial.clone(),
            epoch,
            record: record.clone(),
        });
    }
    Ok(Authenticated {
        record,
        serial: peer.serial,
        not_after: peer.not_after,
    })
}

/// Whether an agent that authenticated with a certificate valid until `not_after` may still
/// be served (an open Sync stream asks this after every change): not expired, still known,
/// not banned.
pub async fn standing(
    shared: &Arc<Shared>,
    id: &AgentId,
    not_after: SystemTime,
) -> Result<(), Status> {
    check_expiry(shared, not_after)?;
    match lookup(shared, id).await? {
        Some(record) if !record.banned => Ok(()),
        _ => Err(banned()),
    }
}

/// Reads the agent's record from the store, counted in `sworn_server_agent_lookups_total`.
async fn lookup(shared: &Arc<Shared>, id: &AgentId) -> Result<Option<AgentRecord>, Status> {
    shared.metrics.agent_lookups.inc();
    shared.store.get_agent(id).await.map_err(store_unavailable)
}

/// What an agent hears of a datastore fault (logged here, never sent).
pub fn store_unavailable(e: StoreError) -> Status {
    tracing::error!(error = %e, "datastore error on the agent API");
    Status::unavailable("datastore unavailable")
}

fn banned() -> Status {
    Status::permission_denied("agent is banned")
}

/// Refuses a certificate past `notAfter` on the server's clock, to the second as TLS does.
fn check_expiry(shared: &Shared, not_after: SystemTime) -> Result<(), Status> {
    if unix_secs(shared.clock.now()) > unix_secs(not_after) {
        Err(expired())
    } else {
        Ok(())
    }
}

/// What an agent hears once its certificate is past `notAfter` (RFC 5280 §4.1.2.5: the
/// certificate is no longer valid, whatever the connection it came on).
pub fn expired() -> Status {
    Status::unauthenticated("agent certificate expired; attest again")
}
