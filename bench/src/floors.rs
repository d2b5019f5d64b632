//! Floors measured in the same run, for context: what the hardware costs before
//! any identity system adds its own work.
//!
//! - ECDSA P-256 sign + verify (ring): the cryptographic cost of one SVID (the server signs
//!   the leaf; someone verifies a signature).
//! - A tonic unary round trip on a unix socket: the cheapest gRPC call a Workload API answer
//!   can be.
//! - SHA-256 of the worker executable: both agents hash the caller's binary on every call
//!   (`unix:sha256`), so this bounds fetch latency from below as much as the round trip does.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use futures::Stream;
use hyper_util::rt::TokioIo;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use serde::{Deserialize, Serialize};
use sworn_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use sworn_proto::workload::spiffe_workload_api_server::{
    SpiffeWorkloadApi, SpiffeWorkloadApiServer,
};
use sworn_proto::workload::{
    JwtBundlesRequest, JwtBundlesResponse, JwtsvidRequest, JwtsvidResponse, ValidateJwtsvidRequest,
    ValidateJwtsvidResponse, X509BundlesRequest, X509BundlesResponse, X509svidRequest,
    X509svidResponse,
};
use tokio_util_shim::CancelOnDrop;
use tonic::transport::{Endpoint, Server, Uri};
use tonic::{Request, Response, Status};

use crate::stats::percentile;

/// The floors of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Floors {
    /// Microseconds for one ECDSA P-256 sign plus one verify, single thread.
    pub p256_sign_verify_us: f64,
    /// Sign+verify pairs per second on one core.
    pub p256_sign_verify_per_s: f64,
    /// tonic unary round trip on a unix socket, p50 µs.
    pub tonic_uds_rtt_p50_us: f64,
    /// Same, p99 µs.
    pub tonic_uds_rtt_p99_us: f64,
    /// SHA-256 of the worker executable, µs.
    pub sha256_worker_exe_us: f64,
    /// Its size in bytes.
    pub worker_exe_bytes: u64,
}

/// Measures all floors; `dir` holds the temporary socket.
pub async fn measure(dir: &Path, worker_exe: &Path, budget: Duration) -> Result<Floors> {
    let (sv_us, sv_rate) = tokio::task::spawn_blocking(move || sign_verify(budget)).await??;
    let (p50, p99) = tonic_rtt(dir, budget).await?;
    let exe = worker_exe.to_owned();
    let (sha_us, bytes) = tokio::task::spawn_blocking(move || sha256_file(&exe, budget)).await??;
    Ok(Floors {
        p256_sign_verify_us: sv_us,
        p256_sign_verify_per_s: sv_rate,
        tonic_uds_rtt_p50_us: p50,
        tonic_uds_rtt_p99_us: p99,
        sha256_worker_exe_us: sha_us,
        worker_exe_bytes: bytes,
    })
}

fn sign_verify(budget: Duration) -> Result<(f64, f64)> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|_| anyhow!("p256 keygen failed"))?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| anyhow!("p256 key rejected"))?;
    let public =
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key.public_key().as_ref().to_vec());
    // About the size of an X509-SVID's TBSCertificate.
    let msg = vec![0x5au8; 400];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget || n < 10 {
        let sig = key
            .sign(&rng, &msg)
            .map_err(|_| anyhow!("p256 sign failed"))?;
        public
            .verify(&msg, sig.as_ref())
            .map_err(|_| anyhow!("p256 verify failed"))?;
        n += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok((secs * 1e6 / n as f64, n as f64 / secs))
}

fn sha256_file(path: &Path, budget: Duration) -> Result<(f64, u64)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget || n < 3 {
        std::hint::black_box(ring::digest::digest(&ring::digest::SHA256, &bytes));
        n += 1;
    }
    Ok((
        start.elapsed().as_secs_f64() * 1e6 / n as f64,
        bytes.len() as u64,
    ))
}

type Empty<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// A Workload API server whose only answer is an empty unary `FetchJWTSVID`.
#[derive(Debug)]
struct Echo;

#[tonic::async_trait]
impl SpiffeWorkloadApi for Echo {
    async fn fetch_jwtsvid(
        &self,
        _: Request<JwtsvidRequest>,
    ) -> Result<Response<JwtsvidResponse>, Status> {
        Ok(Response::new(JwtsvidResponse::default()))
    }
    type FetchJWTBundlesStream = Empty<JwtBundlesResponse>;
    async fn fetch_jwt_bundles(
        &self,
        _: Request<JwtBundlesRequest>,
    ) -> Result<Response<Self::FetchJWTBundlesStream>, Status> {
        Err(Status::unimplemented("floor"))
    }
    async fn validate_jwtsvid(
        &self,
        _: Request<ValidateJwtsvidRequest>,
    ) -> Result<Response<ValidateJwtsvidResponse>, Status> {
        Err(Status::unimplemented("floor"))
    }
    type FetchX509SVIDStream = Empty<X509svidResponse>;
    async fn fetch_x509svid(
        &self,
        _: Request<X509svidRequest>,
    ) -> Result<Response<Self::FetchX509SVIDStream>, Status> {
        Err(Status::unimplemented("floor"))
    }
    type FetchX509BundlesStream = Empty<X509BundlesResponse>;
    async fn fetch_x509_bundles(
        &self,
        _: Request<X509BundlesRequest>,
    ) -> Result<Response<Self::FetchX509BundlesStream>, Status> {
        Err(Status::unimplemented("floor"))
    }
}

async fn tonic_rtt(dir: &Path, budget: Duration) -> Result<(f64, f64)> {
    let sock: PathBuf = dir.join("floor.sock");
    let _ = std::fs::remove_file(&sock);
    let listener = tokio::net::UnixListener::bind(&sock)?;
    let incoming = tokio_stream_shim::incoming(listener);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        Server::builder()
            .add_service(SpiffeWorkloadApiServer::new(Echo))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stop_rx.await;
            }),
    );
    let _stop = CancelOnDrop(Some(stop_tx));
    let path = sock.clone();
    let channel = Endpoint::from_static("http://floor.sock")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let s = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(TokioIo::new(s))
            }
        }))
        .await?;
    let mut client = SpiffeWorkloadApiClient::new(channel);
    let mut lat = Vec::new();
    let start = Instant::now();
    while start.elapsed() < budget || lat.len() < 100 {
        let t = Instant::now();
        client.fetch_jwtsvid(JwtsvidRequest::default()).await?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    drop(_stop);
    let _ = server.await;
    let _ = std::fs::remove_file(&sock);
    Ok((
        percentile(&lat, 50.0).unwrap_or(0.0),
        percentile(&lat, 99.0).unwrap_or(0.0),
    ))
}

mod tokio_util_shim {
    /// Fires the shutdown signal when dropped, so an early return still stops the server.
    #[derive(Debug)]
    pub struct CancelOnDrop(pub Option<tokio::sync::oneshot::Sender<()>>);
    impl Drop for CancelOnDrop {
        fn drop(&mut self) {
            if let Some(tx) = self.0.take() {
                let _ = tx.send(());
            }
        }
    }
}

mod tokio_stream_shim {
    use futures::Stream;
    use tokio::net::{UnixListener, UnixStream};

    /// The listener's connections as the stream tonic's `serve_with_incoming` takes.
    pub fn incoming(l: UnixListener) -> impl Stream<Item = std::io::Result<UnixStream>> {
        futures::stream::unfold(l, |l| async move {
            let r = l.accept().await.map(|(s, _)| s);
            Some((r, l))
        })
    }
}
