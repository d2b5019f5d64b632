//! The agent API: TCP + TLS 1.3 (rustls), `sworn.agent.v1` (docs/architecture.md, "Protocols").
//!
//! `Attest` needs no client certificate; every other call requires the
//! agent's SVID and is checked against the agent record ([`auth`]).

pub mod auth;
pub mod decision;
pub mod k8s;
pub mod ratelimit;
pub mod service;
pub mod stall;
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

/// A handshake that has not finished by then is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
    // Accept loop: handshakes run in their own tasks, bounded by a timeout.
    {
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
                    let acceptor = tls.acceptor();
                    let tx = tx.clone();
                    tasks2.spawn(async move {
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(stream)) => {
                                let _ = tx.send(Ok::<_, std::io::Error>(stream)).await;
                            }
                            Ok(Err(error)) => {
                                tracing::info!(%peer, %error, "agent TLS handshake refused")
                            }
                            Err(_) => tracing::info!(%peer, "agent TLS handshake timed out"),
                        }
                    });
                }
            }
            .instrument(tracing::info_span!("accept")),
        );
    }
    let svc = AgentApiServer::new(service::AgentService::new(shared, shutdown.clone()))
        .max_decoding_message_size(4 << 20);
    let result = tonic::transport::Server::builder()
        .add_service(svc)
        .serve_with_incoming_shutdown(ReceiverStream::new(rx), shutdown.cancelled())
        .await;
    if let Err(error) = result {
        tracing::error!(%error, "agent API stopped");
    }
}
