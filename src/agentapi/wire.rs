//! Conversions from the server's own types to the agent protocol (`sworn.agent.v1`).

use sworn_proto::agent as pb;

use crate::policy::entry::{target_fields, ttl_seconds};
use crate::store::Entry;

/// A stored entry as agents receive it in Sync.
pub fn entry_to_pb(e: &Entry) -> pb::Entry {
    let (spiffe_id, spiffe_id_template) = target_fields(&e.target);
    pb::Entry {
        id: e.id.to_string(),
        spiffe_id,
        spiffe_id_template,
        selectors: e.selectors.iter().map(ToString::to_string).collect(),
        node: e.node.as_ref().map(ToString::to_string).unwrap_or_default(),
        ttl_seconds: ttl_seconds(e.ttl),
        dns_names: e.dns_names.clone(),
        hint: e.hint.clone(),
        created_at: e.created_at,
    }
}
