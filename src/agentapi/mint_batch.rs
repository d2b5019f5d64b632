//! A mint request's items, from decided to answered (docs/architecture.md, "Outcomes").
//!
//! Every item is verified and, when allowed, signed first; then the audit rows of all the
//! request's items are committed in one transaction; only then is any outcome final. So a
//! request costs one commit (one fsync with `synchronous=FULL`), not one per item, and it
//! stays fail-closed: if the commit fails, no SVID of the request leaves the server and no
//! denial is acted on: every item is `Unavailable` (factor `store`).

use serde_json::Value;
use sworn_identity::Factor;
use sworn_identity::outcome::{Outcome, Refusal, Unavailable};
use sworn_proto::agent as pb;

use super::decision::{Minted, merge};
use super::k8s::Failed;
use crate::audit::{Decision, Event, Kind};
use crate::clock::unix_secs;
use crate::shared::Shared;
use crate::telemetry::Metrics;

/// One mint item verified (and signed, if allowed), not yet audited, so not yet an outcome.
#[derive(Debug)]
pub struct Decided {
    /// The item's `entry_id` as the agent sent it, echoed in its result.
    pub entry_id: String,
    /// `workload` or `k8s`, the `kind` of `sworn_server_svids_total`.
    pub mode: &'static str,
    /// The audit detail so far.
    pub detail: Value,
    /// The certificate, or why there is none.
    pub minted: Result<Minted, Failed>,
}

/// What an item becomes once its audit row is committed.
enum Pending {
    Issued(Minted),
    Refused(Refusal),
}

impl Decided {
    /// The item's audit event and what it stands for.
    fn audited(self) -> (Event, Pending) {
        let mut detail = self.detail;
        match self.minted {
            Ok(m) => {
                detail["serial"] = m.svid.serial.to_string().into();
                detail["expires_at"] = unix_secs(m.svid.not_after).into();
                (
                    Event::new(Kind::Mint, Decision::Allow, detail),
                    Pending::Issued(m),
                )
            }
            Err(Failed { refusal, extra }) => {
                merge(&mut detail, &extra);
                (
                    Event::refusal(Kind::Mint, &refusal, detail),
                    Pending::Refused(refusal),
                )
            }
        }
    }
}

/// Audits every item of a request in one commit, then answers each (in request order) and
/// counts its outcome.
pub async fn conclude(shared: &Shared, decided: Vec<Decided>) -> Vec<pb::MintResult> {
    let mut events = Vec::with_capacity(decided.len());
    let mut pending = Vec::with_capacity(decided.len());
    for d in decided {
        let (entry_id, mode) = (d.entry_id.clone(), d.mode);
        let (event, p) = d.audited();
        events.push(event);
        pending.push((entry_id, mode, p));
    }
    let fault = match shared.audit.record_all(events).await {
        Ok(()) => None,
        Err(e) => {
            tracing::error!(error = %e, items = pending.len(), "cannot write the audit events of a mint request; answering unavailable");
            Some(format!("audit write: {e}"))
        }
    };
    pending
        .into_iter()
        .map(|(entry_id, mode, p)| {
            let outcome = outcome(p, fault.as_deref());
            let label = match &outcome {
                Outcome::Issued(_) => "allow",
                Outcome::Denied(_) => "deny",
                Outcome::Unavailable(_) => "unavailable",
            };
            Metrics::count(&shared.metrics.svids, mode, label);
            mint_result(entry_id, outcome)
        })
        .collect()
}

/// The outcome of an item whose audit row was committed (`fault` is `None`) or not. An
/// allow or a deny that cannot be audited becomes `Unavailable`: nothing is issued, and
/// nothing is revoked, without its audit record.
fn outcome(pending: Pending, fault: Option<&str>) -> Outcome<Minted> {
    match (pending, fault) {
        (Pending::Refused(Refusal::Unavailable(u)), _) => {
            tracing::warn!(factor = %u.source, reason = %u.reason, "mint unavailable");
            Outcome::Unavailable(u)
        }
        (Pending::Issued(m), None) => Outcome::Issued(m),
        (Pending::Refused(Refusal::Denied(d)), None) => Outcome::Denied(d),
        (_, Some(reason)) => Outcome::Unavailable(Unavailable::new(Factor::Store, reason)),
    }
}

/// What the agent is told of an outcome: the generic text, never the audit detail.
fn mint_result(entry_id: String, outcome: Outcome<Minted>) -> pb::MintResult {
    match outcome {
        Outcome::Issued(Minted { svid, hint }) => pb::MintResult {
            result: Some(pb::mint_result::Result::Svid(pb::IssuedSvid {
                spiffe_id: svid.spiffe_id.as_str().to_owned(),
                entry_id,
                chain: svid.chain_der,
                expires_at: unix_secs(svid.not_after),
                hint,
            })),
            factor: String::new(),
        },
        Outcome::Denied(d) => pb::MintResult {
            result: Some(pb::mint_result::Result::Denied(
                "no identity issued".to_owned(),
            )),
            factor: d.factor.as_str().to_owned(),
        },
        Outcome::Unavailable(u) => pb::MintResult {
            result: Some(pb::mint_result::Result::Unavailable(match u.source {
                Factor::Api => "kubernetes API unavailable; retry".to_owned(),
                _ => "datastore unavailable; retry".to_owned(),
            })),
            factor: u.source.as_str().to_owned(),
        },
    }
}
