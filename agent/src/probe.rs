//! `sworn-agent healthcheck`: asks the agent's `/readyz` (docs/architecture.md, "Command line", "Observability"); also a small
//! GET for the other health endpoints.

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Why the probe could not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Connecting or speaking HTTP failed.
    #[error("asking {address}: {reason}")]
    Http {
        /// The health address.
        address: SocketAddr,
        /// What failed.
        reason: String,
    },
    /// No answer in time.
    #[error("asking {0}: timed out")]
    Timeout(SocketAddr),
}

/// An HTTP answer: status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyzAnswer {
    /// HTTP status code (200 when attested).
    pub status: u16,
    /// The body (`attested`, `not attested`, `rejected`).
    pub body: String,
}

/// GETs `http://address/readyz`.
pub async fn readyz(address: SocketAddr) -> Result<ReadyzAnswer, ProbeError> {
    get(address, "/readyz").await
}

/// GETs `http://address<path>` (`/readyz`, `/healthz`, `/metrics`).
pub async fn get(address: SocketAddr, path: &'static str) -> Result<ReadyzAnswer, ProbeError> {
    tokio::time::timeout(Duration::from_secs(5), http_get(address, path))
        .await
        .map_err(|_| ProbeError::Timeout(address))?
        .map_err(|reason| ProbeError::Http { address, reason })
}

async fn http_get(address: SocketAddr, path: &'static str) -> Result<ReadyzAnswer, String> {
    let tcp = TcpStream::connect(address)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(conn);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, address.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    driver.abort();
    Ok(ReadyzAnswer {
        status,
        body: String::from_utf8_lossy(&body).trim().to_owned(),
    })
}
