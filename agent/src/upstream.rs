//! The agent's link to the server's agent API (docs/architecture.md, "Node attestation", "Protocols").
//!
//! One mTLS channel at a time is published on a `watch`: after an SVID renewal a new channel
//! is connected with the new certificate and, only once it works, replaces the old one. Calls
//! and streams already running keep their clone of the old channel until they finish, so
//! renewal drops nothing. `Attest` uses its own short-lived channel without a client
//! certificate.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::ServerName;
use sworn_proto::agent::agent_api_client::AgentApiClient;
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};
use tonic::transport::{Channel, Endpoint, Uri};

use crate::config::ServerAddress;
use crate::tls::{self, InsecureVerifier, ServerVerifier, TlsError};

/// Largest agent API response the agent accepts (mint batches, bundles, entry lists).
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 pings keep the Sync stream honest: a dead server is noticed within about a minute.
const KEEPALIVE: Duration = Duration::from_secs(20);

/// Why the server could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Building the TLS configuration failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Connecting (TCP, TLS or HTTP/2) failed.
    #[error("connecting to the server: {0}")]
    Connect(#[from] tonic::transport::Error),
}

/// The agent's view of the server: address, trust and the current mTLS channel.
#[derive(Debug)]
pub struct Upstream {
    address: ServerAddress,
    verifier: Arc<ServerVerifier>,
    /// The current mTLS channel and its generation (bumped on every new identity).
    channel: watch::Sender<Option<(u64, Channel)>>,
    refused: Notify,
}

/// An mTLS client and the generation of the identity it presents.
#[derive(Debug, Clone)]
pub struct Link {
    /// The client.
    pub client: AgentApiClient<Channel>,
    /// Pass it to [`Upstream::report_refused`].
    pub generation: u64,
}

impl Upstream {
    /// An upstream that trusts nothing until roots are set on `verifier`.
    pub fn new(address: ServerAddress, verifier: Arc<ServerVerifier>) -> Self {
        Self {
            address,
            verifier,
            channel: watch::Sender::new(None),
            refused: Notify::new(),
        }
    }

    /// The server verifier (its roots follow the bundle).
    pub fn verifier(&self) -> &Arc<ServerVerifier> {
        &self.verifier
    }

    /// A client for `Attest`, without a client certificate. `insecure` skips server
    /// verification (`danger_insecure_bootstrap`, first attestation only).
    pub async fn attest_client(
        &self,
        insecure: bool,
    ) -> Result<AgentApiClient<Channel>, UpstreamError> {
        let verifier: Arc<dyn ServerCertVerifier> = if insecure {
            Arc::new(InsecureVerifier::new())
        } else {
            self.verifier.clone()
        };
        let channel = self.connect(tls::client_config(verifier, None)?).await?;
        Ok(client(channel))
    }

    /// Connects with a new agent identity and, once that works, makes it the channel for new
    /// calls. On failure the previous channel stays in place.
    pub async fn install_identity(
        &self,
        chain: &[Vec<u8>],
        key: &[u8],
    ) -> Result<(), UpstreamError> {
        let config = tls::client_config(self.verifier.clone(), Some((chain, key)))?;
        let channel = self.connect(config).await?;
        self.channel.send_modify(|current| {
            let generation = current.as_ref().map_or(0, |(g, _)| g + 1);
            *current = Some((generation, channel));
        });
        Ok(())
    }

    /// The current mTLS client with its identity generation, if the agent has an identity.
    pub fn client(&self) -> Option<Link> {
        self.channel.borrow().clone().map(link)
    }

    /// Waits until the agent has an mTLS channel.
    pub async fn wait_client(&self) -> Link {
        let mut rx = self.channel.subscribe();
        loop {
            if let Some(current) = rx.borrow_and_update().clone() {
                return link(current);
            }
            if rx.changed().await.is_err() {
                // The sender lives in `self`, so this cannot happen while `self` is borrowed.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Subscribes to channel replacements (a new identity was installed).
    pub fn subscribe(&self) -> watch::Receiver<Option<(u64, Channel)>> {
        self.channel.subscribe()
    }

    /// Reports that the server refused the identity of `generation`. Refusals of an
    /// identity that has already been replaced are stale (the server supersedes the previous
    /// certificate once the new one is used) and are ignored.
    pub fn report_refused(&self, generation: u64) {
        let current = self.channel.borrow().as_ref().map(|(g, _)| *g);
        if current == Some(generation) {
            self.refused.notify_one();
        }
    }

    /// Resolves when the current identity was refused.
    pub async fn refused(&self) {
        self.refused.notified().await;
    }

    async fn connect(&self, config: Arc<rustls::ClientConfig>) -> Result<Channel, UpstreamError> {
        let host = self.address.host.clone();
        let port = self.address.port;
        // The URI only names the authority for HTTP/2; TLS is done by the connector below.
        let uri = format!("http://{}", authority(&host, port));
        let endpoint = Endpoint::from_shared(uri)?
            .connect_timeout(CONNECT_TIMEOUT)
            .http2_keep_alive_interval(KEEPALIVE)
            .keep_alive_timeout(KEEPALIVE)
            .keep_alive_while_idle(true);
        let connector = tower::service_fn(move |_: Uri| {
            let config = config.clone();
            let host = host.clone();
            async move {
                let tcp = TcpStream::connect((host.as_str(), port)).await?;
                // The custom connector is what opens the socket, so the Endpoint's own
                // `tcp_nodelay` never applies: without this every small gRPC frame waits for
                // Nagle and the server's delayed ACK (docs/architecture.md, "Protocols").
                tcp.set_nodelay(true)?;
                let name = ServerName::try_from(host)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                let tls = tokio_rustls::TlsConnector::from(config)
                    .connect(name, tcp)
                    .await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        });
        Ok(endpoint.connect_with_connector(connector).await?)
    }
}

fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn link((generation, channel): (u64, Channel)) -> Link {
    Link {
        client: client(channel),
        generation,
    }
}

fn client(channel: Channel) -> AgentApiClient<Channel> {
    AgentApiClient::new(channel).max_decoding_message_size(MAX_RESPONSE_BYTES)
}

/// An error and its sources on one line (transport errors hide the useful part in sources).
pub fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
