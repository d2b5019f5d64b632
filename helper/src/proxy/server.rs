//! Server mode: mTLS in, SPIFFE ID authorization, plaintext to the backend.

use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use sworn_identity::leaf_spiffe_id;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
    let accept = acceptor.accept(tcp).into_fallible();
    let mut tls = match tokio::time::timeout(limits.handshake_timeout, accept).await {
        Err(_) => {
            handshake_metric(&metrics, "timeout");
            info!("tls handshake timed out");
            return;
        }
        Ok(Err((error, tcp))) => {
            handshake_metric(&metrics, "failed");
            info!(%error, "tls handshake failed");
            close_after_alert(tcp).await;
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

/// How long, and for how many bytes, a refused connection is drained after its alert.
const DRAIN_TIME: Duration = Duration::from_secs(1);
const DRAIN_BYTES: usize = 64 * 1024;

/// Closes a connection whose handshake failed, after rustls has written its alert.
///
/// In TLS 1.3 the server judges the client's certificate after the client considers the
/// handshake done, so the client may already be sending data. Closing a socket with unread
/// data makes the kernel answer with a reset, and a reset can discard the alert before the
/// client reads it: the client would see "broken pipe" instead of the reason. So send FIN,
/// then read and discard what the client sends, bounded in time and bytes
/// (docs/architecture.md, "The helper").
async fn close_after_alert(mut tcp: TcpStream) {
    if tcp.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        let mut buf = [0u8; 4096];
        let mut total = 0;
        while total < DRAIN_BYTES {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
}
