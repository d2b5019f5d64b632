//! The admin API on a 0600 unix socket (docs/architecture.md, "Protocols"); the `sworn-server`
//! CLI subcommands are its clients.

pub mod client;
pub mod service;
pub mod socket;

use std::sync::Arc;

use sworn_proto::admin::admin_api_server::AdminApiServer;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_util::sync::CancellationToken;

use crate::shared::Shared;

/// Serves the admin API on `listener` until `shutdown`.
pub async fn serve(
    shared: Arc<Shared>,
    listener: tokio::net::UnixListener,
    shutdown: CancellationToken,
) {
    let svc =
        AdminApiServer::new(service::AdminService::new(shared)).max_decoding_message_size(1 << 20);
    let result = tonic::transport::Server::builder()
        .add_service(svc)
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown.cancelled())
        .await;
    if let Err(error) = result {
        tracing::error!(%error, "admin API stopped");
    }
}
