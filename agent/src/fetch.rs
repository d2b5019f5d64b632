//! `sworn-agent fetch x509`: a small Workload API client (docs/architecture.md, "Command line").
//!
//! It sends the security header, reads the first message of `FetchX509SVID` and, with
//! `--write DIR`, writes `svid.pem`, `svid.key` (0600) and `bundle.pem` atomically. The socket
//! comes from `--socket` or `SPIFFE_ENDPOINT_SOCKET` (`unix:///path`, the Workload Endpoint
//! spec's URI form).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use hyper_util::rt::TokioIo;
use sworn_proto::workload::X509svidRequest;
use sworn_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};
use x509_parser::prelude::{FromDer, X509Certificate};
use zeroize::Zeroizing;

use crate::storage::{self, StorageError};
use crate::workload_api::SECURITY_HEADER;

/// Why fetching failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The socket address is not a unix path or `unix://` URI.
    #[error("socket address {0:?}: use an absolute path or unix:///path")]
    Address(String),
    /// Connecting to the socket failed.
    #[error("connecting to the workload api: {0}")]
    Connect(#[from] tonic::transport::Error),
    /// The agent answered with an error status.
    #[error("the workload api answered {code:?}: {message}")]
    Status {
        /// The code.
        code: tonic::Code,
        /// The message.
        message: String,
    },
    /// The stream ended without a message.
    #[error("the workload api closed the stream without an answer")]
    Empty,
    /// An SVID in the answer is malformed.
    #[error("malformed svid: {0}")]
    Malformed(String),
    /// Writing the files failed.
    #[error(transparent)]
    Write(#[from] StorageError),
}

impl From<tonic::Status> for FetchError {
    fn from(s: tonic::Status) -> Self {
        FetchError::Status {
            code: s.code(),
            message: s.message().to_owned(),
        }
    }
}

/// One X509-SVID as received.
#[derive(Clone)]
pub struct FetchedSvid {
    /// The SPIFFE ID.
    pub spiffe_id: String,
    /// DER chain, leaf first.
    pub chain: Vec<Vec<u8>>,
    /// PKCS#8 DER key.
    pub key: Zeroizing<Vec<u8>>,
    /// Bundle roots, DER.
    pub bundle: Vec<Vec<u8>>,
    /// The leaf's `notAfter`.
    pub not_after: SystemTime,
    /// The hint.
    pub hint: String,
}

impl std::fmt::Debug for FetchedSvid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchedSvid")
            .field("spiffe_id", &self.spiffe_id)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// Parses `unix:///abs/path`, `unix:/abs/path` or a plain absolute path.
pub fn socket_address(value: &str) -> Result<PathBuf, FetchError> {
    let path = value
        .strip_prefix("unix://")
        .or_else(|| value.strip_prefix("unix:"))
        .unwrap_or(value);
    if path.starts_with('/') {
        Ok(PathBuf::from(path))
    } else {
        Err(FetchError::Address(value.to_owned()))
    }
}

/// A Workload API client on `socket`. Every request must carry the security header; see
/// [`request`].
pub async fn connect(socket: &Path) -> Result<SpiffeWorkloadApiClient<Channel>, FetchError> {
    Ok(SpiffeWorkloadApiClient::new(channel(socket).await?))
}

/// An HTTP/2 channel to the Workload API socket.
pub async fn channel(socket: &Path) -> Result<Channel, FetchError> {
    let socket = socket.to_owned();
    // The URI is required by tonic but unused: the connector dials the socket.
    let channel = Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(socket).await?)) }
        }))
        .await?;
    Ok(channel)
}

/// Wraps `message` with the security header.
pub fn request<T>(message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut().insert(
        SECURITY_HEADER,
        tonic::metadata::MetadataValue::from_static("true"),
    );
    r
}

/// Fetches the caller's X509-SVIDs (the first stream message).
pub async fn fetch_x509(socket: &Path) -> Result<Vec<FetchedSvid>, FetchError> {
    let mut client = connect(socket).await?;
    let mut stream = client
        .fetch_x509svid(request(X509svidRequest {}))
        .await?
        .into_inner();
    let msg = stream.message().await?.ok_or(FetchError::Empty)?;
    msg.svids
        .into_iter()
        .map(|s| {
            let chain = split_der(&s.x509_svid)?;
            let bundle = split_der(&s.bundle)?;
            let leaf = chain
                .first()
                .ok_or_else(|| FetchError::Malformed("empty chain".into()))?;
            let (_, not_after) = crate::cert::validity(leaf)
                .ok_or_else(|| FetchError::Malformed("unparsable leaf".into()))?;
            Ok(FetchedSvid {
                spiffe_id: s.spiffe_id,
                chain,
                key: Zeroizing::new(s.x509_svid_key),
                bundle,
                not_after,
                hint: s.hint,
            })
        })
        .collect()
}

/// Splits concatenated DER certificates.
pub fn split_der(mut bytes: &[u8]) -> Result<Vec<Vec<u8>>, FetchError> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (rest, _) = X509Certificate::from_der(bytes)
            .map_err(|e| FetchError::Malformed(format!("certificate {}: {e}", out.len())))?;
        out.push(bytes[..bytes.len() - rest.len()].to_vec());
        bytes = rest;
    }
    Ok(out)
}

/// Writes `svid.pem`, `svid.key` (0600) and `bundle.pem` into `dir`, each atomically.
pub fn write_files(dir: &Path, svid: &FetchedSvid) -> Result<(), FetchError> {
    std::fs::create_dir_all(dir).map_err(|source| StorageError::Io {
        path: dir.to_owned(),
        action: "create directory",
        source,
    })?;
    let key = storage::key_to_pem(&svid.key);
    storage::write_atomic(&dir.join("svid.key"), key.as_bytes(), 0o600)?;
    storage::write_atomic(
        &dir.join("svid.pem"),
        storage::certs_to_pem(&svid.chain).as_bytes(),
        0o644,
    )?;
    storage::write_atomic(
        &dir.join("bundle.pem"),
        storage::certs_to_pem(&svid.bundle).as_bytes(),
        0o644,
    )?;
    Ok(())
}
