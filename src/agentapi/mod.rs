//! The agent API: TCP + TLS 1.3 (rustls), `sworn.agent.v1` (docs/architecture.md, "Protocols").
//!
//! `Attest` needs no client certificate; every other call requires the
//! agent's SVID and is checked against the agent record ([`auth`]).

pub mod auth;
pub mod conn;
pub mod decision;
pub mod k8s;
pub mod limits;
pub mod memo;
pub mod mint_batch;
pub mod ratelimit;
pub mod service;
pub mod stall;
pub mod sync;
pub mod tls;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use sworn_proto::agent::agent_api_server::AgentApiServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::shared::Shared;

/// How often rate-limit keys whose bucket has refilled are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(10);

/// Serves the agent API on `listener` until `shutdown`.
pub async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let tls = match tls::TlsState::new(&shared) {
        Ok(t) => Arc::new(t),
        Err(error) => {
            tracing::error!(%error, "agent API cannot start");
            return;
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    // Renew the server certificate and follow bundle changes.
    {
        let (shared, tls, shutdown) = (shared.clone(), tls.clone(), shutdown.clone());
        tasks.spawn(
            async move {
                let mut bundle = shared.ca.subscribe();
                let mut tick = tokio::time::interval(Duration::from_secs(10));
                loop {
                    let force = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        r = bundle.changed() => { if r.is_err() { return } true }
                        _ = tick.tick() => false,
                    };
                    if let Err(error) = tls.refresh(&shared, force) {
                        tracing::error!(%error, "cannot renew agent API TLS material");
                    }
                }
            }
            .instrument(tracing::info_span!("tls_refresh")),
        );
    }
    let service = service::AgentService::new(shared.clone(), shutdown.clone());
    // Bound the limiters' memory to the callers of the last few seconds.
    {
        let (service, shutdown) = (service.clone(), shutdown.clone());
        tasks.spawn(
            async move {
                let mut tick = tokio::time::interval(PRUNE_EVERY);
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tick.tick() => service.prune_limits(),
                    }
                }
            }
            .instrument(tracing::info_span!("rate_limit_prune")),
        );
    }
    // Accept loop: one slot per connection under the cap, handshakes in their own tasks.
    {
        let admission = Arc::new(conn::Admission::new(&shared.config.agent_api));
        let (tls, shutdown, tasks2) = (tls.clone(), shutdown.clone(), tasks.clone());
        tasks.spawn(
            async move {
                loop {
                    let (tcp, peer) = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        r = listener.accept() => match r {
                            Ok(c) => c,
                            Err(error) => {
                                tracing::warn!(%error, "accept failed");
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                continue;
                            }
                        },
                    };
                    let admitted = match admission.admit() {
                        Ok(a) => a,
                        Err(error) => {
                            // Debug: a flood over the cap must not become a log flood.
                            tracing::debug!(%peer, %error, "agent connection closed");
                            continue;
                        }
                    };
                    // Small gRPC frames go out at once rather than waiting for Nagle and the
                    // agent's delayed ACK (docs/architecture.md, "Protocols").
                    if let Err(error) = tcp.set_nodelay(true) {
                        tracing::debug!(%peer, %error, "TCP_NODELAY not set");
                    }
                    let (acceptor, tx, admission) = (tls.acceptor(), tx.clone(), admission.clone());
                    tasks2.spawn(async move {
                        match admission.handshake(admitted, tcp, acceptor).await {
                            Ok(conn) => {
                                let _ = tx.send(Ok::<_, std::io::Error>(conn)).await;
                            }
                            Err(error) => tracing::info!(%peer, %error, "agent connection closed"),
                        }
                    });
                }
            }
            .instrument(tracing::info_span!("accept")),
        );
    }
    let max = shared.config.agent_api.max_request_bytes;
    let svc = AgentApiServer::new(service).max_decoding_message_size(max);
    let result = tonic::transport::Server::builder()
        .add_service(svc)
        .serve_with_incoming_shutdown(ReceiverStream::new(rx), shutdown.cancelled())
        .await;
    if let Err(error) = result {
        tracing::error!(%error, "agent API stopped");
    }
}
