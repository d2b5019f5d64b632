//! Prometheus metrics of the helper (docs/architecture.md, "Observability"): connections, handshakes, denials,
//! rotations; served on `/metrics` (and `/healthz`) of a separate listener.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::tls::{Denial, DenialHook};

/// Labels of a handshake outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandshakeLabels {
    /// `ok`, `failed` or `timeout`.
    pub result: &'static str,
}

/// Labels of a denial.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DenialLabels {
    /// See [`crate::tls::DenialReason::label`].
    pub reason: &'static str,
}

/// The helper's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Connections accepted (before the handshake).
    pub connections: Counter,
    /// Connections open now.
    pub active_connections: Gauge,
    /// Handshakes by result.
    pub handshakes: Family<HandshakeLabels, Counter>,
    /// Refused peers by reason.
    pub denials: Family<DenialLabels, Counter>,
    /// Backend or upstream connections that failed.
    pub forward_errors: Counter,
    /// SVID or bundle updates applied.
    pub rotations: Counter,
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("sworn_helper");
        let connections = Counter::default();
        let active_connections = Gauge::default();
        let handshakes = Family::<HandshakeLabels, Counter>::default();
        let denials = Family::<DenialLabels, Counter>::default();
        let forward_errors = Counter::default();
        let rotations = Counter::default();
        registry.register("connections", "Connections accepted", connections.clone());
        registry.register(
            "active_connections",
            "Connections open now",
            active_connections.clone(),
        );
        registry.register("handshakes", "TLS handshakes by result", handshakes.clone());
        registry.register("denials", "Peers refused, by reason", denials.clone());
        registry.register(
            "forward_errors",
            "Backend or upstream connections that failed",
            forward_errors.clone(),
        );
        registry.register(
            "rotations",
            "SVID or bundle updates applied",
            rotations.clone(),
        );
        Arc::new(Metrics {
            registry,
            connections,
            active_connections,
            handshakes,
            denials,
            forward_errors,
            rotations,
        })
    }

    /// A denial hook counting into [`Metrics::denials`].
    pub fn denial_hook(self: &Arc<Self>) -> DenialHook {
        let me = self.clone();
        Arc::new(move |d: &Denial| {
            me.denials
                .get_or_create(&DenialLabels {
                    reason: d.reason.label(),
                })
                .inc();
        })
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Serves `/metrics` and `/healthz` on `listener` until `shutdown`.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let me = self.clone();
        let app = Router::new()
            .route(
                "/metrics",
                get(move || {
                    let me = me.clone();
                    async move {
                        (
                            StatusCode::OK,
                            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                            me.encode(),
                        )
                            .into_response()
                    }
                }),
            )
            .route("/healthz", get(|| async { "ok" }));
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
    }
}

/// Binds the metrics listener (so a bad address fails at startup).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
