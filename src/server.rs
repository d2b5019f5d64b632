//! Server lifecycle: open the store and CA, bind the sockets, run every
//! service until shutdown (docs/architecture.md, "Components").
//!
//! [`start`] binds everything before it returns, so tests and `sworn-dev`
//! can start a server in-process on port 0 and read the bound addresses from
//! [`RunningServer`]. [`run_until_signal`] is what `sworn-server run` calls:
//! SIGTERM or SIGINT start a graceful drain with a deadline.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::agentapi;
use crate::audit::Audit;
use crate::ca::{CaConfig, CertificateAuthority, RotationObserver, RotationReport, UpstreamConfig};
use crate::clock::{Clock, SystemClock, unix_secs};
use crate::config::Config;
use crate::policy::entry::{EntryDefect, entry_defect};
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError, StoredRoot};
use crate::telemetry::Metrics;

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The data directory could not be prepared.
    #[error("data dir {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The datastore failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The CA refused to load (missing or corrupt keys never become a new CA).
    #[error("CA: {0}")]
    Ca(#[from] crate::ca::CaError),
    /// A socket could not be bound.
    #[error("{what}: {source}")]
    Bind {
        /// Which socket.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// A Kubernetes cluster client could not be built.
    #[error(transparent)]
    K8s(#[from] crate::k8s::K8sError),
    /// The CA's keys exist but the datastore is new: it was lost or deleted, and with it the
    /// record of which agent tokens already attested (docs/architecture.md, "Storage").
    #[error(
        "the CA keys in {ca_dir} exist but the datastore {database} is new (lost or deleted): it no longer knows which agent tokens were used, so a still-valid token could attest again; restore the database, or set danger_allow_lost_datastore = true to start anyway"
    )]
    LostDatastore {
        /// The CA directory.
        ca_dir: PathBuf,
        /// The database file.
        database: PathBuf,
    },
}

impl ServerError {
    /// Process exit code for `sworn-server run`.
    pub fn exit_code(&self) -> i32 {
        match self {
            // EX_CONFIG: something on disk needs an operator.
            ServerError::Ca(_) | ServerError::DataDir { .. } | ServerError::K8s(_) => 78,
            // EX_UNAVAILABLE: a port or socket is taken.
            ServerError::Bind { .. } => 69,
            // EX_USAGE, as a configuration error: the operator must choose.
            ServerError::LostDatastore { .. } => crate::config::EXIT_CONFIG,
            _ => 1,
        }
    }
}

pub use crate::shared::Shared;

/// A started server.
#[derive(Debug)]
pub struct RunningServer {
    /// Shared state (tests use it to drive the clock-driven rotation, etc.).
    pub shared: Arc<Shared>,
    /// The agent API's bound address.
    pub agent_api_addr: SocketAddr,
    /// The health/metrics HTTP address.
    pub health_addr: SocketAddr,
    /// The admin socket path.
    pub admin_socket: PathBuf,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl RunningServer {
    /// Stops every service and waits up to `deadline` for them.
    pub async fn shutdown(self, deadline: Duration) {
        self.shutdown.cancel();
        self.tasks.close();
        if tokio::time::timeout(deadline, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(?deadline, "services did not stop in time");
        }
    }

    /// A token cancelled when the server stops.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// Opens everything and starts serving.
pub async fn start(config: Config, clock: Arc<dyn Clock>) -> Result<RunningServer, ServerError> {
    prepare_data_dir(&config)?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&config.database_path()).await?);
    report_unusable_entries(store.as_ref()).await;
    let stored_roots = store.list_roots().await?;
    check_datastore_kept(&config, stored_roots.is_empty())?;
    let ca_config = CaConfig {
        trust_domain: config.trust_domain.clone(),
        ca_ttl: config.ca_ttl,
        upstream: config.upstream_ca.as_ref().map(|u| UpstreamConfig {
            cert_file: u.cert_file.clone(),
            key_file: u.key_file.clone(),
            bundle_file: u.bundle_file.clone(),
        }),
    };
    // A datastore that has a bundle means a CA existed: it must load, never be recreated.
    let ca = Arc::new(CertificateAuthority::load_or_init(
        &config.data_dir,
        ca_config,
        clock.clone(),
        !stored_roots.is_empty(),
    )?);
    // An expired CA still loads; rotate before serving anything.
    ca.rotate_if_due()?;
    let metrics = Arc::new(Metrics::default());
    let audit = Audit::new(store.clone(), clock.clone(), &metrics);
    let clusters = crate::k8s::Clusters::connect(&config.clusters).await?;
    let shared = Arc::new(Shared {
        clusters,
        config,
        store,
        ca,
        audit,
        metrics,
        clock,
        changes: crate::shared::Changes::default(),
        mint_stalls: agentapi::stall::MintStalls::default(),
    });
    publish_bundle(&shared).await?;

    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();

    let admin_socket = shared.config.admin_socket.clone();
    let admin_listener =
        crate::admin::socket::bind_private(&admin_socket).map_err(|source| ServerError::Bind {
            what: "admin socket",
            source,
        })?;
    let agent_listener = tokio::net::TcpListener::bind(shared.config.agent_api_address)
        .await
        .map_err(|source| ServerError::Bind {
            what: "agent API address",
            source,
        })?;
    let agent_api_addr = agent_listener
        .local_addr()
        .map_err(|source| ServerError::Bind {
            what: "agent API address",
            source,
        })?;
    let health_listener = crate::telemetry::bind_http(shared.config.health_address)
        .await
        .map_err(|source| ServerError::Bind {
            what: "health address",
            source,
        })?;
    let health_addr = health_listener
        .local_addr()
        .map_err(|source| ServerError::Bind {
            what: "health address",
            source,
        })?;

    tasks.spawn(
        crate::admin::serve(shared.clone(), admin_listener, shutdown.clone())
            .instrument(tracing::info_span!("admin_api")),
    );
    tasks.spawn(
        agentapi::serve(
            shared.clone(),
            agent_listener,
            shutdown.clone(),
            tasks.clone(),
        )
        .instrument(tracing::info_span!("agent_api")),
    );
    {
        let metrics = shared.metrics.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(
            async move {
                if let Err(error) =
                    crate::telemetry::serve_http(health_listener, metrics, shutdown).await
                {
                    tracing::error!(%error, "health endpoint failed");
                }
            }
            .instrument(tracing::info_span!("health")),
        );
    }
    tasks.spawn(
        crate::store::retention::run(
            shared.store.clone(),
            shared.clock.clone(),
            shared.config.audit_retention,
            shutdown.clone(),
        )
        .instrument(tracing::info_span!("retention")),
    );
    tasks.spawn(shared.ca.clone().run_rotation(
        ROTATION_PERIOD,
        shutdown.clone(),
        PublishRotation(shared.clone()),
    ));

    shared.metrics.set_ready(true);
    tracing::info!(
        trust_domain = %shared.config.trust_domain,
        agent_api = %agent_api_addr,
        health = %health_addr,
        admin_socket = %admin_socket.display(),
        "sworn server serving"
    );
    Ok(RunningServer {
        shared,
        agent_api_addr,
        health_addr,
        admin_socket,
        shutdown,
        tasks,
    })
}

/// Runs until SIGINT or SIGTERM, then drains for up to 10 s.
pub async fn run_until_signal(config: Config) -> Result<(), ServerError> {
    let running = start(config, Arc::new(SystemClock)).await?;
    wait_for_signal().await;
    tracing::info!("shutting down");
    running.shutdown(Duration::from_secs(10)).await;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            // Without signal handlers, Ctrl-C is the only way out.
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn prepare_data_dir(config: &Config) -> Result<(), ServerError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = &config.data_dir;
    let err = |source| ServerError::DataDir {
        path: dir.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
    Ok(())
}

/// Refuses a datastore that is new while the CA's keys exist, unless
/// `danger_allow_lost_datastore`. Every start writes the bundle's roots to the datastore, so a
/// datastore without roots next to a CA directory with content was lost or replaced.
fn check_datastore_kept(config: &Config, no_roots: bool) -> Result<(), ServerError> {
    let ca_dir = config.data_dir.join("ca");
    let ca_present = std::fs::read_dir(&ca_dir).is_ok_and(|mut d| d.next().is_some());
    if !(no_roots && ca_present) {
        return Ok(());
    }
    if config.danger_allow_lost_datastore {
        tracing::warn!(
            ca_dir = %ca_dir.display(),
            "the datastore is new but the CA keys exist; starting because danger_allow_lost_datastore is set: agent tokens that attested before may attest once more until they expire"
        );
        return Ok(());
    }
    Err(ServerError::LostDatastore {
        ca_dir,
        database: config.database_path(),
    })
}

/// Logs, at `error`, every stored entry that can never be used (entries stored before
/// `entry create` refused them), one line each, so an operator can fix them. The server
/// still starts: policy already scopes them to no agent.
async fn report_unusable_entries(store: &dyn Store) {
    let entries = match store.list_entries().await {
        Ok(e) => e,
        Err(error) => {
            // Listing fails again, and is reported, on the first Sync or admin call.
            tracing::warn!(%error, "cannot list entries to check them at startup");
            return;
        }
    };
    for entry in &entries {
        match entry_defect(entry) {
            Some(defect @ EntryDefect::UnscopedUnix) => tracing::error!(
                entry_id = %entry.id,
                %defect,
                "entry is scoped to no agent and is never issued; delete it and create it again with --node AGENT-ID"
            ),
            Some(defect @ EntryDefect::TemplateSegment) => tracing::error!(
                entry_id = %entry.id,
                %defect,
                "entry's template lets a pod-controlled value share a path segment and is never issued; delete it and create it again with each such value in a segment of its own"
            ),
            None => {}
        }
    }
}

/// Mirrors the CA's bundle into the datastore and the bundle file.
async fn publish_bundle(shared: &Shared) -> Result<(), ServerError> {
    let bundle = shared.ca.bundle();
    let stored = shared.store.list_roots().await?;
    for der in &bundle.roots_der {
        if !stored.iter().any(|s| &s.der == der) {
            let not_after = x509_parser::parse_x509_certificate(der)
                .map(|(_, c)| c.validity().not_after.timestamp())
                .unwrap_or(0);
            shared
                .store
                .put_root(&StoredRoot {
                    der: der.clone(),
                    not_after,
                })
                .await?;
        }
    }
    for s in &stored {
        if !bundle.roots_der.iter().any(|r| r == &s.der) {
            shared.store.remove_root(&s.der).await?;
        }
    }
    let pem = bundle.to_pem();
    let path = &shared.config.bundle_file;
    if let Err(error) = sworn_identity::fs::write_atomic(path, pem.as_bytes(), 0o644) {
        tracing::warn!(error = %format!("{error:#}"), path = %path.display(), "cannot write the bundle file");
    }
    for cluster in shared.clusters.iter() {
        if let Err(error) = crate::k8s::bundle_configmap::publish(cluster, &pem).await {
            tracing::warn!(%error, cluster = %cluster.config.name, "cannot publish the bundle ConfigMap");
        }
    }
    shared
        .metrics
        .bundle_roots
        .set(i64::try_from(bundle.roots_der.len()).unwrap_or(i64::MAX));
    if let Ok(status) = shared.ca.status() {
        shared
            .metrics
            .ca_expiry
            .set(unix_secs(status.active_not_after));
    }
    Ok(())
}

/// The CA's rotation loop wakes when its clock reaches the next step, and at least this often
/// (so a stepped wall clock is noticed).
const ROTATION_PERIOD: Duration = Duration::from_secs(5);

/// Publishes each CA rotation step beyond the CA's own watch channel (which the agent API's
/// Sync streams and TLS follow): the datastore's roots, the bundle file, the bundle
/// ConfigMaps and the CA metrics, which change at activation too (docs/architecture.md,
/// "The CA").
#[derive(Debug)]
struct PublishRotation(Arc<Shared>);

#[async_trait::async_trait]
impl RotationObserver for PublishRotation {
    async fn rotated(&self, _report: RotationReport) {
        if let Err(error) = publish_bundle(&self.0).await {
            tracing::error!(%error, "cannot publish the rotated bundle");
        }
    }
}
