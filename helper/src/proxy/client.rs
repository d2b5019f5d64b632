//! Client mode: plaintext in on loopback, mTLS upstream, the server authorized by SPIFFE ID.

use std::sync::Arc;

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use sworn_identity::leaf_spiffe_id;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;
use tracing::{Span, debug, info};

use super::{ActiveGuard, HostPort, Limits, accept_loop, handshake_metric, splice};
use crate::metrics::Metrics;

/// Why client mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClientModeError {
    /// The upstream host is neither a DNS name nor an IP address.
    #[error("upstream host {0:?} is not a dns name or ip address")]
    UpstreamName(String),
}

/// Runs client mode on `listener` until `shutdown`. `tls` should come from
/// [`crate::tls::client_config`]. The upstream host is sent as SNI only; the server is
/// accepted by its SPIFFE ID.
pub async fn run(
    listener: TcpListener,
    upstream: HostPort,
    tls: Arc<ClientConfig>,
    limits: Limits,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), ClientModeError> {
    let name = ServerName::try_from(upstream.host().to_owned())
        .map_err(|_| ClientModeError::UpstreamName(upstream.host().to_owned()))?;
    let connector = TlsConnector::from(tls);
    let upstream = Arc::new(upstream);
    // The accept loop itself never fails.
    let _ = accept_loop(listener, limits, shutdown, move |tcp, stop| {
        handle(
            tcp,
            connector.clone(),
            name.clone(),
            upstream.clone(),
            limits,
            metrics.clone(),
            stop,
        )
    })
    .await;
    Ok(())
}

async fn handle(
    mut plain: TcpStream,
    connector: TlsConnector,
    name: ServerName<'static>,
    upstream: Arc<HostPort>,
    limits: Limits,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let _active = ActiveGuard::new(&metrics);
    let tcp = match upstream.connect(limits.handshake_timeout).await {
        Ok(s) => s,
        Err(error) => {
            metrics.forward_errors.inc();
            info!(%error, %upstream, "upstream connect failed");
            return;
        }
    };
    let mut tls =
        match tokio::time::timeout(limits.handshake_timeout, connector.connect(name, tcp)).await {
            Err(_) => {
                handshake_metric(&metrics, "timeout");
                info!(%upstream, "tls handshake timed out");
                return;
            }
            Ok(Err(error)) => {
                handshake_metric(&metrics, "failed");
                info!(%error, %upstream, "tls handshake failed");
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
    tokio::select! {
        result = splice(&mut plain, &mut tls) => match result {
            Ok((to_upstream, to_client)) => debug!(to_upstream, to_client, "connection closed"),
            Err(error) => debug!(%error, "connection ended with an error"),
        },
        () = stop.cancelled() => debug!("closed by shutdown"),
    }
}
