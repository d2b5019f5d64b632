//! Kubernetes node attestation (N1–N5) and the server's re-verification of
//! workload evidence (W4, W5), docs/architecture.md "Factors".
//!
//! Each verifier returns a typed result: the facts it established, or a
//! [`Failed`] holding a [`Refusal`] and the values compared (for the audit
//! log). A refusal is either a denial naming the one factor that failed, or
//! `Unavailable` when the API server could not answer (transport errors, 5xx,
//! 429, RBAC refusals of the server itself, and calls past
//! `k8s_call_timeout`). The caller audits and maps it; the agent only ever
//! hears "attestation refused" / "no identity issued" / "unavailable".

use std::collections::BTreeSet;

use super::auth::Authenticated;
use super::decision::Verified;
use crate::k8s::pod;
use crate::k8s::review::{ReviewError, review};
use crate::k8s::{Cluster, K8sError, within};
use crate::policy::matching::{check_scope, entry_matches};
use crate::policy::template::IdTemplate;
use crate::shared::Shared;
use crate::store::{AgentMethod, AttestedAgent, CredentialKept, EntryTarget};
use base64::Engine as _;
use serde_json::{Value, json};
use sworn_identity::evidence::K8sEvidence;
use sworn_identity::evidence_node::K8sNodeEvidence;
use sworn_identity::outcome::Refusal;
use sworn_identity::pod::{CallingError, PodFacts};
use sworn_identity::{AgentId, Factor, Grant, SpiffeIdentity};

/// A refusal and the values it compared.
#[derive(Debug)]
pub struct Failed {
    /// Denied or unavailable.
    pub refusal: Refusal,
    /// Audit detail (IDs, names and results; never a token).
    pub extra: Value,
}

impl From<K8sError> for Failed {
    fn from(e: K8sError) -> Self {
        Failed {
            refusal: Refusal::unavailable(Factor::Api, e.to_string()),
            extra: json!({}),
        }
    }
}

impl From<Refusal> for Failed {
    fn from(refusal: Refusal) -> Self {
        Failed {
            refusal,
            extra: json!({}),
        }
    }
}

fn deny(factor: Factor, reason: impl Into<String>, extra: Value) -> Failed {
    Failed {
        refusal: Refusal::denied(factor, reason),
        extra,
    }
}

fn review_refusal(factor: Factor, e: ReviewError) -> Failed {
    match e {
        ReviewError::Api(k) => k.into(),
        other => deny(factor, other.to_string(), json!({})),
    }
}

/// Verifies a Kubernetes agent's attestation (N1–N5): the agent record to store and the
/// audit detail, or the refusal.
pub async fn verify_node(
    shared: &Shared,
    req: &K8sNodeEvidence,
) -> Result<(AttestedAgent, Value), Failed> {
    let deadline = shared.config.k8s_call_timeout;
    let cluster: &Cluster = shared
        .clusters
        .get(&req.cluster)
        .ok_or_else(|| deny(Factor::Cluster, "unknown cluster", json!({})))?;
    // N1: the token, for the dedicated agent audience.
    let r = within(
        deadline,
        review(&cluster.client, &req.token, &cluster.config.agent_audience),
    )
    .await
    .map_err(|e| review_refusal(Factor::N1, e))?;
    // N2: the service account is allowed.
    let sa = format!("{}:{}", r.namespace, r.service_account);
    if !cluster.config.agent_service_accounts.contains(&sa) {
        return Err(deny(
            Factor::N2,
            "service account not allowed",
            json!({"service_account": sa}),
        ));
    }
    // Single use of the credential.
    let jti = r.credential_id.clone().ok_or_else(|| {
        deny(
            Factor::N1,
            "token has no credential-id (not a bound token)",
            json!({}),
        )
    })?;
    // N3: the bound pod is live and is the one named.
    let (pod_name, pod_uid) = match (&r.pod_name, &r.pod_uid) {
        (Some(n), Some(u)) => (n.clone(), u.clone()),
        _ => {
            return Err(deny(
                Factor::N3,
                "token is not bound to a pod",
                json!({"service_account": sa}),
            ));
        }
    };
    let pod = within(
        deadline,
        pod::get_pod(&cluster.client, &r.namespace, &pod_name),
    )
    .await?
    .ok_or_else(|| {
        deny(
            Factor::N3,
            "bound pod does not exist",
            json!({"pod": pod_name}),
        )
    })?;
    let live_uid = pod.metadata.uid.clone().unwrap_or_default();
    if live_uid != pod_uid {
        return Err(deny(
            Factor::N3,
            "bound pod was replaced (UID differs)",
            json!({"pod": pod_name, "token_pod_uid": pod_uid, "live_pod_uid": live_uid}),
        ));
    }
    if pod.metadata.deletion_timestamp.is_some() {
        return Err(deny(
            Factor::N3,
            "bound pod is being deleted",
            json!({"pod": pod_name}),
        ));
    }
    // N4: the node.
    let node_name = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default();
    if node_name.is_empty() {
        return Err(deny(
            Factor::N4,
            "bound pod is not scheduled",
            json!({"pod": pod_name}),
        ));
    }
    if let Some(n) = &r.node_name
        && n != &node_name
    {
        return Err(deny(
            Factor::N4,
            "token node differs from the pod's node",
            json!({"token_node": n, "pod_node": node_name}),
        ));
    }
    let node = within(deadline, pod::get_node(&cluster.client, &node_name))
        .await?
        .ok_or_else(|| {
            deny(
                Factor::N4,
                "node does not exist",
                json!({"node": node_name}),
            )
        })?;
    let node_uid = node.metadata.uid.clone().unwrap_or_default();
    if let Some(u) = &r.node_uid
        && u != &node_uid
    {
        return Err(deny(
            Factor::N4,
            "token node UID differs from the node's",
            json!({"token_node_uid": u, "node_uid": node_uid}),
        ));
    }
    let id = AgentId::new(
        &shared.config.trust_domain,
        &["k8s", &cluster.config.name, &node_uid, &pod_uid],
    )
    .map_err(|e| deny(Factor::N4, e.to_string(), json!({})))?;
    // N5: neither this agent nor its node is banned. A node ban matches the node's UID or
    // its name, so a re-created agent pod (a new agent ID) or a node re-created under the
    // same name (a new UID) is still refused (docs/architecture.md, "Bans").
    let store_fault = |e: crate::store::StoreError| -> Failed {
        Refusal::unavailable(Factor::Store, e.to_string()).into()
    };
    if let Some(banned) = shared
        .store
        .node_ban(&cluster.config.name, &node_uid, &node_name)
        .await
        .map_err(store_fault)?
    {
        return Err(deny(
            Factor::N5,
            "node is banned",
            json!({"agent_id": id.as_str(), "node": node_name, "node_uid": node_uid,
                   "banned_agent_id": banned.as_str()}),
        ));
    }
    match shared.store.get_agent(&id).await.map_err(store_fault)? {
        Some(a) if a.banned => {
            return Err(deny(
                Factor::N5,
                "agent is banned",
                json!({"agent_id": id.as_str()}),
            ));
        }
        _ => {}
    }
    // Replay: last, so a refused attempt does not burn the credential. The ID is kept until
    // the token itself has expired (plus skew), whatever its lifetime.
    let kept = CredentialKept::for_token(token_exp(&req.token), shared.now());
    match shared.store.record_credential(&jti, kept).await {
        Ok(true) => {}
        Ok(false) => {
            return Err(deny(
                Factor::N1,
                "token credential already used (replay)",
                json!({"credential_id": jti, "pod": pod_name}),
            ));
        }
        Err(e) => return Err(Refusal::unavailable(Factor::Store, e.to_string()).into()),
    }
    let detail = json!({
        "method": "k8s", "cluster": cluster.config.name, "service_account": sa,
        "pod": pod_name, "pod_uid": pod_uid, "node": node_name, "node_uid": node_uid,
        "credential_id": jti,
        "factors": {"N1": "ok", "N2": "ok", "N3": "ok", "N4": "ok", "N5": "ok"},
    });
    Ok((
        AttestedAgent {
            id,
            method: AgentMethod::K8s,
            node_name,
            node_uid,
            pod_uid,
            cluster: cluster.config.name.clone(),
        },
        detail,
    ))
}

/// The `exp` claim of a token TokenReview accepted (so its claims are the API server's own):
/// the JWT's middle part, base64url JSON (RFC 7519 §4.1.4). `None` when it has none.
fn token_exp(token: &str) -> Option<i64> {
    let claims = token.split('.').nth(1)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice::<Value>(&json).ok()?["exp"].as_i64()
}

/// The audit fields of Kubernetes evidence, parsed (so bounded), before anything is verified.
pub fn evidence_detail(agent: &Authenticated, ev: &K8sEvidence) -> Value {
    json!({
        "agent_node": agent.record.agent.node_name,
        "pod_uid": ev.pod_uid.to_string(), "pod": ev.pod_name, "namespace": ev.namespace,
        "container_id": ev.container_id.to_string(),
    })
}

/// Re-verifies every factor of Kubernetes evidence (W1 form, W3 token, W4, W2 as the
/// server reads it, W5) and returns what to mint.
pub async fn verify_workload(
    shared: &Shared,
    agent: &Authenticated,
    grant: Grant,
    ev: &K8sEvidence,
) -> Result<Verified, Failed> {
    let deadline = shared.config.k8s_call_timeout;
    let record = &agent.record.agent;
    if record.method != AgentMethod::K8s {
        return Err(deny(
            Factor::AgentMethod,
            "kubernetes evidence from an agent that did not attest through kubernetes",
            json!({"agent_method": record.method.as_str()}),
        ));
    }
    let cluster = shared.clusters.get(&record.cluster).ok_or_else(|| {
        deny(
            Factor::Cluster,
            "agent's cluster is not configured",
            json!({"cluster": record.cluster}),
        )
    })?;
    let pod_uid = ev.pod_uid.to_string();
    // W4: the pod's own token, for the workload audience.
    let r = within(
        deadline,
        review(
            &cluster.client,
            &ev.token,
            &cluster.config.workload_audience,
        ),
    )
    .await
    .map_err(|e| review_refusal(Factor::W4, e))?;
    let checks = [
        ("pod-uid", r.pod_uid.as_deref(), Some(pod_uid.as_str())),
        (
            "pod-name",
            r.pod_name.as_deref(),
            Some(ev.pod_name.as_str()),
        ),
        (
            "namespace",
            Some(r.namespace.as_str()),
            Some(ev.namespace.as_str()),
        ),
        (
            "node-name",
            r.node_name.as_deref(),
            Some(record.node_name.as_str()),
        ),
        (
            "node-uid",
            r.node_uid.as_deref(),
            Some(record.node_uid.as_str()),
        ),
    ];
    for (what, token_value, expected) in checks {
        if token_value != expected {
            return Err(deny(
                Factor::W4,
                format!("token {what} differs"),
                json!({"compared": what, "token": token_value, "expected": expected}),
            ));
        }
    }
    // Always read the pod: TokenReview may answer from a cache for ~10 s after deletion.
    let pod = within(
        deadline,
        pod::get_pod(&cluster.client, &r.namespace, &ev.pod_name),
    )
    .await?
    .ok_or_else(|| deny(Factor::W4, "pod does not exist", json!({})))?;
    let facts = PodFacts::from_pod(&pod)
        .map_err(|e| deny(Factor::W4, format!("pod read: {e}"), json!({})))?;
    if facts.pod_uid != ev.pod_uid {
        return Err(deny(
            Factor::W4,
            "pod was replaced (UID differs)",
            json!({"live_pod_uid": facts.pod_uid.to_string()}),
        ));
    }
    if facts.deleting {
        return Err(deny(Factor::W4, "pod is being deleted", json!({})));
    }
    if facts.node_name.as_deref() != Some(record.node_name.as_str()) {
        return Err(deny(
            Factor::W4,
            "pod runs on another node",
            json!({"pod_node": facts.node_name}),
        ));
    }
    if facts.service_account != r.service_account {
        return Err(deny(
            Factor::W4,
            "token service account differs from the pod's",
            json!({"token_sa": r.service_account, "pod_sa": facts.service_account}),
        ));
    }
    // W2 as the server sees it: the calling container, by ID, is running; never ephemeral.
    let container = facts
        .calling_container(&ev.container_id, false)
        .map_err(|e| match e {
            CallingError::Unknown(_) => deny(
                Factor::W2,
                "container ID not in the pod's statuses",
                json!({}),
            ),
            CallingError::Ephemeral(name) => deny(
                Factor::W2,
                "ephemeral containers are refused",
                json!({"container": name}),
            ),
            CallingError::NotRunning(name) => deny(
                Factor::W2,
                "container is not running",
                json!({"container": name}),
            ),
        })?;
    let selectors: BTreeSet<_> = facts.selectors(container);
    let factors = json!({"W1": "agent", "W2": "ok", "W3": "ok", "W4": "ok"});
    // W5: policy.
    let td = &shared.config.trust_domain;
    let Grant::Entry(entry_id) = grant else {
        if !cluster.config.default_identity {
            return Err(deny(Factor::W5, "default identity is disabled", json!({})));
        }
        let id = SpiffeIdentity::from_segments(
            td,
            &["ns", &facts.namespace, "sa", &facts.service_account],
        )
        .map_err(|e| deny(Factor::W5, format!("default identity: {e}"), json!({})))?;
        let detail =
            json!({"factors": factors, "identity": "default", "container": container.name});
        return Ok(Verified {
            id,
            ttl: shared.config.default_svid_ttl,
            dns: Vec::new(),
            hint: String::new(),
            detail,
        });
    };
    let entry = match shared.store.get_entry(&entry_id).await {
        Ok(Some(e)) => e,
        Ok(None) => return Err(deny(Factor::Entry, "no such entry", json!({}))),
        Err(e) => return Err(Refusal::unavailable(Factor::Store, e.to_string()).into()),
    };
    check_scope(&entry, agent.record.id()).map_err(|reason| {
        deny(
            Factor::EntryScope,
            reason,
            json!({"entry_node": entry.node}),
        )
    })?;
    if !entry_matches(&entry, &selectors) {
        return Err(deny(
            Factor::W5,
            "entry selectors do not match the pod",
            json!({"container": container.name}),
        ));
    }
    let rendered = match &entry.target {
        EntryTarget::Id(id) => id.clone(),
        // A stored template that breaks today's rules (docs/architecture.md, "ID templates")
        // is the entry's defect, not the pod's: never rendered.
        EntryTarget::Template(t) => IdTemplate::parse(t, td.as_str())
            .map_err(|e| {
                deny(
                    Factor::Entry,
                    format!("stored template invalid: {e}"),
                    json!({}),
                )
            })?
            .render(&facts)
            .map_err(|e| deny(Factor::W5, format!("template: {e}"), json!({})))?,
    };
    let id = SpiffeIdentity::parse(&rendered)
        .map_err(|e| deny(Factor::Entry, format!("ID: {e}"), json!({})))?;
    let detail = json!({"factors": factors, "identity": "entry", "container": container.name});
    Ok(Verified {
        id,
        ttl: entry.ttl.unwrap_or(shared.config.default_svid_ttl),
        dns: entry.dns_names,
        hint: entry.hint,
        detail,
    })
}
