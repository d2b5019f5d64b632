//! Logging setup, Prometheus metrics, and the `/metrics`, `/healthz`,
//! `/readyz` HTTP endpoints (docs/architecture.md, "Observability"), on a port separate from the APIs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::config::LogFormat;

/// Installs the global tracing subscriber. Called once, from `main`.
pub fn init_logging(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests, sworn-dev) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Labels for outcome counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// What was attempted, e.g. `workload`, `admin`, `join_token`, `k8s`.
    pub kind: String,
    /// `allow`, `deny`, or `unavailable` (a fault stopped the decision).
    pub decision: String,
}

/// Labels of `sworn_server_sync_messages_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SyncMessageLabels {
    /// `full` (the complete state) or `delta` (what changed since the agent's revision).
    pub kind: &'static str,
}

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// SVIDs minted, by kind and outcome.
    pub svids: Family<OutcomeLabels, Counter>,
    /// Agent attestations, by method and outcome.
    pub attestations: Family<OutcomeLabels, Counter>,
    /// Registration entries in the datastore.
    pub entries: Gauge,
    /// Unix seconds at which the active CA expires.
    pub ca_expiry: Gauge,
    /// Roots in the trust bundle.
    pub bundle_roots: Gauge,
    /// Sync messages sent, by `kind` (`full`, `delta`).
    pub sync_messages: Family<SyncMessageLabels, Counter>,
    /// Entry and tombstone rows the Sync path read from the datastore.
    pub sync_entry_rows_read: Counter,
    /// Sync streams a change signal woke (counted when signalled).
    pub sync_wakeups: Counter,
    /// Re-checks of an agent's standing by an open Sync stream with nothing signalled.
    pub sync_rechecks: Counter,
    /// Audit transactions committed (a mint request's rows share one).
    pub audit_commits: Counter,
    /// Audit rows committed.
    pub audit_rows: Counter,
    /// Agent records read from the datastore to authenticate an agent API call.
    pub agent_lookups: Counter,
    ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("sworn_server");
        let svids = Family::<OutcomeLabels, Counter>::default();
        let attestations = Family::<OutcomeLabels, Counter>::default();
        let entries = Gauge::default();
        let ca_expiry = Gauge::default();
        let bundle_roots = Gauge::default();
        let audit_commits = Counter::default();
        let audit_rows = Counter::default();
        let agent_lookups = Counter::default();
        registry.register("svids", "X509-SVID mint decisions", svids.clone());
        registry.register(
            "attestations",
            "Agent attestation decisions",
            attestations.clone(),
        );
        registry.register("entries", "Registration entries", entries.clone());
        registry.register(
            "ca_expiry_seconds",
            "Unix time the active CA expires",
            ca_expiry.clone(),
        );
        registry.register(
            "bundle_roots",
            "Root certificates in the trust bundle",
            bundle_roots.clone(),
        );
        let sync_messages = Family::<SyncMessageLabels, Counter>::default();
        let sync_entry_rows_read = Counter::default();
        let sync_wakeups = Counter::default();
        let sync_rechecks = Counter::default();
        registry.register(
            "sync_messages",
            "Sync messages sent to agents, full state or delta",
            sync_messages.clone(),
        );
        registry.register(
            "sync_entry_rows_read",
            "Entry and tombstone rows read from the datastore for Sync",
            sync_entry_rows_read.clone(),
        );
        registry.register(
            "sync_wakeups",
            "Sync streams woken by a change that concerns their agent",
            sync_wakeups.clone(),
        );
        registry.register(
            "sync_rechecks",
            "Periodic re-checks of an agent's standing by its open Sync stream",
            sync_rechecks.clone(),
        );
        registry.register(
            "audit_commits",
            "Audit transactions committed",
            audit_commits.clone(),
        );
        registry.register("audit_rows", "Audit rows committed", audit_rows.clone());
        registry.register(
            "agent_lookups",
            "Agent records read from the datastore to authenticate agent API calls",
            agent_lookups.clone(),
        );
        Metrics {
            registry,
            sync_messages,
            sync_entry_rows_read,
            sync_wakeups,
            sync_rechecks,
            svids,
            attestations,
            entries,
            ca_expiry,
            bundle_roots,
            audit_commits,
            audit_rows,
            agent_lookups,
            ready: AtomicBool::new(false),
        }
    }
}

impl Metrics {
    /// Counts one outcome.
    pub fn count(family: &Family<OutcomeLabels, Counter>, kind: &str, decision: &str) {
        family
            .get_or_create(&OutcomeLabels {
                kind: kind.to_owned(),
                decision: decision.to_owned(),
            })
            .inc();
    }

    /// Marks the process ready (or not) for `/readyz`.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

async fn metrics(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    match m.encode() {
        Ok(body) => (
            StatusCode::OK,
            [(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn readyz(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    if m.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// Serves the health and metrics endpoints until `shutdown`.
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(metrics);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

async fn metrics_handler(state: State<Arc<Metrics>>) -> impl IntoResponse {
    metrics(state).await
}

/// Binds the health address, reporting the address in the error.
pub async fn bind_http(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot bind health address {addr}: {e}"))
    })
}
