//! The agent API (`sworn.agent.v1.AgentApi`).
//!
//! Attestation failures reach the agent as a generic status; the full reason
//! (which factor, which values) goes to the audit log.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use futures::StreamExt;
use serde_json::{Value, json};
use sworn_identity::evidence::K8sEvidence;
use sworn_identity::evidence_bounds::{EvidenceError, MAX_UUID_BYTES, check_len, preview};
use sworn_identity::evidence_node::{JoinTokenEvidence, K8sNodeEvidence, check_csr};
use sworn_identity::outcome::Refusal;
use sworn_identity::unix::UnixFacts;
use sworn_identity::{AgentId, Factor, Grant, SpiffeIdentity};
use sworn_proto::agent as pb;
use tokio::sync::Semaphore;
use tonic::{Request, Response, Status};

use super::auth::{Authenticated, Refused, authenticate, serial_of, store_unavailable};
use super::conn;
use super::decision::{Minted, Verified, merge};
use super::k8s::Failed;
use super::mint_batch::{self, Decided};
use super::ratelimit::Limiter;
use crate::audit::{Decision, Kind};
use crate::ca::MintRequest;
use crate::clock::unix_secs;
use crate::join_token;
use crate::policy::matching::{check_scope, entry_matches};
use crate::shared::Shared;
use crate::store::{AgentMethod, AgentRecord, AttestedAgent, EntryTarget, StoreError, TokenUse};

/// What a mint item asks for, read from its `entry_id` at the boundary: an ID that is not
/// the one encoding names no entry, so it is denied like an unknown entry (factor `entry`).
fn grant_of(entry_id: &str) -> Result<Grant, Failed> {
    check_len(
        Factor::Entry,
        "entry_id",
        entry_id.len(),
        MAX_UUID_BYTES,
        false,
    )
    .map_err(|e| field_refused(&e, None))?;
    Grant::from_wire(entry_id).map_err(|e| Refusal::denied(Factor::Entry, e.to_string()).into())
}
use crate::telemetry::Metrics;

/// A denial for a field out of bounds: its factor, a reason naming the field and its limit,
/// and in the audit detail the field's name and at most `shown` (a [`preview`]).
fn field_refused(e: &EvidenceError, shown: Option<String>) -> Failed {
    let mut extra = json!({"field": e.field});
    if let Some(shown) = shown {
        extra["value_preview"] = shown.into();
    }
    Failed {
        refusal: Refusal::denied(e.factor(), e.to_string()),
        extra,
    }
}

/// Most items in one mint request.
pub const MAX_MINT_ITEMS: usize = 256;

/// Items of one mint request verified and signed at once: a Kubernetes item waits on
/// TokenReview and a Pod GET, so the items of a batch overlap those waits.
const MINT_CONCURRENCY: usize = 8;

/// The agent API service.
#[derive(Debug, Clone)]
pub struct AgentService {
    shared: Arc<Shared>,
    shutdown: tokio_util::sync::CancellationToken,
    /// Attestations per peer IP: they are unauthenticated and expensive (TokenReview, GETs).
    attest_limit: Arc<Limiter<IpAddr>>,
    /// Mint items, renewals and Sync opens per agent ID.
    mint_limit: Arc<Limiter<String>>,
    /// `Attest` calls in progress (docs/architecture.md, "Agent API limits").
    attests_in_flight: Arc<Semaphore>,
}

impl AgentService {
    /// A service over the shared state, limited by its `[agent_api]` section.
    pub fn new(shared: Arc<Shared>, shutdown: tokio_util::sync::CancellationToken) -> Self {
        let limits = &shared.config.agent_api;
        AgentService {
            attest_limit: Arc::new(Limiter::new(limits.attest)),
            mint_limit: Arc::new(Limiter::new(limits.mint)),
            attests_in_flight: Arc::new(Semaphore::new(limits.max_attests_in_flight)),
            shared,
            shutdown,
        }
    }

    /// Forgets rate-limit keys whose bucket has refilled (run on a timer).
    pub fn prune_limits(&self) {
        self.attest_limit.prune();
        self.mint_limit.prune();
    }

    /// Takes `n` tokens from the agent's bucket, or refuses with `ResourceExhausted`.
    fn limit_agent(&self, agent: &Authenticated, n: usize) -> Result<(), Status> {
        self.limit_agent_id(agent.record.id(), n)
    }

    fn limit_agent_id(&self, id: &AgentId, n: usize) -> Result<(), Status> {
        if self.mint_limit.allow(&id.as_str().to_owned(), n) {
            Ok(())
        } else {
            Err(Status::resource_exhausted("agent rate limit; retry later"))
        }
    }

    /// Authenticates the agent behind `req`; a banned agent's call is audited as a `kind`
    /// denial with factor N5 (`detail` added), within the agent's rate limit so a banned
    /// agent cannot fill the audit log faster than it could mint.
    async fn authenticate_audited<T>(
        &self,
        req: &Request<T>,
        kind: Kind,
        detail: Value,
    ) -> Result<Authenticated, Status> {
        let id = match authenticate(&self.shared, req).await {
            Ok(agent) => return Ok(agent),
            Err(Refused::Status(s)) => return Err(s),
            Err(Refused::Banned(id)) => id,
        };
        self.limit_agent_id(&id, 1)?;
        let mut detail = detail;
        detail["agent_id"] = id.as_str().into();
        let refusal = Refusal::denied(Factor::N5, "agent is banned");
        match self
            .shared
            .audit
            .record_refusal(kind, &refusal, detail)
            .await
        {
            Ok(()) => Err(Refused::Banned(id).into()),
            Err(e) => Err(unavailable(e)),
        }
    }
}

fn unavailable(e: StoreError) -> Status {
    store_unavailable(e)
}

fn peer_addr<T>(req: &Request<T>) -> Option<SocketAddr> {
    conn::info(req).and_then(|i| i.tls.get_ref().remote_addr())
}

use super::sync::SyncStream;

impl AgentService {
    /// Audits and counts a refused attestation, and says what the agent hears: a denial is
    /// `PermissionDenied`, a fault `Unavailable` (retry).
    async fn deny_attest(&self, method: &str, refusal: Refusal, detail: Value) -> Status {
        let decision = match &refusal {
            Refusal::Denied(_) => Decision::Deny,
            Refusal::Unavailable(_) => Decision::Unavailable,
        };
        Metrics::count(&self.shared.metrics.attestations, method, decision.as_str());
        let recorded = self
            .shared
            .audit
            .record_refusal(Kind::AgentAttest, &refusal, detail)
            .await;
        match (refusal, recorded) {
            (Refusal::Unavailable(u), _) => {
                tracing::warn!(factor = %u.source, reason = %u.reason, "attestation unavailable");
                match u.source {
                    Factor::Api => Status::unavailable("kubernetes API unavailable; retry"),
                    _ => Status::unavailable("datastore unavailable"),
                }
            }
            (Refusal::Denied(_), Err(e)) => unavailable(e),
            (Refusal::Denied(_), Ok(_)) => Status::permission_denied("attestation refused"),
        }
    }

    /// Audits an `Attest` refused for one of its fields and answers `InvalidArgument`
    /// naming the field and its limit. The row shows at most `shown`, a [`preview`].
    async fn refuse_attest_field(
        &self,
        method: &str,
        e: &EvidenceError,
        shown: Option<String>,
    ) -> Status {
        let Failed { refusal, mut extra } = field_refused(e, shown);
        merge(&mut extra, &json!({"method": method}));
        match self.deny_attest(method, refusal, extra).await.code() {
            tonic::Code::PermissionDenied => Status::invalid_argument(e.to_string()),
            _ => Status::unavailable("datastore unavailable"),
        }
    }

    /// Mints an agent SVID and records the agent.
    async fn issue_agent(
        &self,
        agent: AttestedAgent,
        csr: Vec<u8>,
        detail: serde_json::Value,
    ) -> Result<pb::AttestResponse, Status> {
        let id = agent.id.spiffe_identity().clone();
        let svid = self
            .shared
            .ca
            .mint_sworn_svid(MintRequest {
                spiffe_id: id,
                csr_der: csr,
                ttl: self.shared.config.agent_svid_ttl,
                dns_names: Vec::new(),
            })
            .map_err(|e| Status::invalid_argument(format!("csr: {e}")))?;
        let serial = svid
            .chain_der
            .first()
            .and_then(|d| serial_of(d))
            .ok_or_else(|| Status::internal("minted certificate does not parse"))?;
        let record = AgentRecord::issued(
            agent,
            serial.clone(),
            unix_secs(svid.not_after),
            self.shared.now(),
        );
        self.shared
            .store
            .upsert_agent(&record)
            .await
            .map_err(unavailable)?;
        let mut detail = detail;
        detail["agent_id"] = record.id().as_str().into();
        detail["serial"] = serial.to_string().into();
        detail["expires_at"] = record.expires_at.into();
        self.shared
            .audit
            .record(Kind::AgentAttest, Decision::Allow, detail)
            .await
            .map_err(unavailable)?;
        Metrics::count(
            &self.shared.metrics.attestations,
            record.agent.method.as_str(),
            "allow",
        );
        Ok(pb::AttestResponse {
            agent_id: record.agent.id.to_string(),
            svid_chain: svid.chain_der,
            bundle: self.shared.ca.bundle().roots_der,
            expires_at: unix_secs(svid.not_after),
        })
    }

    async fn attest_join_token(
        &self,
        token: JoinTokenEvidence,
        csr: Vec<u8>,
        peer: Option<SocketAddr>,
    ) -> Result<pb::AttestResponse, Status> {
        let hash = join_token::hash(token.expose());
        let peer = peer.map(|p| p.to_string()).unwrap_or_default();
        let outcome = self
            .shared
            .store
            .consume_join_token(&hash, self.shared.now())
            .await
            .map_err(unavailable)?;
        let reason = match outcome {
            TokenUse::Consumed => None,
            TokenUse::Unknown => Some("unknown join token"),
            TokenUse::Expired => Some("join token expired"),
            TokenUse::AlreadyUsed => Some("join token already used (replay)"),
        };
        if let Some(reason) = reason {
            // N1 is the node's credential; for a join-token agent, the join token.
            return Err(self
                .deny_attest(
                    "join_token",
                    Refusal::denied(Factor::N1, reason),
                    json!({
                        "method": "join_token",
                        "token_hash_prefix": &hash[..12], "peer": peer,
                    }),
                )
                .await);
        }
        let id = AgentId::new(
            &self.shared.config.trust_domain,
            &["join", &uuid::Uuid::new_v4().to_string()],
        )
        .map_err(|_| Status::internal("agent ID"))?;
        let record = AttestedAgent {
            id,
            method: AgentMethod::JoinToken,
            node_name: String::new(),
            node_uid: String::new(),
            pod_uid: String::new(),
            cluster: String::new(),
        };
        self.issue_agent(
            record,
            csr,
            serde_json::json!({"method": "join_token", "token_hash_prefix": &hash[..12], "peer": peer}),
        )
        .await
    }

    /// Verifies one unix-evidence item: the agent attested by join token, the entry exists,
    /// is scoped to this agent, and its selectors hold for the reported facts.
    async fn verify_unix(
        &self,
        agent: &Authenticated,
        grant: Grant,
        facts: UnixFacts,
    ) -> Result<Verified, Failed> {
        // A Kubernetes agent's callers are pods, attested by W1–W4; unix facts from it are
        // only its word, so it could copy them from any entry's selectors.
        let method = agent.record.agent.method;
        if method != AgentMethod::JoinToken {
            return Err(Failed {
                refusal: Refusal::denied(
                    Factor::AgentMethod,
                    "unix evidence from an agent that did not attest by join token",
                ),
                extra: json!({"agent_method": method.as_str()}),
            });
        }
        let Grant::Entry(entry_id) = grant else {
            return Err(
                Refusal::denied(Factor::Entry, "unix callers have no default identity").into(),
            );
        };
        let entry = match self.shared.store.get_entry(&entry_id).await {
            Ok(Some(e)) => e,
            Ok(None) => return Err(Refusal::denied(Factor::Entry, "no such entry").into()),
            Err(e) => return Err(Refusal::unavailable(Factor::Store, e.to_string()).into()),
        };
        check_scope(&entry, agent.record.id()).map_err(|reason| Failed {
            refusal: Refusal::denied(Factor::EntryScope, reason),
            extra: json!({"entry_node": entry.node}),
        })?;
        let selectors: BTreeSet<_> = facts.selectors();
        if !entry_matches(&entry, &selectors) {
            return Err(Refusal::denied(
                Factor::Policy,
                "evidence does not match the entry's selectors",
            )
            .into());
        }
        let EntryTarget::Id(id) = &entry.target else {
            return Err(
                Refusal::denied(Factor::Policy, "templates need kubernetes evidence").into(),
            );
        };
        let id = SpiffeIdentity::parse(id)
            .map_err(|e| Refusal::denied(Factor::Entry, format!("stored ID invalid: {e}")))?;
        Ok(Verified {
            id,
            ttl: entry.ttl.unwrap_or(self.shared.config.default_svid_ttl),
            dns: entry.dns_names,
            hint: entry.hint,
            detail: json!({"identity": "entry"}),
        })
    }

    /// Decides one mint item: verify the evidence and mint; [`mint_batch::conclude`] audits
    /// it with the rest of its request. Every field is bounded before it reaches the audit
    /// detail (docs/architecture.md, "Bounded input").
    async fn decide_item(&self, agent: &Authenticated, mut item: pb::MintItem) -> Decided {
        let entry_id_sent = item.entry_id.clone();
        let grant = grant_of(&item.entry_id);
        let entry_id = match &grant {
            Ok(g) => g.to_wire(),
            Err(_) => preview(&item.entry_id),
        };
        let mut detail = json!({
            "via": "agent", "agent_id": agent.record.id(), "entry_id": entry_id,
        });
        let grant = check_csr(&item.csr)
            .map_err(|e| field_refused(&e, None))
            .and(grant);
        let (mode, verified) = match item.evidence.take() {
            Some(pb::mint_item::Evidence::Unix(ev)) => {
                let v = match UnixFacts::from_proto(ev) {
                    Ok(facts) => {
                        detail["evidence"] = json!({
                            "uid": facts.uid, "gid": facts.gid,
                            "path": facts.path, "sha256": facts.sha256,
                        });
                        match grant {
                            Ok(grant) => self.verify_unix(agent, grant, facts).await,
                            Err(failed) => Err(failed),
                        }
                    }
                    Err(e) => Err(field_refused(&e, None)),
                };
                ("workload", v)
            }
            Some(pb::mint_item::Evidence::K8s(ev)) => {
                let v = match K8sEvidence::from_proto(&ev) {
                    Ok(ev) => {
                        merge(&mut detail, &super::k8s::evidence_detail(agent, &ev));
                        match grant {
                            Ok(grant) => {
                                super::k8s::verify_workload(&self.shared, agent, grant, &ev).await
                            }
                            Err(failed) => Err(failed),
                        }
                    }
                    Err(e) => Err(field_refused(&e, None)),
                };
                ("k8s", v)
            }
            None => (
                "workload",
                Err(Refusal::denied(Factor::Evidence, "no evidence").into()),
            ),
        };
        let minted = match verified {
            Ok(v) => {
                merge(&mut detail, &v.detail);
                detail["spiffe_id"] = v.id.as_str().into();
                self.shared.mint_stalls.before_signing(v.id.as_str()).await;
                self.shared
                    .ca
                    .mint_x509_svid(MintRequest {
                        spiffe_id: v.id,
                        csr_der: item.csr,
                        ttl: v.ttl,
                        dns_names: v.dns,
                    })
                    .map(|svid| Minted { svid, hint: v.hint })
                    .map_err(|e| Refusal::denied(Factor::Csr, format!("mint: {e}")).into())
            }
            Err(failed) => Err(failed),
        };
        Decided {
            entry_id: entry_id_sent,
            mode,
            detail,
            minted,
        }
    }
}

#[tonic::async_trait]
impl pb::agent_api_server::AgentApi for AgentService {
    async fn attest(
        &self,
        req: Request<pb::AttestRequest>,
    ) -> Result<Response<pb::AttestResponse>, Status> {
        let _busy = conn::busy(&req);
        let peer = peer_addr(&req);
        let key = peer.map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |p| p.ip());
        if !self.attest_limit.allow(&key, 1) {
            return Err(Status::resource_exhausted(
                "too many attestations; retry later",
            ));
        }
        // Shed rather than queue: each attestation can hold three Kubernetes API calls.
        let Ok(_in_flight) = self.attests_in_flight.clone().try_acquire_owned() else {
            return Err(Status::unavailable(
                "too many attestations in progress; retry later",
            ));
        };
        self.shared.mint_stalls.before_attesting().await;
        let r = req.into_inner();
        // Every field is bounded before anything logs, audits or looks it up
        // (docs/architecture.md, "Bounded input").
        match r.method {
            Some(pb::attest_request::Method::JoinToken(j)) => {
                let parsed = check_csr(&r.csr).and_then(|()| JoinTokenEvidence::from_proto(&j));
                match parsed {
                    Ok(token) => self
                        .attest_join_token(token, r.csr, peer)
                        .await
                        .map(Response::new),
                    Err(e) => Err(self.refuse_attest_field("join_token", &e, None).await),
                }
            }
            Some(pb::attest_request::Method::K8s(k)) => {
                let parsed = check_csr(&r.csr).and_then(|()| K8sNodeEvidence::from_proto(&k));
                match parsed {
                    Ok(ev) => self.attest_k8s(ev, r.csr).await.map(Response::new),
                    Err(e) => {
                        let shown = (e.field == "cluster").then(|| preview(&k.cluster));
                        Err(self.refuse_attest_field("k8s", &e, shown).await)
                    }
                }
            }
            None => Err(Status::invalid_argument("attestation method is required")),
        }
    }

    async fn renew_agent(
        &self,
        req: Request<pb::RenewAgentRequest>,
    ) -> Result<Response<pb::AttestResponse>, Status> {
        let _busy = conn::busy(&req);
        let agent = self
            .authenticate_audited(&req, Kind::AgentAttest, json!({"method": "renew"}))
            .await?;
        self.limit_agent(&agent, 1)?;
        if agent.record.agent.method == AgentMethod::K8s {
            return Err(Status::failed_precondition(
                "kubernetes agents renew by attesting again with a fresh token",
            ));
        }
        let csr = req.into_inner().csr;
        check_csr(&csr).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let detail = serde_json::json!({"method": "renew", "previous_serial": agent.serial});
        self.issue_agent(agent.record.agent, csr, detail)
            .await
            .map(Response::new)
    }

    async fn mint_x509_svids(
        &self,
        req: Request<pb::MintX509SvidsRequest>,
    ) -> Result<Response<pb::MintX509SvidsResponse>, Status> {
        let _busy = conn::busy(&req);
        self.shared
            .mint_stalls
            .before_authenticating(req.get_ref())
            .await;
        let detail = json!({"via": "agent", "items": req.get_ref().items.len()});
        let agent = self.authenticate_audited(&req, Kind::Mint, detail).await?;
        let items = req.into_inner().items;
        if items.len() > MAX_MINT_ITEMS {
            return Err(Status::invalid_argument(format!(
                "at most {MAX_MINT_ITEMS} items per request"
            )));
        }
        self.limit_agent(&agent, items.len())?;
        let agent = &agent;
        let decided: Vec<Decided> = futures::stream::iter(items)
            .map(|item| self.decide_item(agent, item))
            .buffered(MINT_CONCURRENCY)
            .collect()
            .await;
        let results = mint_batch::conclude(&self.shared, decided).await;
        Ok(Response::new(pb::MintX509SvidsResponse { results }))
    }

    type SyncStream = SyncStream;

    /// The agent's state now and after every change ([`super::sync`]).
    async fn sync(&self, req: Request<pb::SyncRequest>) -> Result<Response<SyncStream>, Status> {
        let busy = conn::busy(&req);
        let agent = authenticate(&self.shared, &req)
            .await
            .map_err(Status::from)?;
        self.limit_agent(&agent, 1)?;
        let request = req.into_inner();
        let stream = super::sync::stream(
            self.shared.clone(),
            self.shutdown.clone(),
            agent,
            request,
            busy,
        );
        Ok(Response::new(stream))
    }
}

impl AgentService {
    /// Attests a Kubernetes agent by its projected service-account token (N1–N5).
    async fn attest_k8s(
        &self,
        req: K8sNodeEvidence,
        csr: Vec<u8>,
    ) -> Result<pb::AttestResponse, Status> {
        let cluster_name = req.cluster.clone();
        match super::k8s::verify_node(&self.shared, &req).await {
            Ok((record, detail)) => self.issue_agent(record, csr, detail).await,
            Err(Failed { refusal, mut extra }) => {
                merge(
                    &mut extra,
                    &json!({"method": "k8s", "cluster": cluster_name}),
                );
                Err(self.deny_attest("k8s", refusal, extra).await)
            }
        }
    }
}
