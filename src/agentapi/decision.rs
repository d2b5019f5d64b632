//! What a verifier decided, free of transport: the identity to mint with its entry's
//! parameters, and the audit detail of each factor's result. The service turns it into
//! a `MintResult` (docs/architecture.md, "Server modules").

use std::time::Duration;

use serde_json::Value;
use sworn_identity::SpiffeIdentity;

use crate::ca::IssuedSvid;

/// A minted workload SVID with the entry's Workload API hint.
#[derive(Debug)]
pub struct Minted {
    /// The certificate chain and its facts.
    pub svid: IssuedSvid,
    /// The entry's hint (empty for the default identity).
    pub hint: String,
}

/// What a workload verifier established: the identity to mint and the entry's parameters.
#[derive(Debug)]
pub struct Verified {
    /// The identity.
    pub id: SpiffeIdentity,
    /// Requested TTL.
    pub ttl: Duration,
    /// DNS SANs.
    pub dns: Vec<String>,
    /// Workload API hint.
    pub hint: String,
    /// Audit detail of the verification (each factor's result).
    pub detail: Value,
}

/// Adds the keys of `from` that `into` does not have.
pub fn merge(into: &mut Value, from: &Value) {
    if let (Some(a), Some(b)) = (into.as_object_mut(), from.as_object()) {
        for (k, v) in b {
            a.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}
