//! The `MintX509SVIDs` call, for unix and Kubernetes callers alike: one CSR per item,
//! evidence attached, at most [`MAX_MINT_ITEMS`] items per request (docs/architecture.md,
//! "Outcomes").
//!
//! Every item gets exactly one [`Outcome`]. A call that fails as a whole (the server is
//! unreachable, overloaded, refuses the agent itself, or times out) is `Unavailable` for each
//! of its items, never `Denied`: only the server's decision on an item may drop an SVID.

use std::time::Duration;

use sworn_identity::outcome::{Denial, Outcome, Unavailable};
use sworn_identity::{Factor, Grant};
use sworn_proto::agent::{IssuedSvid, MintItem, MintX509SvidsRequest, mint_item, mint_result};
use zeroize::Zeroizing;

use super::svid::WorkloadSvid;
use crate::key;
use crate::telemetry::Metrics;
use crate::upstream::Upstream;

const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Most items in one request (the server refuses more).
pub const MAX_MINT_ITEMS: usize = 256;

/// The outcome of one item.
pub type MintOutcome = Outcome<WorkloadSvid>;

/// Why a whole mint produced nothing for a caller with no SVID to fall back on.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// The server is unreachable, overloaded, refuses the agent itself, or could not decide;
    /// retried later.
    #[error("the server is unavailable: {0}")]
    Unavailable(String),
}

/// The `mode` label of an item's outcome: `unix` or `k8s`, after its evidence.
fn mode(evidence: &mint_item::Evidence) -> &'static str {
    match evidence {
        mint_item::Evidence::Unix(_) => "unix",
        mint_item::Evidence::K8s(_) => "k8s",
    }
}

/// Mints one SVID per `(entry, evidence)` item, in requests of at most
/// [`MAX_MINT_ITEMS`] (the mint queue hands it one request's worth). The result has one
/// outcome per item, in order.
pub async fn mint_items(
    upstream: &Upstream,
    metrics: &Metrics,
    items: Vec<(Grant, mint_item::Evidence)>,
) -> Vec<(Grant, MintOutcome)> {
    let mut out = Vec::with_capacity(items.len());
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        let chunk: Vec<_> = items.by_ref().take(MAX_MINT_ITEMS).collect();
        let ids: Vec<(Grant, &'static str)> = chunk
            .iter()
            .map(|(id, evidence)| (*id, mode(evidence)))
            .collect();
        let outcomes = match mint_chunk(upstream, metrics, chunk).await {
            Ok(outcomes) => outcomes,
            Err(reason) => ids
                .iter()
                .map(|_| Outcome::Unavailable(Unavailable::new(Factor::Store, reason.clone())))
                .collect(),
        };
        for ((id, mode), outcome) in ids.into_iter().zip(outcomes) {
            metrics.mint_outcome(mode, outcome.label());
            out.push((id, outcome));
        }
    }
    out
}

/// One request. `Err` when the call as a whole failed (every item is then unavailable).
async fn mint_chunk(
    upstream: &Upstream,
    metrics: &Metrics,
    items: Vec<(Grant, mint_item::Evidence)>,
) -> Result<Vec<MintOutcome>, String> {
    let mut link = upstream
        .client()
        .ok_or_else(|| "the agent is not attested".to_owned())?;
    let mut keys = Vec::with_capacity(items.len());
    let mut request = MintX509SvidsRequest::default();
    for (entry_id, evidence) in &items {
        let fresh = key::generate().map_err(|e| e.to_string())?;
        request.items.push(MintItem {
            entry_id: entry_id.to_wire(),
            csr: fresh.csr,
            evidence: Some(evidence.clone()),
        });
        keys.push(fresh.key);
    }
    let mut retried = false;
    let response = loop {
        metrics.mint_requests.inc();
        let call = link.client.mint_x509_svids(request.clone());
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(r)) => break r.into_inner(),
            Ok(Err(status)) => {
                if matches!(
                    status.code(),
                    tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
                ) {
                    upstream.report_refused(link.generation);
                    // The agent renewed its own SVID while this call was on its way: the
                    // server refused the superseded certificate, not the agent. Ask again,
                    // once, with the identity the agent holds now.
                    if let Some(newer) = upstream
                        .client()
                        .filter(|l| !retried && l.generation != link.generation)
                    {
                        link = newer;
                        retried = true;
                        continue;
                    }
                }
                return Err(format!("{}: {}", status.code(), status.message()));
            }
            Err(_) => return Err("the mint call timed out".into()),
        }
    };
    if response.results.len() != items.len() {
        return Err(format!(
            "{} results for {} items",
            response.results.len(),
            items.len()
        ));
    }
    Ok(items
        .into_iter()
        .zip(keys)
        .zip(response.results)
        .map(|(((entry_id, _), key), r)| {
            let factor = r.factor.parse::<Factor>();
            match r.result {
                Some(mint_result::Result::Svid(issued)) => match accept(issued, entry_id, key) {
                    Ok(svid) => Outcome::Issued(svid),
                    // A server answer that does not fit is a fault on its side, not a
                    // decision about the workload: keep what is cached.
                    Err(reason) => Outcome::Unavailable(Unavailable::new(Factor::Csr, reason)),
                },
                // Servers are upgraded first and always name the factor; a missing one is
                // reported as policy.
                Some(mint_result::Result::Denied(reason)) => {
                    Outcome::Denied(Denial::new(factor.unwrap_or(Factor::Policy), reason))
                }
                Some(mint_result::Result::Unavailable(reason)) => {
                    Outcome::Unavailable(Unavailable::new(factor.unwrap_or(Factor::Store), reason))
                }
                None => Outcome::Unavailable(Unavailable::new(
                    Factor::Store,
                    "the server sent no outcome",
                )),
            }
        })
        .collect())
}

/// Checks an issued SVID against what was asked: the right entry, a leaf naming the SPIFFE
/// ID, a parsable validity.
fn accept(
    issued: IssuedSvid,
    entry_id: Grant,
    key: Zeroizing<Vec<u8>>,
) -> Result<WorkloadSvid, String> {
    // An empty `entry_id` in the answer means "the one asked for" (results are positional).
    if !issued.entry_id.is_empty() && issued.entry_id != entry_id.to_wire() {
        return Err(format!("server answered for entry {:?}", issued.entry_id));
    }
    let leaf = issued.chain.first().ok_or("empty chain")?;
    if crate::tls::single_uri_san(leaf).as_deref() != Some(issued.spiffe_id.as_str()) {
        return Err("the leaf does not carry the spiffe id".into());
    }
    let (not_before, not_after) = crate::cert::validity(leaf).ok_or("unparsable leaf")?;
    Ok(WorkloadSvid {
        spiffe_id: issued.spiffe_id,
        entry_id,
        chain: issued.chain,
        key,
        hint: issued.hint,
        not_before,
        not_after,
    })
}

/// The retry schedule after `Unavailable` for an SVID of `lifetime`: from 1 s, doubling,
/// capped at min(5 s, lifetime/10), so a renewal lands within 5 s of the server's recovery
/// and a short-lived SVID still gets several tries before it expires.
pub fn retry_backoff(lifetime: Duration) -> crate::backoff::Backoff {
    let cap = (lifetime / 10).min(Duration::from_secs(5));
    let base = Duration::from_secs(1).min(cap);
    crate::backoff::Backoff::new(base, cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_backoff_is_capped_by_a_tenth_of_the_lifetime_and_five_seconds() {
        let mut b = retry_backoff(Duration::from_secs(40));
        let delays: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        assert!(delays[0] <= Duration::from_secs(1), "{delays:?}");
        assert!(
            delays.iter().all(|d| *d <= Duration::from_secs(4)),
            "{delays:?}"
        );
        let mut b = retry_backoff(Duration::from_secs(3600));
        assert!(
            (0..20).all(|_| b.next_delay() <= Duration::from_secs(5)),
            "capped at 5 s"
        );
        let mut b = retry_backoff(Duration::from_secs(5));
        assert!((0..5).all(|_| b.next_delay() <= Duration::from_millis(500)));
    }
}
