//! What a caller is owed right now: the complete X509-SVID or bundle message, computed from
//! the Sync state and the cache (SPIFFE Workload API spec §5.2, §5.3).
//!
//! Invariant: a message is never empty. A caller entitled to nothing gets `PermissionDenied`
//! "no identity issued" (go-spiffe rejects an empty message), and the PID-reuse guard is
//! checked after every read and mint, right before the answer leaves.

use std::collections::HashMap;

use sworn_identity::Factor;
use sworn_proto::workload::{X509BundlesResponse, X509svid, X509svidResponse};
use tonic::Status;
use tracing::info;

use super::Shared;
use super::attest::Attested;
use super::refusal::{no_identity, not_ready};
use crate::cache::Evidence;

impl Shared {
    /// The complete X509-SVID message for `who`.
    pub async fn x509_svids(&self, who: &Attested) -> Result<X509svidResponse, Status> {
        let state = self.sync.borrow().clone().ok_or_else(not_ready)?;
        let derived = self.entitlements.of(&state);
        if let (Some(_), Some(facts)) = (&self.k8s, &who.k8s) {
            let entry_ids = crate::k8s::svids::entitled_indexed(facts, &state, derived.index());
            let evidence = crate::k8s::svids::evidence(facts);
            let svids = self
                .cache
                .ensure(&evidence, &entry_ids)
                .await
                .map_err(|e| {
                    info!(error = %e, pod_uid = %facts.evidence.pod_uid, "cannot mint for a kubernetes caller");
                    Status::unavailable("the server is unavailable; retry later")
                })?;
            return self.respond(who, &state, &svids);
        }
        let entry_ids = who.entitled(&derived);
        if entry_ids.is_empty() {
            info!(target: "sworn::audit", factor = %Factor::Policy, uid = who.uid(), pid = who.pid(), "no entry matches the caller");
            return Err(no_identity());
        }
        let svids = self
            .cache
            .ensure(&Evidence::Unix(who.evidence.clone()), &entry_ids)
            .await
            .map_err(|e| {
                info!(error = %e, uid = who.uid(), "cannot mint for a new caller");
                Status::unavailable("the server is unavailable; retry later")
            })?;
        self.respond(who, &state, &svids)
    }

    /// The message for `svids`, after the PID-reuse guard; never empty.
    fn respond(
        &self,
        who: &Attested,
        state: &crate::sync::SyncState,
        svids: &[std::sync::Arc<crate::cache::WorkloadSvid>],
    ) -> Result<X509svidResponse, Status> {
        if svids.is_empty() {
            // Each denial was logged with its factor when the server's answer arrived.
            info!(
                uid = who.uid(),
                pid = who.pid(),
                "the server issued nothing for the caller"
            );
            return Err(no_identity());
        }
        who.recheck().map_err(|e| {
            info!(target: "sworn::audit", factor = %who.kernel_factor(), error = %e, uid = who.uid(), pid = who.pid(), "caller changed during attestation");
            no_identity()
        })?;
        let bundle = state.bundle.concat();
        Ok(X509svidResponse {
            svids: svids
                .iter()
                .map(|s| X509svid {
                    spiffe_id: s.spiffe_id.clone(),
                    x509_svid: s.chain.concat(),
                    x509_svid_key: s.key.to_vec(),
                    bundle: bundle.clone(),
                    hint: s.hint.clone(),
                })
                .collect(),
            crl: Vec::new(),
            federated_bundles: HashMap::new(),
        })
    }

    /// The complete bundles message for `who` (who must be entitled to some identity).
    pub fn x509_bundles(&self, who: &Attested) -> Result<X509BundlesResponse, Status> {
        let state = self.sync.borrow().clone().ok_or_else(not_ready)?;
        let entitled = match (&self.k8s, &who.k8s) {
            // The default identity: entitled while the pod is in the node's watch.
            (Some(k8s), Some(facts)) => k8s.index().by_uid(&facts.evidence.pod_uid).is_some(),
            _ => !who.entitled(&self.entitlements.of(&state)).is_empty(),
        };
        if !entitled {
            let factor = if who.k8s.is_some() {
                Factor::W2
            } else {
                Factor::Policy
            };
            info!(target: "sworn::audit", %factor, uid = who.uid(), pid = who.pid(), "no entry matches the caller");
            return Err(no_identity());
        }
        who.recheck().map_err(|e| {
            info!(target: "sworn::audit", factor = %who.kernel_factor(), error = %e, uid = who.uid(), pid = who.pid(), "caller changed during attestation");
            no_identity()
        })?;
        // Keyed by the trust domain's ID form, as SPIRE does; public clients parse both forms.
        let key = format!("spiffe://{}", self.trust_domain);
        Ok(X509BundlesResponse {
            crl: Vec::new(),
            bundles: HashMap::from([(key, state.bundle.concat())]),
        })
    }
}
