//! tonic served on `incoming`: handlers see the caller captured at accept, and a peer that
//! is gone before capture yields a refusal, not a dead accept loop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::pin::Pin;

use futures::{Stream, StreamExt};
use sworn_caller::{CallerError, CallerInfo, incoming};
use sworn_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use sworn_proto::workload::spiffe_workload_api_server::{
    SpiffeWorkloadApi, SpiffeWorkloadApiServer,
};
use sworn_proto::workload::{
    JwtBundlesRequest, JwtBundlesResponse, JwtsvidRequest, JwtsvidResponse, ValidateJwtsvidRequest,
    ValidateJwtsvidResponse, X509BundlesRequest, X509BundlesResponse, X509svidRequest,
    X509svidResponse,
};
use tokio::net::{UnixListener, UnixStream};
use tonic::{Request, Response, Status};

type Replies<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Answers every call with `PermissionDenied` naming the caller it was given.
struct Probe;

fn describe<T>(request: &Request<T>) -> Status {
    match CallerInfo::from_request(request).map(CallerInfo::caller) {
        Some(Ok(caller)) => {
            Status::permission_denied(format!("pid={} uid={}", caller.pid(), caller.uid()))
        }
        Some(Err(error)) => Status::permission_denied(format!("refused: {error}")),
        None => Status::internal("no CallerInfo on the request"),
    }
}

#[tonic::async_trait]
impl SpiffeWorkloadApi for Probe {
    async fn fetch_jwtsvid(
        &self,
        r: Request<JwtsvidRequest>,
    ) -> Result<Response<JwtsvidResponse>, Status> {
        Err(describe(&r))
    }
    type FetchJWTBundlesStream = Replies<JwtBundlesResponse>;
    async fn fetch_jwt_bundles(
        &self,
        r: Request<JwtBundlesRequest>,
    ) -> Result<Response<Self::FetchJWTBundlesStream>, Status> {
        Err(describe(&r))
    }
    async fn validate_jwtsvid(
        &self,
        r: Request<ValidateJwtsvidRequest>,
    ) -> Result<Response<ValidateJwtsvidResponse>, Status> {
        Err(describe(&r))
    }
    type FetchX509SVIDStream = Replies<X509svidResponse>;
    async fn fetch_x509svid(
        &self,
        r: Request<X509svidRequest>,
    ) -> Result<Response<Self::FetchX509SVIDStream>, Status> {
        Err(describe(&r))
    }
    type FetchX509BundlesStream = Replies<X509BundlesResponse>;
    async fn fetch_x509_bundles(
        &self,
        r: Request<X509BundlesRequest>,
    ) -> Result<Response<Self::FetchX509BundlesStream>, Status> {
        Err(describe(&r))
    }
}

#[tokio::test]
async fn tonic_handlers_see_the_caller_captured_at_accept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(SpiffeWorkloadApiServer::new(Probe))
            .serve_with_incoming_shutdown(incoming(listener), async {
                let _ = stopped.await;
            }),
    );

    let channel = tonic::transport::Endpoint::from_static("http://workload.invalid")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    UnixStream::connect(path).await?,
                ))
            }
        }))
        .await
        .unwrap();
    let mut client = SpiffeWorkloadApiClient::new(channel);
    let status = client
        .fetch_x509_bundles(X509BundlesRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    let expected = format!(
        "pid={} uid={}",
        std::process::id(),
        rustix::process::geteuid().as_raw()
    );
    assert_eq!(status.message(), expected);

    drop(client);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_peer_gone_before_capture_is_refused_and_accepting_continues() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");
    let mut accepted = Box::pin(incoming(UnixListener::bind(&path).unwrap()));

    let mut gone = common::connect(&path, common::Mode::Exit);
    assert!(gone.child.wait().unwrap().success());
    let conn = accepted.next().await.unwrap().unwrap();
    let err = conn.info().caller().unwrap_err();
    assert!(
        matches!(err, CallerError::Gone { .. } | CallerError::Exited { .. }),
        "{err:?}"
    );

    let alive = common::connect(&path, common::Mode::Exec);
    let conn = accepted.next().await.unwrap().unwrap();
    assert_eq!(conn.info().caller().unwrap().pid(), alive.pid());
}
