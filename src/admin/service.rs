//! The admin API implementation. Every change writes an audit event.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use sworn_identity::outcome::Refusal;
use sworn_identity::{AgentId, EntryId, Factor, SpiffeIdentity};
use sworn_proto::admin as pb;
use tonic::{Request, Response, Status};

use crate::audit::{Decision, Kind};
use crate::ca::MintRequest;
use crate::clock::unix_secs;
use crate::join_token;
use crate::policy::entry::{NewEntry, entry_defect, target_fields, ttl_seconds, validate};
use crate::shared::{Affected, Shared};
use crate::store::{AgentRecord, Deleted, Entry, StoreError};
use crate::telemetry::Metrics;

/// The admin gRPC service.
#[derive(Debug, Clone)]
pub struct AdminService {
    shared: Arc<Shared>,
}

impl AdminService {
    /// A service over the server's shared state.
    pub fn new(shared: Arc<Shared>) -> Self {
        AdminService { shared }
    }
}

/// The one mapping from store errors to what an admin client sees.
fn internal(e: StoreError) -> Status {
    tracing::error!(error = %e, "admin request failed in the datastore");
    Status::internal("datastore error; see the server log")
}

/// A stored entry as the admin API shows it, with the reason it is unusable, if any.
fn entry_to_pb(e: &Entry) -> pb::Entry {
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
        invalid: entry_defect(e).map(|d| d.to_string()).unwrap_or_default(),
    }
}

/// The entry ID of a request (`entry show`, `entry delete`): only the one encoding.
fn entry_id(req: pb::EntryId) -> Result<EntryId, Status> {
    req.id
        .parse()
        .map_err(|e: sworn_identity::EntryIdError| Status::invalid_argument(e.to_string()))
}

fn agent_to_pb(record: &AgentRecord) -> pb::Agent {
    let a = &record.agent;
    pb::Agent {
        id: a.id.to_string(),
        method: a.method.as_str().to_owned(),
        node_name: a.node_name.clone(),
        node_uid: a.node_uid.clone(),
        pod_uid: a.pod_uid.clone(),
        cluster: a.cluster.clone(),
        serial: record.serial.to_string(),
        expires_at: record.expires_at,
        banned: record.banned,
        attested_at: record.attested_at,
    }
}

type AuditStream = Pin<Box<dyn Stream<Item = Result<pb::AuditEvent, Status>> + Send>>;

fn audit_to_pb(r: crate::store::AuditRecord) -> pb::AuditEvent {
    pb::AuditEvent {
        id: r.id,
        at: r.at,
        kind: r.kind,
        decision: r.decision,
        detail: r.detail,
    }
}

#[tonic::async_trait]
impl pb::admin_api_server::AdminApi for AdminService {
    async fn create_entry(
        &self,
        req: Request<pb::CreateEntryRequest>,
    ) -> Result<Response<pb::Entry>, Status> {
        let r = req.into_inner();
        let new = NewEntry {
            spiffe_id: r.spiffe_id,
            spiffe_id_template: r.spiffe_id_template,
            selectors: r.selectors,
            node: r.node,
            ttl_seconds: r.ttl_seconds,
            dns_names: r.dns_names,
            hint: r.hint,
        };
        let id = EntryId::generate();
        let entry = validate(new, &self.shared.config.trust_domain, id, self.shared.now())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.shared
            .store
            .create_entry(&entry)
            .await
            .map_err(internal)?;
        let pb = entry_to_pb(&entry);
        self.shared
            .audit
            .record(
                Kind::EntryCreate,
                Decision::Allow,
                serde_json::json!({
                    "entry_id": pb.id, "spiffe_id": pb.spiffe_id,
                    "spiffe_id_template": pb.spiffe_id_template,
                    "selectors": pb.selectors, "node": pb.node,
                }),
            )
            .await
            .map_err(internal)?;
        self.shared.notify_change(&Affected::of_entry(&entry));
        Ok(Response::new(pb))
    }

    async fn list_entries(
        &self,
        _: Request<pb::ListEntriesRequest>,
    ) -> Result<Response<pb::ListEntriesResponse>, Status> {
        let entries = self.shared.store.list_entries().await.map_err(internal)?;
        self.shared
            .metrics
            .entries
            .set(i64::try_from(entries.len()).unwrap_or(i64::MAX));
        Ok(Response::new(pb::ListEntriesResponse {
            entries: entries.iter().map(entry_to_pb).collect(),
        }))
    }

    async fn get_entry(&self, req: Request<pb::EntryId>) -> Result<Response<pb::Entry>, Status> {
        let id = entry_id(req.into_inner())?;
        match self.shared.store.get_entry(&id).await.map_err(internal)? {
            Some(e) => Ok(Response::new(entry_to_pb(&e))),
            None => Err(Status::not_found(format!("no entry {id}"))),
        }
    }

    async fn delete_entry(
        &self,
        req: Request<pb::EntryId>,
    ) -> Result<Response<pb::DeleteEntryResponse>, Status> {
        let id = entry_id(req.into_inner())?;
        let affected = match self
            .shared
            .store
            .delete_entry(&id, self.shared.now())
            .await
            .map_err(internal)?
        {
            Deleted::NotFound => return Err(Status::not_found(format!("no entry {id}"))),
            Deleted::Entry(entry) => Affected::of_entry(&entry),
            Deleted::Corrupt => Affected::Nobody,
        };
        self.shared
            .audit
            .record(
                Kind::EntryDelete,
                Decision::Allow,
                serde_json::json!({ "entry_id": id }),
            )
            .await
            .map_err(internal)?;
        self.shared.notify_change(&affected);
        Ok(Response::new(pb::DeleteEntryResponse {}))
    }

    async fn list_agents(
        &self,
        _: Request<pb::ListAgentsRequest>,
    ) -> Result<Response<pb::ListAgentsResponse>, Status> {
        let agents = self.shared.store.list_agents().await.map_err(internal)?;
        Ok(Response::new(pb::ListAgentsResponse {
            agents: agents.iter().map(agent_to_pb).collect(),
        }))
    }

    async fn ban_agent(&self, req: Request<pb::AgentId>) -> Result<Response<pb::Agent>, Status> {
        self.set_ban(req.into_inner().id, true).await
    }

    async fn unban_agent(&self, req: Request<pb::AgentId>) -> Result<Response<pb::Agent>, Status> {
        self.set_ban(req.into_inner().id, false).await
    }

    async fn get_bundle(
        &self,
        _: Request<pb::GetBundleRequest>,
    ) -> Result<Response<pb::Bundle>, Status> {
        let b = self.shared.ca.bundle();
        Ok(Response::new(pb::Bundle {
            trust_domain: self.shared.config.trust_domain.to_string(),
            roots: b.roots_der,
        }))
    }

    async fn mint_x509_svid(
        &self,
        req: Request<pb::MintX509SvidRequest>,
    ) -> Result<Response<pb::MintX509SvidResponse>, Status> {
        let r = req.into_inner();
        let id = SpiffeIdentity::parse(&r.spiffe_id)
            .map_err(|e| Status::invalid_argument(format!("spiffe id: {e}")))?;
        if id.trust_domain() != &self.shared.config.trust_domain {
            return Err(Status::invalid_argument(format!(
                "spiffe id {id} is not in trust domain {}",
                self.shared.config.trust_domain
            )));
        }
        let ttl = match r.ttl_seconds {
            0 => self.shared.config.default_svid_ttl,
            s if s > 0 => Duration::from_secs(s.unsigned_abs()),
            _ => return Err(Status::invalid_argument("ttl must be positive")),
        };
        let minted = self.shared.ca.mint_x509_svid(MintRequest {
            spiffe_id: id.clone(),
            csr_der: r.csr,
            ttl,
            dns_names: r.dns_names,
        });
        let svid = match minted {
            Ok(s) => s,
            Err(e) => {
                Metrics::count(&self.shared.metrics.svids, "admin", "deny");
                // The CA refuses what it cannot build: a bad CSR, DNS name or TTL.
                self.shared
                    .audit
                    .record_refusal(
                        Kind::Mint,
                        &Refusal::denied(Factor::Csr, e.to_string()),
                        serde_json::json!({"via": "admin", "spiffe_id": id.as_str()}),
                    )
                    .await
                    .map_err(internal)?;
                return Err(Status::invalid_argument(e.to_string()));
            }
        };
        self.shared
            .audit
            .record(
                Kind::Mint,
                Decision::Allow,
                serde_json::json!({
                    "via": "admin", "spiffe_id": id.as_str(), "serial": svid.serial,
                    "expires_at": unix_secs(svid.not_after),
                }),
            )
            .await
            .map_err(internal)?;
        Metrics::count(&self.shared.metrics.svids, "admin", "allow");
        Ok(Response::new(pb::MintX509SvidResponse {
            chain: svid.chain_der,
            bundle: self.shared.ca.bundle().roots_der,
            expires_at: unix_secs(svid.not_after),
        }))
    }

    async fn generate_join_token(
        &self,
        req: Request<pb::GenerateJoinTokenRequest>,
    ) -> Result<Response<pb::JoinToken>, Status> {
        let ttl = match req.into_inner().ttl_seconds {
            0 => 3600,
            s if s > 0 && s <= 30 * 24 * 3600 => s,
            _ => {
                return Err(Status::invalid_argument(
                    "ttl must be between 1s and 30 days",
                ));
            }
        };
        let mut raw = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut raw);
        let token = hex::encode(raw);
        let now = self.shared.now();
        let hash = join_token::hash(&token);
        self.shared
            .store
            .insert_join_token(&hash, now + ttl, now)
            .await
            .map_err(internal)?;
        // The token itself is a secret: the audit event names its hash prefix only.
        self.shared
            .audit
            .record(
                Kind::TokenGenerate,
                Decision::Allow,
                serde_json::json!({"token_hash_prefix": &hash[..12], "expires_at": now + ttl}),
            )
            .await
            .map_err(internal)?;
        Ok(Response::new(pb::JoinToken {
            token,
            expires_at: now + ttl,
        }))
    }

    type ListAuditStream = AuditStream;

    async fn list_audit(
        &self,
        req: Request<pb::ListAuditRequest>,
    ) -> Result<Response<AuditStream>, Status> {
        let r = req.into_inner();
        // Subscribe before reading history so nothing falls between the two.
        let mut live = self.shared.audit.subscribe();
        let store = self.shared.store.clone();
        let limit = if r.limit == 0 { 10_000 } else { r.limit };
        let stream = async_stream::try_stream! {
            let mut last = r.after_id;
            loop {
                let page = store.list_audit(last, limit).await.map_err(internal)?;
                let n = page.len();
                for ev in page {
                    last = ev.id;
                    yield audit_to_pb(ev);
                }
                if u32::try_from(n).unwrap_or(u32::MAX) < limit || r.limit != 0 {
                    break;
                }
            }
            if r.follow {
                loop {
                    match live.recv().await {
                        Ok(ev) if ev.id > last => {
                            last = ev.id;
                            yield audit_to_pb(ev);
                        }
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            for ev in store.list_audit(last, 10_000).await.map_err(internal)? {
                                last = ev.id;
                                yield audit_to_pb(ev);
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    }
                }
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }

    async fn health(
        &self,
        _: Request<pb::HealthRequest>,
    ) -> Result<Response<pb::HealthResponse>, Status> {
        Ok(Response::new(pb::HealthResponse {
            serving: self.shared.metrics.is_ready(),
            trust_domain: self.shared.config.trust_domain.to_string(),
            ca_expires_at: self
                .shared
                .ca
                .status()
                .map(|s| unix_secs(s.active_not_after))
                .unwrap_or(0),
        }))
    }
}

impl AdminService {
    async fn set_ban(&self, id: String, banned: bool) -> Result<Response<pb::Agent>, Status> {
        let id = AgentId::parse_in(&id, &self.shared.config.trust_domain)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let agent = self
            .shared
            .store
            .set_agent_banned(&id, banned)
            .await
            .map_err(internal)?
            .ok_or_else(|| Status::not_found(format!("no agent {id}")))?;
        // A Kubernetes agent's ban is its node's (docs/architecture.md, "Bans").
        let a = &agent.agent;
        let detail = if a.method == crate::store::AgentMethod::K8s {
            serde_json::json!({
                "agent_id": id, "scope": "node", "cluster": a.cluster,
                "node": a.node_name, "node_uid": a.node_uid,
            })
        } else {
            serde_json::json!({ "agent_id": id, "scope": "agent" })
        };
        self.shared
            .audit
            .record(
                if banned {
                    Kind::AgentBan
                } else {
                    Kind::AgentUnban
                },
                Decision::Allow,
                detail,
            )
            .await
            .map_err(internal)?;
        // The banned agents' streams re-check their standing at once and end.
        self.shared.notify_change(&Affected::of_ban(&agent.agent));
        Ok(Response::new(agent_to_pb(&agent)))
    }
}
