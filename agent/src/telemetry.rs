//! Metrics and the health endpoints (docs/architecture.md, "Outcomes").
//!
//! A separate HTTP listener (default `127.0.0.1:8082`) serves `/healthz` (the process runs),
//! `/readyz` (200 "attested" / 503 "not attested", or "rejected" when the server refuses a
//! join-token agent) and `/metrics` (Prometheus text).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::status::Status;

/// Label set of the Workload API counters: `method` and, for denials, `reason`.
pub type Labels = Vec<(&'static str, &'static str)>;

/// The agent's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Workload API requests, by method.
    pub requests: Family<Labels, Counter>,
    /// Workload API refusals, by method and reason.
    pub denials: Family<Labels, Counter>,
    /// SVIDs in the cache, unix callers and pods alike.
    pub cache_size: Gauge,
    /// Workload SVID rotations, unix callers and pods alike.
    pub rotations: Counter,
    /// Workload mint outcomes from the server, by `mode` (`unix`, `k8s`) and `outcome`
    /// (`issued`, `denied`, `unavailable`). Only `denied` drops a cached SVID.
    pub mint_outcomes: Family<Labels, Counter>,
    /// `MintX509SVIDs` requests sent to the server (each carries up to 256 items).
    pub mint_requests: Counter,
    /// Mint items waiting for a request (at most 4 requests are in flight at once).
    pub mint_items_queued: Gauge,
    /// Open Workload API streams woken to recompute their message (only a change for that
    /// stream's caller wakes it).
    pub stream_wakeups: Counter,
    /// Agent SVID renewals.
    pub agent_renewals: Counter,
    /// Workload API connections the agent closed, by `reason`: `limit` (a connection cap)
    /// or the HTTP/2 guard's reason (`frame_too_large`, `idle`, …; docs/architecture.md,
    /// "Workload API connections").
    pub connections_closed: Family<Labels, Counter>,
    /// Unix callers' executable digests by `outcome`: `hit` (from the digest cache) or
    /// `miss` (hashed).
    pub exe_digests: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `sworn_agent` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sworn_agent");
        let requests = Family::<Labels, Counter>::default();
        let denials = Family::<Labels, Counter>::default();
        let cache_size = Gauge::default();
        let rotations = Counter::default();
        let mint_outcomes = Family::<Labels, Counter>::default();
        let mint_requests = Counter::default();
        let mint_items_queued = Gauge::default();
        let agent_renewals = Counter::default();
        let stream_wakeups = Counter::default();
        let connections_closed = Family::<Labels, Counter>::default();
        let exe_digests = Family::<Labels, Counter>::default();
        registry.register(
            "exe_digests",
            "Executable digests of unix callers, from the cache (hit) or hashed (miss)",
            exe_digests.clone(),
        );
        registry.register(
            "workload_api_requests",
            "Workload API requests",
            requests.clone(),
        );
        registry.register(
            "workload_api_denials",
            "Workload API refusals",
            denials.clone(),
        );
        registry.register(
            "svid_cache_size",
            "Workload SVIDs in the cache",
            cache_size.clone(),
        );
        registry.register(
            "svid_rotations",
            "Workload SVID rotations",
            rotations.clone(),
        );
        registry.register(
            "mint_outcomes",
            "Workload mint outcomes (issued, denied, unavailable)",
            mint_outcomes.clone(),
        );
        registry.register(
            "mint_requests",
            "MintX509SVIDs requests sent to the server",
            mint_requests.clone(),
        );
        registry.register(
            "mint_items_queued",
            "Mint items waiting for a request",
            mint_items_queued.clone(),
        );
        registry.register(
            "workload_api_stream_wakeups",
            "Workload API streams woken to recompute their message",
            stream_wakeups.clone(),
        );
        registry.register(
            "agent_renewals",
            "Agent SVID renewals",
            agent_renewals.clone(),
        );
        registry.register(
            "workload_api_connections_closed",
            "Workload API connections closed by the agent, by reason",
            connections_closed.clone(),
        );
        Self {
            registry,
            requests,
            denials,
            cache_size,
            rotations,
            mint_outcomes,
            mint_requests,
            mint_items_queued,
            stream_wakeups,
            agent_renewals,
            connections_closed,
            exe_digests,
        }
    }

    /// Counts a request.
    pub fn request(&self, method: &'static str) {
        self.requests.get_or_create(&vec![("method", method)]).inc();
    }

    /// Counts a refusal.
    pub fn deny(&self, method: &'static str, reason: &'static str) {
        self.denials
            .get_or_create(&vec![("method", method), ("reason", reason)])
            .inc();
    }

    /// Counts a Workload API connection the agent closed.
    pub fn connection_closed(&self, reason: &'static str) {
        self.connections_closed
            .get_or_create(&vec![("reason", reason)])
            .inc();
    }

    /// Counts one mint outcome.
    pub fn mint_outcome(&self, mode: &'static str, outcome: &'static str) {
        self.mint_outcomes
            .get_or_create(&vec![("mode", mode), ("outcome", outcome)])
            .inc();
    }

    /// Counts one executable digest: `hit` or `miss`.
    pub fn exe_digest(&self, outcome: &'static str) {
        self.exe_digests
            .get_or_create(&vec![("outcome", outcome)])
            .inc();
    }

    fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[derive(Debug, Clone)]
struct Shared {
    status: Arc<Status>,
    metrics: Arc<Metrics>,
}

/// Serves the health endpoints on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    status: Arc<Status>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(Shared { status, metrics });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

async fn readyz(State(s): State<Shared>) -> impl IntoResponse {
    let r = s.status.get();
    if r.is_ready() {
        (StatusCode::OK, "attested\n")
    } else if r.rejected {
        (StatusCode::SERVICE_UNAVAILABLE, "rejected\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not attested\n")
    }
}

async fn metrics_text(State(s): State<Shared>) -> impl IntoResponse {
    match s.metrics.encode() {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
