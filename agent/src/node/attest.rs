//! The `Attest` and `RenewAgent` calls (docs/architecture.md, "Node attestation").

use std::path::PathBuf;
use std::time::Duration;

use sworn_proto::agent::{
    AttestRequest, AttestResponse, JoinTokenAttestation, K8sAttestation, RenewAgentRequest,
    attest_request,
};

use super::svid::NodeSvid;
use crate::config::NodeAttestation;
use crate::key::{self, KeyError};
use crate::storage::StorageError;
use crate::tls::TlsError;
use crate::upstream::{Upstream, UpstreamError};

/// Longest wait for one attestation call.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the agent could not obtain or renew its SVID.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The server refused (bad or spent token, banned or unknown agent, superseded
    /// certificate). Its message is generic; the reason is in the server's audit log.
    #[error("the server refused the agent: {code}: {message}")]
    Refused {
        /// The gRPC status code.
        code: tonic::Code,
        /// The server's message.
        message: String,
    },
    /// The server could not be reached or did not answer in time; retried with backoff.
    #[error("the server is unreachable: {0}")]
    Unreachable(String),
    /// The projected agent token could not be read.
    #[error("reading the agent token {path}: {source}")]
    Token {
        /// The token file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No persisted SVID and no join token to attest with.
    #[error("no valid agent svid in {0} and no join token configured (key `join_token`)")]
    NoIdentity(PathBuf),
    /// The server's answer is not a usable SVID.
    #[error("unusable attestation response: {0}")]
    BadResponse(String),
    /// Persisting the SVID failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Key generation failed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The TLS configuration could not be built (bad bundle).
    #[error(transparent)]
    Tls(#[from] TlsError),
}

impl NodeError {
    /// A refusal: retrying with the same credentials will not help.
    pub fn is_refusal(&self) -> bool {
        matches!(self, NodeError::Refused { .. })
    }
}

impl From<tonic::Status> for NodeError {
    fn from(status: tonic::Status) -> Self {
        use tonic::Code;
        match status.code() {
            Code::Unauthenticated
            | Code::PermissionDenied
            | Code::InvalidArgument
            | Code::FailedPrecondition
            | Code::NotFound => NodeError::Refused {
                code: status.code(),
                message: status.message().to_owned(),
            },
            _ => NodeError::Unreachable(format!("{}: {}", status.code(), status.message())),
        }
    }
}

impl From<UpstreamError> for NodeError {
    fn from(e: UpstreamError) -> Self {
        match e {
            UpstreamError::Tls(t) => NodeError::Tls(t),
            UpstreamError::Connect(c) => NodeError::Unreachable(crate::upstream::describe(&c)),
        }
    }
}

/// An agent SVID and the bundle that came with it.
pub(crate) struct Attested {
    pub svid: NodeSvid,
    pub bundle: Vec<Vec<u8>>,
}

/// `Attest` without a client certificate. `insecure` skips server verification.
pub(crate) async fn attest(
    upstream: &Upstream,
    method: &NodeAttestation,
    insecure: bool,
    data_dir: &std::path::Path,
) -> Result<Attested, NodeError> {
    let method = match method {
        NodeAttestation::JoinToken(Some(token)) => {
            attest_request::Method::JoinToken(JoinTokenAttestation {
                token: token.expose().to_owned(),
            })
        }
        NodeAttestation::JoinToken(None) => return Err(NodeError::NoIdentity(data_dir.into())),
        NodeAttestation::K8s {
            cluster,
            token_path,
        } => {
            let token = tokio::fs::read_to_string(token_path)
                .await
                .map_err(|source| NodeError::Token {
                    path: token_path.clone(),
                    source,
                })?;
            attest_request::Method::K8s(K8sAttestation {
                cluster: cluster.clone(),
                token: token.trim().to_owned(),
            })
        }
    };
    let fresh = key::generate()?;
    let request = AttestRequest {
        method: Some(method),
        csr: fresh.csr,
    };
    let mut client = upstream.attest_client(insecure).await?;
    let response = timed(client.attest(request)).await?;
    accept(response, fresh.key)
}

/// `RenewAgent` over mTLS with the current SVID (join-token agents).
pub(crate) async fn renew(upstream: &Upstream) -> Result<Attested, NodeError> {
    let mut client = upstream
        .client()
        .ok_or_else(|| NodeError::Unreachable("no mTLS channel yet".into()))?
        .client;
    let fresh = key::generate()?;
    let response = timed(client.renew_agent(RenewAgentRequest { csr: fresh.csr })).await?;
    accept(response, fresh.key)
}

async fn timed<T>(
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, NodeError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(status.into()),
        Err(_) => Err(NodeError::Unreachable("the call timed out".into())),
    }
}

fn accept(
    response: AttestResponse,
    key: zeroize::Zeroizing<Vec<u8>>,
) -> Result<Attested, NodeError> {
    if response.bundle.is_empty() {
        return Err(NodeError::BadResponse("empty trust bundle".into()));
    }
    let svid = NodeSvid::from_parts(&response.agent_id, response.svid_chain, key)
        .map_err(NodeError::BadResponse)?;
    Ok(Attested {
        svid,
        bundle: response.bundle,
    })
}
