//! The running agent: wiring, tasks and the embedding API (docs/architecture.md, "Components").
//!
//! [`Agent::start`] binds the Workload API socket and the health listener (so bad paths and
//! ports fail at once), then spawns, each with a span and under one [`TaskTracker`]: the node
//! task (attest, renew), the Sync follower, SVID rotation, the Workload API server and the
//! health server, and in Kubernetes mode the pod watch and the task that drives the cache
//! from it. Everything stops on one cancellation token; an unrecoverable node error
//! (a refused join token) stops the agent and is returned by [`RunningAgent::wait`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sworn_identity::{AgentId, SpiffeIdentity};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, error, info, info_span, warn};

use crate::cache::{SvidCache, UnixCallers};
use crate::config::{Bootstrap, Config, NodeAttestation};
use crate::k8s::{PodChange, PodDriver, PodIndex, PodWorkloads};
use crate::node::{NodeError, NodeStore, NodeTask};
use crate::socket_path::{SocketPath, SocketPathError};
use crate::status::{Readiness, Status};
use crate::storage::{self, StorageError};
use crate::sync::SyncTask;
use crate::telemetry::{self, Metrics};
use crate::tls::ServerVerifier;
use crate::upstream::Upstream;
use crate::workload_api::{self, Shared};

/// How long a graceful shutdown may take before tasks are abandoned.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// Why the agent could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The bootstrap bundle (key `bundle_file`) could not be read.
    #[error("key `bundle_file`: {0}")]
    BootstrapBundle(StorageError),
    /// The bootstrap bundle has no usable root.
    #[error("key `bundle_file`: {0}")]
    BootstrapTrust(#[from] crate::tls::TlsError),
    /// The server's pinned ID could not be formed from the trust domain.
    #[error("key `trust_domain`: {0}")]
    TrustDomain(String),
    /// The configuration is inconsistent (see [`Config::check`]).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The Workload API socket could not be set up (key `socket_path`).
    #[error("key `socket_path`: {0}")]
    Socket(#[from] SocketPathError),
    /// The health listener could not be bound (key `health_address`).
    #[error("key `health_address`: binding {address}: {source}")]
    Health {
        /// The address.
        address: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Node attestation failed in a way only an operator can fix.
    #[error("node attestation: {0}")]
    Node(#[from] NodeError),
    /// Kubernetes mode could not reach or configure the API server client.
    #[error("kubernetes: {0}")]
    Kubernetes(String),
    /// The agent stopped before it became ready (the reason was logged).
    #[error("the agent stopped before it was ready: {0}")]
    Stopped(String),
}

/// Starts agents.
#[derive(Debug)]
pub struct Agent;

impl Agent {
    /// Starts an agent; it stops when `shutdown` is cancelled or on a fatal error.
    pub async fn start(
        config: Config,
        shutdown: CancellationToken,
    ) -> Result<RunningAgent, AgentError> {
        start(config, shutdown).await
    }
}

/// Runs an agent until `shutdown` is cancelled or a fatal error occurs.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), AgentError> {
    Agent::start(config, shutdown).await?.wait().await
}

/// A started agent.
#[derive(Debug)]
pub struct RunningAgent {
    status: Arc<Status>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    socket_path: SocketPath,
    socket: sworn_identity::socket::PlacedSocket,
    health_address: SocketAddr,
    failure: Arc<Mutex<Option<AgentError>>>,
    sync: watch::Receiver<Option<Arc<crate::sync::SyncState>>>,
}

impl RunningAgent {
    /// Waits until the agent's synced state holds every entry in `entry_ids`, so a caller the
    /// entries match is served at once. Bound it with a timeout; fails if the agent stops.
    pub async fn entries_synced(&self, entry_ids: &[&str]) -> Result<(), AgentError> {
        let mut rx = self.sync.clone();
        loop {
            {
                let state = rx.borrow_and_update();
                if let Some(state) = state.as_ref()
                    && entry_ids
                        .iter()
                        .all(|id| state.entries.iter().any(|e| e.id.to_string() == *id))
                {
                    return Ok(());
                }
            }
            tokio::select! {
                () = self.shutdown.cancelled() => {
                    return Err(AgentError::Stopped("shut down".into()));
                }
                changed = rx.changed() => if changed.is_err() {
                    return Err(AgentError::Stopped("shut down".into()));
                },
            }
        }
    }

    /// Waits until the agent is attested and synced; returns its SPIFFE ID. Fails if the agent
    /// stopped first.
    pub async fn ready(&self) -> Result<AgentId, AgentError> {
        let mut rx = self.status.subscribe();
        loop {
            {
                let r = rx.borrow_and_update();
                if let Some(reason) = &r.failed {
                    return Err(AgentError::Stopped(reason.clone()));
                }
                if r.is_ready()
                    && let Some(id) = &r.agent_id
                {
                    return Ok(id.clone());
                }
            }
            tokio::select! {
                () = self.shutdown.cancelled() => {
                    // A fatal error cancels the token right after recording itself: prefer it.
                    let reason = self.status.get().failed.unwrap_or_else(|| "shut down".into());
                    return Err(AgentError::Stopped(reason));
                }
                changed = rx.changed() => if changed.is_err() {
                    return Err(AgentError::Stopped("shut down".into()));
                },
            }
        }
    }

    /// The state the Sync stream last published (`None` before the first message).
    pub fn sync_state(&self) -> Option<Arc<crate::sync::SyncState>> {
        self.sync.borrow().clone()
    }

    /// The agent's SPIFFE ID, once attested.
    pub fn agent_id(&self) -> Option<AgentId> {
        self.status.get().agent_id
    }

    /// The current readiness.
    pub fn readiness(&self) -> Readiness {
        self.status.get()
    }

    /// The Workload API socket.
    pub fn socket_path(&self) -> &SocketPath {
        &self.socket_path
    }

    /// The bound health/metrics address (useful when the config asked for port 0).
    pub fn health_address(&self) -> SocketAddr {
        self.health_address
    }

    /// Stops the agent and waits for its tasks (up to a deadline).
    pub async fn shutdown(self) -> Result<(), AgentError> {
        self.shutdown.cancel();
        self.wait().await
    }

    /// Waits until the agent stops; returns the fatal error if one stopped it.
    pub async fn wait(self) -> Result<(), AgentError> {
        self.shutdown.cancelled().await;
        self.tracker.close();
        if tokio::time::timeout(DRAIN_DEADLINE, self.tracker.wait())
            .await
            .is_err()
        {
            warn!("agent tasks did not stop within the drain deadline");
        }
        // Only our own socket: after an upgrade the path holds the successor's.
        if !self.socket.remove() {
            info!(path = %self.socket_path.as_path().display(), "the socket path no longer holds this agent's socket; left in place");
        }
        match self
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn bootstrap_roots(config: &Config, store: &NodeStore) -> Result<Vec<Vec<u8>>, AgentError> {
    let mut roots = match &config.bootstrap {
        Bootstrap::BundleFile(path) => {
            storage::read_pem_certs(path).map_err(AgentError::BootstrapBundle)?
        }
        Bootstrap::Roots(roots) => roots.clone(),
        Bootstrap::DangerInsecure => Vec::new(),
    };
    match store.load_bundle() {
        Ok(Some(saved)) => roots.extend(saved),
        Ok(None) => {}
        Err(error) => warn!(%error, "ignoring the unreadable persisted bundle"),
    }
    roots.sort();
    roots.dedup();
    Ok(roots)
}

async fn start(config: Config, parent: CancellationToken) -> Result<RunningAgent, AgentError> {
    config.check()?;
    let shutdown = parent.child_token();
    let store = NodeStore::new(&config.data_dir);
    let server_id = SpiffeIdentity::sworn_server(&config.trust_domain)
        .map_err(|e| AgentError::TrustDomain(e.to_string()))?;
    let verifier = Arc::new(ServerVerifier::new(server_id.as_str().to_owned()));
    let roots = bootstrap_roots(&config, &store)?;
    if !roots.is_empty() {
        verifier.set_roots(&roots)?;
    }
    let (listener, socket) = config.socket_path.bind()?;
    let health = TcpListener::bind(config.health_address)
        .await
        .map_err(|source| AgentError::Health {
            address: config.health_address,
            source,
        })?;
    let health_address = health.local_addr().map_err(|source| AgentError::Health {
        address: config.health_address,
        source,
    })?;

    let status = Arc::new(Status::default());
    let metrics = Arc::new(Metrics::new());
    let upstream = Arc::new(Upstream::new(config.server_address.clone(), verifier));
    let (sync_tx, sync_rx) = watch::channel(None);
    let failure = Arc::new(Mutex::new(None));
    let tracker = TaskTracker::new();

    // One cache for both modes; only which workloads exist differs.
    let (cache, pods) = match &config.attestation {
        NodeAttestation::K8s { .. } => {
            let (pods, changes) = start_pod_watch(&config, &shutdown, &tracker).await?;
            let cache = Arc::new(SvidCache::new(
                upstream.clone(),
                metrics.clone(),
                pods.clone(),
            ));
            let driver = PodDriver::new(cache.clone(), pods.clone(), sync_rx.clone());
            let node = config.node_name.clone().unwrap_or_default();
            tracker.spawn(
                driver
                    .run(changes, shutdown.clone(), tracker.clone())
                    .instrument(info_span!("pod_svids", %node)),
            );
            (cache, Some(pods))
        }
        NodeAttestation::JoinToken(_) => {
            let unix = Arc::new(UnixCallers);
            let cache = Arc::new(SvidCache::new(upstream.clone(), metrics.clone(), unix));
            (cache, None)
        }
    };
    let synced = sync_rx.clone();
    let shared = Shared::new(
        sync_rx,
        cache.clone(),
        metrics.clone(),
        config.trust_domain.clone(),
        shutdown.clone(),
    );
    let guard = sworn_h2guard::Limits {
        first_headers_within: config.connections.request_timeout,
        idle_after: config.connections.idle_timeout,
        ..sworn_h2guard::Limits::default()
    };
    let shared = shared.with_connections(config.connections.max_connections, guard);
    let shared = shared
        .with_exe_limits(sworn_caller::ExeLimits {
            max_bytes: config.max_exe_hash_bytes,
            timeout: config.exe_hash_timeout,
        })
        .with_peer_pidfd_probe(config.danger_ignore_peer_pidfd);
    let shared = match pods {
        Some(pods) => shared.with_k8s(pods),
        None => shared,
    };
    let stop = shutdown.clone();
    tracker.spawn(
        async move {
            if let Err(error) = workload_api::serve(listener, shared).await {
                error!(%error, "workload api server failed");
                stop.cancel();
            }
        }
        .instrument(info_span!("workload_api")),
    );
    let (s, m, stop) = (status.clone(), metrics.clone(), shutdown.clone());
    tracker.spawn(
        async move {
            if let Err(error) = telemetry::serve(health, s, m, stop.clone()).await {
                error!(%error, "health server failed");
            }
        }
        .instrument(info_span!("health", address = %health_address)),
    );
    tracker.spawn(
        SyncTask {
            upstream: upstream.clone(),
            store: store.clone(),
            status: status.clone(),
            state: sync_tx,
            cache: cache.clone(),
        }
        .run(shutdown.clone())
        .instrument(info_span!("sync")),
    );
    tracker.spawn(
        cache
            .clone()
            .run_rotation(shutdown.clone())
            .instrument(info_span!("rotation")),
    );
    let node = NodeTask {
        method: config.attestation.clone(),
        insecure_first_attest: config.bootstrap == Bootstrap::DangerInsecure,
        upstream,
        store,
        status: status.clone(),
        metrics,
    };
    let (stop, fail, st) = (shutdown.clone(), failure.clone(), status.clone());
    let mode = match config.attestation {
        NodeAttestation::JoinToken(_) => "join_token",
        NodeAttestation::K8s { .. } => "k8s",
    };
    tracker.spawn(
        async move {
            match node.start(&stop).await {
                Ok(true) => node.run(stop).await,
                Ok(false) => {}
                Err(e) => {
                    error!(error = %e, "node attestation failed; stopping the agent");
                    st.update(|r| r.failed = Some(e.to_string()));
                    *fail.lock().unwrap_or_else(|p| p.into_inner()) = Some(AgentError::Node(e));
                    stop.cancel();
                }
            }
        }
        .instrument(info_span!("node", mode)),
    );
    Ok(RunningAgent {
        status,
        shutdown,
        tracker,
        socket_path: config.socket_path,
        socket,
        health_address,
        failure,
        sync: synced,
    })
}

/// Kubernetes mode: the watch of the node's pods, which the cache follows
/// (docs/architecture.md, "The agent's SVID cache").
async fn start_pod_watch(
    config: &Config,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> Result<(Arc<PodWorkloads>, mpsc::Receiver<PodChange>), AgentError> {
    let node = config
        .node_name
        .clone()
        .ok_or_else(|| AgentError::Kubernetes("node_name is required in kubernetes mode".into()))?;
    // Without the host PID namespace the agent could see only its own pod's
    // processes and would refuse every workload: say so at start instead.
    let view = crate::hostpid::check().map_err(|e| AgentError::Kubernetes(e.to_string()))?;
    info!(?view, "host PID namespace check passed");
    let kube_config = match &config.kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| AgentError::Kubernetes(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| AgentError::Kubernetes(e.to_string()))?
        }
        None => kube::Config::incluster()
            .map_err(|e| AgentError::Kubernetes(format!("in-cluster config: {e}")))?,
    };
    let client =
        kube::Client::try_from(kube_config).map_err(|e| AgentError::Kubernetes(e.to_string()))?;
    let (tx, rx) = mpsc::channel(1024);
    let index = PodIndex::start(client, &node, tx, shutdown.clone(), tracker);
    let pods = Arc::new(PodWorkloads::new(index, config.k8s_workload.clone()));
    Ok((pods, rx))
}
