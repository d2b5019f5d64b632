//! The `MintX509SVIDs` call: one CSR per item, evidence attached (DESIGN.md §3.3, §3.4).

use std::time::Duration;

use sworn_proto::agent::{
    IssuedSvid, MintItem, MintX509SvidsRequest, UnixEvidence, mint_item, mint_result,
};
use zeroize::Zeroizing;

use super::{SvidCache, WorkloadSvid};
use crate::key;

const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a mint produced nothing.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// The server is unreachable, overloaded or refuses the agent itself; retried later.
    #[error("the server is unavailable: {0}")]
    Unavailable(String),
    /// The server's answer does not fit the request.
    #[error("unusable mint response: {0}")]
    BadResponse(String),
    /// Key generation failed.
    #[error(transparent)]
    Key(#[from] key::KeyError),
}

/// The outcome for one item.
pub(super) struct Minted {
    pub entry_id: String,
    pub evidence: UnixEvidence,
    /// The SVID, or the server's (generic) refusal text.
    pub result: Result<WorkloadSvid, String>,
}

impl SvidCache {
    /// Mints one SVID per `(entry_id, evidence)`.
    pub(super) async fn mint(
        &self,
        items: Vec<(String, UnixEvidence)>,
    ) -> Result<Vec<Minted>, MintError> {
        let link = self
            .upstream
            .client()
            .ok_or_else(|| MintError::Unavailable("the agent is not attested".into()))?;
        let (mut client, generation) = (link.client, link.generation);
        let mut keys = Vec::with_capacity(items.len());
        let mut request = MintX509SvidsRequest::default();
        for (entry_id, evidence) in &items {
            let fresh = key::generate()?;
            request.items.push(MintItem {
                entry_id: entry_id.clone(),
                csr: fresh.csr,
                evidence: Some(mint_item::Evidence::Unix(evidence.clone())),
            });
            keys.push(fresh.key);
        }
        let response =
            match tokio::time::timeout(CALL_TIMEOUT, client.mint_x509_svids(request)).await {
                Ok(Ok(r)) => r.into_inner(),
                Ok(Err(status)) => {
                    if matches!(
                        status.code(),
                        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
                    ) {
                        self.upstream.report_refused(generation);
                    }
                    return Err(MintError::Unavailable(format!(
                        "{}: {}",
                        status.code(),
                        status.message()
                    )));
                }
                Err(_) => return Err(MintError::Unavailable("the mint call timed out".into())),
            };
        if response.results.len() != items.len() {
            return Err(MintError::BadResponse(format!(
                "{} results for {} items",
                response.results.len(),
                items.len()
            )));
        }
        Ok(items
            .into_iter()
            .zip(keys)
            .zip(response.results)
            .map(|(((entry_id, evidence), key), r)| {
                let result = match r.result {
                    Some(mint_result::Result::Svid(issued)) => accept(issued, &entry_id, key),
                    Some(mint_result::Result::Denied(reason)) => Err(reason),
                    None => Err("empty result".into()),
                };
                Minted {
                    entry_id,
                    evidence,
                    result,
                }
            })
            .collect())
    }
}

/// Checks an issued SVID against what was asked: the right entry, a leaf naming the SPIFFE
/// ID, a parsable validity. A bad one is treated as a refusal.
fn accept(
    issued: IssuedSvid,
    entry_id: &str,
    key: Zeroizing<Vec<u8>>,
) -> Result<WorkloadSvid, String> {
    // An empty `entry_id` in the answer means "the one asked for" (results are positional).
    if !issued.entry_id.is_empty() && issued.entry_id != entry_id {
        return Err(format!("server answered for entry {:?}", issued.entry_id));
    }
    let leaf = issued.chain.first().ok_or("empty chain")?;
    if crate::tls::single_uri_san(leaf).as_deref() != Some(issued.spiffe_id.as_str()) {
        return Err("the leaf does not carry the spiffe id".into());
    }
    let (not_before, not_after) = crate::cert::validity(leaf).ok_or("unparsable leaf")?;
    Ok(WorkloadSvid {
        spiffe_id: issued.spiffe_id,
        entry_id: entry_id.to_owned(),
        chain: issued.chain,
        key,
        hint: issued.hint,
        not_before,
        not_after,
    })
}
