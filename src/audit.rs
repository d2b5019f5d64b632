//! The audit log: every decision, allowed or denied, and every admin change
//! (docs/architecture.md, "Outcomes").
//!
//! An event is written to the datastore (so `sworn-server audit` survives
//! restarts), emitted on the `sworn::audit` tracing target, and broadcast to
//! `audit --follow` streams. Writing is part of the decision: if the event
//! cannot be stored, the caller fails closed and issues nothing. Details never
//! hold tokens, keys or certificates; they hold IDs, names and results.
//!
//! The events of one decision batch (a mint request's items) are written together in one
//! transaction ([`Audit::record_all`]), so one commit acknowledges them all, and the
//! batch is acted on only after it.
//!
//! Every field is bounded where the request is parsed (docs/architecture.md, "Bounded
//! input"); as a second line, [`Audit::record_all`] replaces any string longer than
//! [`MAX_DETAIL_STRING`] with a short escaped preview, so no row or log line carries a
//! request-sized value. The table itself is bounded by `audit_retention`
//! (`store::retention`).

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use serde_json::Value;
use sworn_identity::evidence_bounds::preview;
use sworn_identity::outcome::Refusal;
use tokio::sync::broadcast;

use crate::clock::{Clock, unix_now};
use crate::store::{AuditRecord, NewAudit, Store, StoreError};
use crate::telemetry::Metrics;

/// Allow, deny, or no decision because of a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The request was granted.
    Allow,
    /// The request was refused (a decision; the detail names the failed factor).
    Deny,
    /// No decision: a datastore or Kubernetes API fault stopped it (the detail names the
    /// failed dependency). Nothing was issued and nothing is revoked for it.
    Unavailable,
}

impl Decision {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::Unavailable => "unavailable",
        }
    }
}

/// What an event is about. The stored and logged `kind` is [`Kind::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An agent attested (join token or Kubernetes) or renewed its SVID.
    AgentAttest,
    /// An agent was banned.
    AgentBan,
    /// An agent was unbanned.
    AgentUnban,
    /// A registration entry was created.
    EntryCreate,
    /// A registration entry was deleted.
    EntryDelete,
    /// A workload SVID was asked for (agent API or `x509 mint`).
    Mint,
    /// A join token was generated.
    TokenGenerate,
}

impl Kind {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::AgentAttest => "agent.attest",
            Kind::AgentBan => "agent.ban",
            Kind::AgentUnban => "agent.unban",
            Kind::EntryCreate => "entry.create",
            Kind::EntryDelete => "entry.delete",
            Kind::Mint => "mint",
            Kind::TokenGenerate => "token.generate",
        }
    }
}

/// Longest string an audit detail keeps as it is (a SPIFFE ID is at most 2048 bytes).
pub const MAX_DETAIL_STRING: usize = 2048;

/// Replaces every string longer than [`MAX_DETAIL_STRING`] in `v` with its preview.
fn bound_strings(v: &mut Value) {
    match v {
        Value::String(s) if s.len() > MAX_DETAIL_STRING => *s = preview(s),
        Value::Array(items) => items.iter_mut().for_each(bound_strings),
        Value::Object(fields) => fields.values_mut().for_each(bound_strings),
        _ => {}
    }
}

/// One event, before it is written.
#[derive(Debug, Clone)]
pub struct Event {
    kind: Kind,
    decision: Decision,
    detail: Value,
}

impl Event {
    /// An event of `kind` with `decision`. `detail` must be a JSON object without secrets.
    pub fn new(kind: Kind, decision: Decision, detail: Value) -> Self {
        Event {
            kind,
            decision,
            detail,
        }
    }

    /// A refusal: decision `deny` or `unavailable`, with the refusal's factor (for
    /// `unavailable`, the dependency that failed) and reason added to `detail`.
    pub fn refusal(kind: Kind, refusal: &Refusal, mut detail: Value) -> Self {
        detail["factor"] = refusal.factor().as_str().into();
        let (decision, reason) = match refusal {
            Refusal::Denied(d) => (Decision::Deny, &d.reason),
            Refusal::Unavailable(u) => (Decision::Unavailable, &u.reason),
        };
        detail["reason"] = reason.clone().into();
        Event::new(kind, decision, detail)
    }

    fn row(mut self, at: i64) -> NewAudit {
        bound_strings(&mut self.detail);
        NewAudit {
            at,
            kind: self.kind.as_str().to_owned(),
            decision: self.decision.as_str().to_owned(),
            detail: self.detail.to_string(),
        }
    }
}

/// Writes audit events.
#[derive(Debug, Clone)]
pub struct Audit {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    live: broadcast::Sender<AuditRecord>,
    commits: Counter,
    rows: Counter,
}

impl Audit {
    /// An audit log on `store`, counting its commits in `metrics`.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, metrics: &Metrics) -> Self {
        let (live, _) = broadcast::channel(1024);
        Audit {
            store,
            clock,
            live,
            commits: metrics.audit_commits.clone(),
            rows: metrics.audit_rows.clone(),
        }
    }

    /// Records a refusal ([`Event::refusal`]).
    pub async fn record_refusal(
        &self,
        kind: Kind,
        refusal: &Refusal,
        detail: Value,
    ) -> Result<(), StoreError> {
        self.record_all(vec![Event::refusal(kind, refusal, detail)])
            .await
    }

    /// Records one event. `detail` must be a JSON object without secrets.
    pub async fn record(
        &self,
        kind: Kind,
        decision: Decision,
        detail: Value,
    ) -> Result<(), StoreError> {
        self.record_all(vec![Event::new(kind, decision, detail)])
            .await
    }

    /// Records `events` in one transaction: once this returns `Ok`, every one is stored; on
    /// an error, none is, and none may be acted on. No events, no transaction.
    pub async fn record_all(&self, events: Vec<Event>) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let at = unix_now(self.clock.as_ref());
        let rows: Vec<NewAudit> = events.into_iter().map(|e| e.row(at)).collect();
        let ids = self.store.append_audits(&rows).await?;
        self.commits.inc();
        self.rows
            .inc_by(u64::try_from(rows.len()).unwrap_or(u64::MAX));
        for (id, row) in ids.into_iter().zip(rows) {
            tracing::info!(target: "sworn::audit", id, kind = %row.kind, decision = %row.decision, detail = %row.detail, "audit");
            // No receivers is fine: nobody is following.
            let _ = self.live.send(row.stored(id));
        }
        Ok(())
    }

    /// Live events from now on, for `audit --follow`.
    pub fn subscribe(&self) -> broadcast::Receiver<AuditRecord> {
        self.live.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_strings_are_cut_to_a_preview_wherever_they_are() {
        let long = "c".repeat(3 << 20);
        let mut v = serde_json::json!({"cluster": long, "nested": [{"x": long}], "ok": "dev"});
        bound_strings(&mut v);
        let text = v.to_string();
        assert!(text.len() < 512, "{text}");
        assert_eq!(v["ok"], "dev");
        assert!(v["cluster"].as_str().unwrap().ends_with("[3145728 bytes]"));
    }
}
