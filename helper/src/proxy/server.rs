//! Server mode: mTLS in, SPIFFE ID authorization, plaintext to the backend.

use std::sync::Arc;

use rustls::ServerConfig;
use sworn_identity::leaf_spiffe_id;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{Span, debug, info};

use super::{ActiveGuard, HostPort, Limits, accept_loop, handshake_metric, splice};
use crate::metrics::Metrics;

/// Runs server mode on `listener` until `shutdown`. `tls` should come from
/// [`crate::tls::server_config`] so that peers are authorized by SPIFFE ID.
pub async fn run(
    listener: TcpListener,
    backend: HostPort,
    tls: Arc<ServerConfig>,
    limits: Limits,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    let backend = Arc::new(backend);
    accept_loop(listener, limits, shutdown, move |tcp, stop| {
        handle(
            tcp,
            acceptor.clone(),
            backend.clone(),
            limits,
            metrics.clone(),
            stop,
        )
    })
    .await
}

async fn handle(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    backend: Arc<HostPort>,
    limits: Limits,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let _active = ActiveGuard::new(&metrics);
    let mut tls = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
        Err(_) => {
            handshake_metric(&metrics, "timeout");
            info!("tls handshake timed out");
            return;
        }
        Ok(Err(error)) => {
            handshake_metric(&metrics, "failed");
            info!(%error, "tls handshake failed");
            return;
        }
        Ok(Ok(tls)) => tls,
    };
    handshake_metric(&metrics, "ok");
    if let Some(id) = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| leaf_spiffe_id(c).ok())
    {
        Span::current().record("peer_id", tracing::field::display(&id));
    }
    let mut upstream = match backend.connect(limits.handshake_timeout).await {
        Ok(s) => s,
        Err(error) => {
            metrics.forward_errors.inc();
            info!(%error, %backend, "backend connect failed");
            return;
        }
    };
    tokio::select! {
        result = splice(&mut tls, &mut upstream) => match result {
            Ok((to_backend, to_peer)) => debug!(to_backend, to_peer, "connection closed"),
            Err(error) => debug!(%error, "connection ended with an error"),
        },
        () = stop.cancelled() => debug!("closed by shutdown"),
    }
}
