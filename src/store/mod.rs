//! The server's datastore: entries, agents, bundle roots, join tokens, used
//! agent credentials and audit events (docs/architecture.md, "Components").
//!
//! Retention ([`retention`]) prunes the audit table and expired credential IDs in bounded
//! batches through this trait only, so every backend gets it.
//! Callers hold an `Arc<dyn Store>`; [`sqlite::SqliteStore`] is the embedded
//! default. A PostgreSQL implementation plugs in behind the same trait.
//! Migrations are embedded in the binary. Nothing here deletes data except
//! the explicit `delete_*`/`remove_*`/`prune_*` calls, and single-use records (join
//! tokens, credential IDs) are consumed with a conditional update whose
//! affected-row count decides, so concurrent use cannot succeed twice.
//! Entry IDs, agent IDs and serials are written in their one encoding
//! ([`EntryId`], [`AgentId`], [`Serial`]) and parsed on read: a stored value
//! that does not parse is [`StoreError::Corrupt`] naming its row, never a panic.

pub mod agent_epoch;
pub mod entry;
pub mod retention;
pub mod sqlite;

use async_trait::async_trait;
use sworn_identity::{AgentId, EntryId, Serial};

pub use entry::{Deleted, Entry, EntryChanges, EntryScope, EntryTarget, SyncPoint};

/// Datastore failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed an operation.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The database could not be opened or migrated.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored row does not parse: the database was edited by hand or is damaged.
    #[error("stored {what} {id:?} is corrupt: {reason}")]
    Corrupt {
        /// Which table.
        what: &'static str,
        /// The row's key.
        id: String,
        /// What failed to parse.
        reason: String,
    },
    /// The row already exists.
    #[error("{0} already exists")]
    Conflict(String),
}

/// How an agent attested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentMethod {
    /// One-time join token (unix mode).
    JoinToken,
    /// Kubernetes projected service-account token.
    K8s,
}

impl AgentMethod {
    /// Stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentMethod::JoinToken => "join_token",
            AgentMethod::K8s => "k8s",
        }
    }
}

/// An agent that passed node attestation and is about to be issued its SVID: what
/// [`AgentRecord`] keeps, without what the SVID decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestedAgent {
    /// The agent's SPIFFE ID.
    pub id: AgentId,
    /// How it attested.
    pub method: AgentMethod,
    /// Kubernetes node name (empty for join-token agents).
    pub node_name: String,
    /// Kubernetes node UID.
    pub node_uid: String,
    /// The agent's own pod UID.
    pub pod_uid: String,
    /// Cluster name.
    pub cluster: String,
}

/// An attested agent: its attested facts and its latest SVID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRecord {
    /// Who it is and how it attested.
    pub agent: AttestedAgent,
    /// Serial of the latest agent SVID.
    pub serial: Serial,
    /// Serial of the previous SVID, accepted until `serial` is first used.
    pub prev_serial: Option<Serial>,
    /// Unix seconds: expiry of the latest SVID.
    pub expires_at: i64,
    /// Refused on every call while set.
    pub banned: bool,
    /// Unix seconds of the latest attestation.
    pub attested_at: i64,
}

impl AgentRecord {
    /// The record of `agent` once it was issued the SVID with `serial`, valid until
    /// `expires_at`, at `attested_at` (unix seconds). [`Store::upsert_agent`] keeps an existing
    /// ban and makes the stored serial the previous one.
    pub fn issued(agent: AttestedAgent, serial: Serial, expires_at: i64, attested_at: i64) -> Self {
        AgentRecord {
            agent,
            serial,
            prev_serial: None,
            expires_at,
            banned: false,
            attested_at,
        }
    }

    /// The agent's SPIFFE ID.
    pub fn id(&self) -> &AgentId {
        &self.agent.id
    }
}

/// A root certificate in the bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRoot {
    /// DER.
    pub der: Vec<u8>,
    /// Unix seconds.
    pub not_after: i64,
}

/// What consuming a join token found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenUse {
    /// The token was valid and is now used up.
    Consumed,
    /// No such token.
    Unknown,
    /// The token expired before use.
    Expired,
    /// The token was used before.
    AlreadyUsed,
}

/// How long a used agent-token credential ID is remembered (docs/architecture.md,
/// "Node attestation"): until the token's own `exp` plus [`CREDENTIAL_SKEW_SECS`], so the
/// token can never attest again while the API server could still accept it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredentialKept {
    /// The token's `exp` claim, when it has one.
    pub token_exp: Option<i64>,
    /// Unix seconds after which the row may be forgotten.
    pub until: i64,
}

/// Clock skew allowed between the API server, which judges a token's `exp`, and this server,
/// which forgets its credential ID: 5 minutes.
pub const CREDENTIAL_SKEW_SECS: i64 = 300;

impl CredentialKept {
    /// The keep time of a token whose `exp` is `token_exp`, used at `now`. Without an `exp`
    /// (a bound token always has one) the row is kept for good.
    pub fn for_token(token_exp: Option<i64>, now: i64) -> Self {
        let until = match token_exp {
            Some(exp) => exp.saturating_add(CREDENTIAL_SKEW_SECS).max(now),
            None => i64::MAX,
        };
        CredentialKept { token_exp, until }
    }
}

/// One audit event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Increasing ID.
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    /// e.g. `mint`, `entry.create`, `agent.attest`.
    pub kind: String,
    /// `allow` or `deny`.
    pub decision: String,
    /// JSON object.
    pub detail: String,
}

/// An audit event to append: an [`AuditRecord`] before the store gives it its ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAudit {
    /// Unix seconds.
    pub at: i64,
    /// e.g. `mint`, `entry.create`, `agent.attest`.
    pub kind: String,
    /// `allow`, `deny` or `unavailable`.
    pub decision: String,
    /// JSON object.
    pub detail: String,
}

impl NewAudit {
    /// The record as stored under `id`.
    pub fn stored(self, id: i64) -> AuditRecord {
        AuditRecord {
            id,
            at: self.at,
            kind: self.kind,
            decision: self.decision,
            detail: self.detail,
        }
    }
}

/// The datastore interface every backend implements.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Inserts an entry; its ID must be new. It takes the next revision.
    async fn create_entry(&self, entry: &Entry) -> Result<(), StoreError>;
    /// All entries, oldest first.
    async fn list_entries(&self) -> Result<Vec<Entry>, StoreError>;
    /// One entry.
    async fn get_entry(&self, id: &EntryId) -> Result<Option<Entry>, StoreError>;
    /// Deletes an entry at `now` (unix seconds), leaving a tombstone with the next revision.
    async fn delete_entry(&self, id: &EntryId, now: i64) -> Result<Deleted, StoreError>;
    /// The entries of `scope`: what changed after `since` when that point is still
    /// answerable, else all of them (`full`). One consistent read; the rows it reads are the
    /// scope's own (an index on the entry's node), never the whole table.
    async fn entry_changes(
        &self,
        scope: EntryScope<'_>,
        since: Option<&SyncPoint>,
    ) -> Result<EntryChanges, StoreError>;
    /// Forgets at most `batch` tombstones of entries deleted before `before` (unix seconds),
    /// oldest first; how many. Agents behind a pruned tombstone get their full state.
    async fn prune_entry_tombstones(&self, before: i64, batch: u32) -> Result<u64, StoreError>;

    /// Inserts or replaces an agent record (on attestation and renewal). Of an
    /// existing record, the banned flag is kept and the stored serial becomes
    /// `prev_serial` (`agent.prev_serial` is ignored then), so a renewal never
    /// strands the certificate the agent is still using. Every backend must keep
    /// both. Moves the agent's [`Store::agent_epoch`].
    async fn upsert_agent(&self, agent: &AgentRecord) -> Result<(), StoreError>;
    /// One agent.
    async fn get_agent(&self, id: &AgentId) -> Result<Option<AgentRecord>, StoreError>;
    /// All agents.
    async fn list_agents(&self) -> Result<Vec<AgentRecord>, StoreError>;
    /// Sets or clears the ban; `None` when there is no such agent. For a Kubernetes agent the
    /// ban is its node's (docs/architecture.md, "Bans"): banning records a node ban for the
    /// agent's (cluster, node UID, node name) and bans every agent of the same cluster whose
    /// node UID or node name matches; unbanning lifts those node bans and those agents' bans.
    /// Either moves every agent's [`Store::agent_epoch`].
    async fn set_agent_banned(
        &self,
        id: &AgentId,
        banned: bool,
    ) -> Result<Option<AgentRecord>, StoreError>;
    /// The agent the node ban covering (`cluster`, `node_uid` or `node_name`) was given for,
    /// if there is one.
    async fn node_ban(
        &self,
        cluster: &str,
        node_uid: &str,
        node_name: &str,
    ) -> Result<Option<AgentId>, StoreError>;
    /// The agent used `serial`: if it is the latest, the previous one stops
    /// being accepted (and the agent's [`Store::agent_epoch`] moves).
    async fn mark_serial_used(&self, id: &AgentId, serial: &Serial) -> Result<(), StoreError>;
    /// The epoch of `id`'s record ([`agent_epoch`]): taken before a read of the record, the
    /// copy read stays current while the epoch is unchanged. Every write above that changes
    /// an agent record moves it once the write has committed.
    fn agent_epoch(&self, id: &AgentId) -> u64;

    /// Adds a root (idempotent).
    async fn put_root(&self, root: &StoredRoot) -> Result<(), StoreError>;
    /// All roots, oldest first.
    async fn list_roots(&self) -> Result<Vec<StoredRoot>, StoreError>;
    /// Removes a root.
    async fn remove_root(&self, der: &[u8]) -> Result<(), StoreError>;

    /// Stores a join token's hash.
    async fn insert_join_token(
        &self,
        hash: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<(), StoreError>;
    /// Consumes a join token exactly once, even under concurrent use.
    async fn consume_join_token(&self, hash: &str, now: i64) -> Result<TokenUse, StoreError>;
    /// Records an agent token's credential ID, kept as `kept` says; false when it was seen
    /// before.
    async fn record_credential(&self, jti: &str, kept: CredentialKept) -> Result<bool, StoreError>;
    /// Forgets at most `batch` credential IDs whose keep time is before `now`; how many.
    async fn prune_credentials(&self, now: i64, batch: u32) -> Result<u64, StoreError>;

    /// Appends audit events in one transaction, all or none, and returns their IDs in order.
    /// The events are acknowledged (and may be acted on) only once this returns `Ok`.
    async fn append_audits(&self, rows: &[NewAudit]) -> Result<Vec<i64>, StoreError>;
    /// Appends one audit event and returns its ID.
    async fn append_audit(
        &self,
        at: i64,
        kind: &str,
        decision: &str,
        detail: &str,
    ) -> Result<i64, StoreError> {
        let row = NewAudit {
            at,
            kind: kind.to_owned(),
            decision: decision.to_owned(),
            detail: detail.to_owned(),
        };
        let ids = self.append_audits(std::slice::from_ref(&row)).await?;
        ids.first().copied().ok_or_else(|| StoreError::Corrupt {
            what: "audit",
            id: String::new(),
            reason: "the store returned no ID for the appended row".to_owned(),
        })
    }
    /// Deletes at most `batch` audit events written before `before` (unix seconds), oldest
    /// first; how many it deleted. Retention calls it until it deletes fewer than `batch`.
    async fn prune_audit(&self, before: i64, batch: u32) -> Result<u64, StoreError>;
    /// Audit events with `id > after_id`, oldest first, at most `limit`.
    async fn list_audit(&self, after_id: i64, limit: u32) -> Result<Vec<AuditRecord>, StoreError>;
}
