//! A tonic channel to the admin socket, for the CLI subcommands.

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use sworn_proto::admin::admin_api_client::AdminApiClient;
use tonic::transport::{Channel, Endpoint, Uri};

/// Connects to the admin API on `socket`.
pub async fn connect(socket: &Path) -> Result<AdminApiClient<Channel>, tonic::transport::Error> {
    let socket: PathBuf = socket.to_owned();
    // The URI is required by the API but unused: the connector dials the socket.
    let channel = Endpoint::from_static("http://admin.sock")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await?;
    Ok(AdminApiClient::new(channel))
}
