//! The SPIFFE Workload API on a unix socket (docs/architecture.md, "Workload attestation").
//!
//! Order of checks for every call: the security header (`InvalidArgument`), the agent's
//! readiness (`Unavailable`), the caller captured at accept (`PermissionDenied`), the
//! per-caller stream limits (`ResourceExhausted`), then unix attestation. Streams send the
//! complete state at once and again on every change that concerns their caller: its SVIDs in
//! the cache, or its entitlement or the bundle in the Sync state; they end with
//! `PermissionDenied` when the caller's last identity goes away. A stream is a plain
//! `Stream` polled by tonic, so a client that disconnects drops it, with its permit, and
//! nothing is left behind. Inbound messages are capped at 4 KiB (every request is tiny).

mod attest;
mod conn;
mod entitlements;
mod header;
mod inspections;
mod limits;
mod pidfd;
mod refusal;
mod state;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use spiffe::TrustDomain;
use sworn_proto::workload::spiffe_workload_api_server::{
    SpiffeWorkloadApi, SpiffeWorkloadApiServer,
};
use sworn_proto::workload::{
    JwtBundlesRequest, JwtBundlesResponse, JwtsvidRequest, JwtsvidResponse, ValidateJwtsvidRequest,
    ValidateJwtsvidResponse, X509BundlesRequest, X509BundlesResponse, X509svidRequest,
    X509svidResponse,
};
use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::info;

use crate::cache::SvidCache;
use crate::k8s::PodWorkloads;
use crate::sync::SyncState;
use crate::telemetry::Metrics;

pub use header::SECURITY_HEADER;
pub use limits::{
    DEFAULT_MAX_CONNECTIONS, MAX_CONNECTIONS_PER_TENANT, MAX_STREAMS_PER_PID,
    MAX_STREAMS_PER_TENANT,
};

use attest::{Attested, Hash};
use conn::ConnSettings;
use entitlements::Entitlements;
use limits::{Limits, StreamPermit};

/// Largest inbound message: requests are empty or a few strings.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024;
/// Concurrent streams on one connection.
const MAX_STREAMS_PER_CONNECTION: u32 = 16;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// What every handler needs.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    pub sync: watch::Receiver<Option<Arc<SyncState>>>,
    pub cache: Arc<SvidCache>,
    pub metrics: Arc<Metrics>,
    pub trust_domain: TrustDomain,
    pub shutdown: CancellationToken,
    limits: Arc<Limits>,
    /// The HTTP/2 guard's bounds and deadlines for every connection.
    guard: sworn_h2guard::Limits,
    inspections: Arc<inspections::Inspections>,
    /// What the current Sync state asks of callers, derived once per state.
    entitlements: Arc<Entitlements>,
    /// Kubernetes mode: the pod watch and attestation settings.
    k8s: Option<Arc<PodWorkloads>>,
    /// Whether callers are captured with `SO_PEERPIDFD` (see `pidfd`).
    peer_pidfd: sworn_caller::PeerPidfd,
}

impl Shared {
    pub fn new(
        sync: watch::Receiver<Option<Arc<SyncState>>>,
        cache: Arc<SvidCache>,
        metrics: Arc<Metrics>,
        trust_domain: TrustDomain,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            sync,
            cache,
            metrics,
            trust_domain,
            shutdown,
            limits: Arc::new(Limits::default()),
            guard: sworn_h2guard::Limits::default(),
            inspections: Arc::new(inspections::Inspections::new(
                sworn_caller::DigestCache::default(),
            )),
            entitlements: Arc::default(),
            k8s: None,
            peer_pidfd: sworn_caller::PeerPidfd::Use,
        }
    }

    /// Probes `SO_PEERPIDFD` (logging once if callers go without it); `ignore` is the
    /// `danger_ignore_peer_pidfd` test hook.
    pub fn with_peer_pidfd_probe(mut self, ignore: bool) -> Self {
        self.peer_pidfd = pidfd::decide(ignore);
        self
    }

    /// Unix mode: hash executables under `limits` (config key `max_exe_hash_bytes`).
    pub fn with_exe_limits(mut self, limits: sworn_caller::ExeLimits) -> Self {
        let digests =
            sworn_caller::DigestCache::new(limits, sworn_caller::DEFAULT_DIGEST_CACHE_ENTRIES);
        self.inspections = Arc::new(inspections::Inspections::new(digests));
        self
    }

    /// Kubernetes mode: callers are pods, attested by W1–W3 against `pods`.
    pub fn with_k8s(mut self, pods: Arc<PodWorkloads>) -> Self {
        self.k8s = Some(pods);
        self
    }

    /// Connection bounds: at most `max_connections` in total, and the guard's `idle_after`
    /// and `first_headers_within` (keys `max_connections`, `workload_api_idle_timeout`,
    /// `workload_api_request_timeout`).
    pub fn with_connections(
        mut self,
        max_connections: usize,
        guard: sworn_h2guard::Limits,
    ) -> Self {
        self.limits = Arc::new(Limits::new(max_connections));
        self.guard = guard;
        self
    }

    /// Whether unix callers are hashed now: only while some synced entry has a
    /// `unix:sha256` selector.
    fn hash(&self) -> Hash {
        let state = self.sync.borrow().clone();
        match state {
            Some(state) if self.entitlements.of(&state).needs_sha256 => Hash::Needed,
            _ => Hash::Skipped,
        }
    }

    /// What a Sync state means for `who`'s stream: its entries and the bundle.
    fn view(&self, who: &Attested) -> Option<View> {
        let state = self.sync.borrow().clone()?;
        let derived = self.entitlements.of(&state);
        let entitled = match &who.k8s {
            Some(facts) => crate::k8s::svids::entitled_indexed(facts, &state, derived.index()),
            None => who.entitled(&derived),
        };
        Some(View {
            entitled,
            bundle: state.bundle.clone(),
        })
    }

    /// Whether [`Shared::reinspected`] would inspect `who` again.
    fn needs_reinspection(&self, who: &Attested) -> bool {
        self.k8s.is_none() && who.hash == Hash::Skipped && self.hash() == Hash::Needed
    }

    /// A unix caller attested without its executable's digest, inspected again with it
    /// once some entry needs it (so an open stream still gets a `unix:sha256` entry added
    /// later); `None` when nothing changed. A caller that can no longer be inspected has no
    /// identity.
    async fn reinspected(&self, who: &Attested) -> Result<Option<Attested>, Status> {
        if !self.needs_reinspection(who) {
            return Ok(None);
        }
        let caller = who.caller().clone();
        match attest::attest(caller, &self.inspections, &self.metrics, Hash::Needed).await {
            Ok(fresh) => Ok(Some(fresh)),
            Err(e) => {
                info!(target: "sworn::audit", factor = %e.factor(), error = %e, uid = who.uid(), pid = who.pid(), "caller refused on re-inspection");
                Err(refusal::no_identity())
            }
        }
    }

    /// Kubernetes mode: the cgroup roots a caller's pod is found under.
    fn pod_roots(&self) -> Option<&sworn_caller::CgroupRoots> {
        self.k8s.as_ref().map(|k| &k.config().cgroup_roots)
    }

    /// Header, readiness, caller, limits, attestation — in that order.
    async fn admit<T>(
        &self,
        method: &'static str,
        request: &Request<T>,
    ) -> Result<(Attested, StreamPermit), Status> {
        self.metrics.request(method);
        let deny = |reason: &'static str, status: Status| {
            self.metrics.deny(method, reason);
            status
        };
        header::check(request.metadata()).map_err(|s| deny("header", s))?;
        // Attested and synced at least once. Afterwards valid cached SVIDs keep being served
        // even if the agent SVID lapses or the server refuses it (docs/architecture.md, "Outcomes").
        if self.sync.borrow().is_none() {
            return Err(deny(
                "not_ready",
                Status::unavailable("the agent is not attested yet"),
            ));
        }
        let caller = attest::caller_of(request).map_err(|e| {
            info!(target: "sworn::audit", method, factor = %e.factor(), error = %e, "caller refused");
            deny("caller", refusal::no_identity())
        })?;
        let permit = self
            .limits
            .stream(conn::tenant_of(&caller, self.pod_roots()), caller.pid())
            .ok_or_else(|| {
                deny(
                    "limit",
                    Status::resource_exhausted("too many concurrent streams for this caller"),
                )
            })?;
        // Inspection turns are taken inside: per uid, for the unix inspection only, so a
        // pod waiting for the watch or a uid hashing a huge binary holds up nobody else.
        let attested = match &self.k8s {
            Some(k8s) => crate::k8s::workload::attest(k8s.config(), k8s.index(), caller.clone())
                .await
                .map(|facts| Attested::kubernetes(caller, facts))
                .map_err(|e| {
                    info!(target: "sworn::audit", method, factor = %e.factor(), error = %e, "kubernetes caller refused");
                    deny("caller", refusal::no_identity())
                }),
            None => {
                let (uid, pid) = (caller.uid(), caller.pid());
                attest::attest(caller, &self.inspections, &self.metrics, self.hash())
                    .await
                    .map_err(|e| {
                        info!(target: "sworn::audit", method, factor = %e.factor(), error = %e, uid, pid, "caller refused");
                        deny("caller", refusal::no_identity())
                    })
            }
        };
        let attested = attested?;
        Ok((attested, permit))
    }
}

/// What a Sync state means for one stream; a Sync message that leaves it equal wakes no
/// stream.
#[derive(Debug, PartialEq, Eq)]
struct View {
    entitled: Vec<sworn_identity::Grant>,
    bundle: Vec<Vec<u8>>,
}

/// The tonic service.
#[derive(Debug)]
struct WorkloadApi {
    shared: Shared,
}

/// Follows changes and yields each new complete state for `who`; ends after an error.
///
/// A stream wakes to recompute only for its own caller: a change of its scope's SVIDs in
/// the cache, or a Sync state that changes its entitlement or the bundle (or that needs
/// the caller inspected again, see [`Shared::reinspected`]). Other callers' changes and
/// Sync messages that change nothing for it cost it no recomputation
/// (`sworn_agent_workload_api_stream_wakeups_total`).
fn follow<T, F, Fut>(
    shared: Shared,
    permit: StreamPermit,
    who: Attested,
    first: T,
    next: F,
) -> BoxStream<T>
where
    T: Clone + PartialEq + Send + 'static,
    F: Fn(Shared, Arc<Attested>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, Status>> + Send,
{
    Box::pin(async_stream::stream! {
        let _permit = permit;
        let mut sync = shared.sync.clone();
        sync.borrow_and_update();
        let mut who = Arc::new(who);
        // Changes of this caller's SVIDs: new, rotated, expired, dropped (a pod's deletion).
        let mut cache = shared.cache.watch(&who.scope());
        let mut view = shared.view(&who);
        let mut last = first.clone();
        yield Ok(first);
        loop {
            tokio::select! {
                () = shared.shutdown.cancelled() => {
                    yield Err(Status::unavailable("the agent is shutting down"));
                    break;
                }
                changed = sync.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let now = shared.view(&who);
                    if now == view && !shared.needs_reinspection(&who) {
                        continue;
                    }
                    view = now;
                }
                () = cache.changed() => {}
            }
            shared.metrics.stream_wakeups.inc();
            // Changes from here on (this recomputation's own mints included) wake it again.
            cache.seen();
            match shared.reinspected(&who).await {
                Ok(Some(fresh)) => {
                    who = Arc::new(fresh);
                    cache = shared.cache.watch(&who.scope());
                    view = shared.view(&who);
                }
                Ok(None) => {}
                Err(status) => {
                    yield Err(status);
                    break;
                }
            }
            match next(shared.clone(), who.clone()).await {
                Ok(msg) if msg == last => {}
                Ok(msg) => {
                    last = msg.clone();
                    yield Ok(msg);
                }
                Err(status) => {
                    yield Err(status);
                    break;
                }
            }
        }
    })
}

#[tonic::async_trait]
impl SpiffeWorkloadApi for WorkloadApi {
    type FetchX509SVIDStream = BoxStream<X509svidResponse>;
    type FetchX509BundlesStream = BoxStream<X509BundlesResponse>;
    type FetchJWTBundlesStream = BoxStream<JwtBundlesResponse>;

    async fn fetch_x509svid(
        &self,
        request: Request<X509svidRequest>,
    ) -> Result<Response<Self::FetchX509SVIDStream>, Status> {
        let (who, permit) = self.shared.admit("fetch_x509_svid", &request).await?;
        let first = self.shared.x509_svids(&who).await.inspect_err(|_| {
            self.shared.metrics.deny("fetch_x509_svid", "no_identity");
        })?;
        let stream = follow(
            self.shared.clone(),
            permit,
            who,
            first,
            |shared, who| async move { shared.x509_svids(&who).await },
        );
        Ok(Response::new(stream))
    }

    async fn fetch_x509_bundles(
        &self,
        request: Request<X509BundlesRequest>,
    ) -> Result<Response<Self::FetchX509BundlesStream>, Status> {
        let (who, permit) = self.shared.admit("fetch_x509_bundles", &request).await?;
        let first = self.shared.x509_bundles(&who).inspect_err(|_| {
            self.shared
                .metrics
                .deny("fetch_x509_bundles", "no_identity");
        })?;
        let stream = follow(
            self.shared.clone(),
            permit,
            who,
            first,
            |shared, who| async move { shared.x509_bundles(&who) },
        );
        Ok(Response::new(stream))
    }

    async fn fetch_jwtsvid(
        &self,
        request: Request<JwtsvidRequest>,
    ) -> Result<Response<JwtsvidResponse>, Status> {
        header::check(request.metadata())?;
        Err(jwt_unimplemented())
    }

    async fn fetch_jwt_bundles(
        &self,
        request: Request<JwtBundlesRequest>,
    ) -> Result<Response<Self::FetchJWTBundlesStream>, Status> {
        header::check(request.metadata())?;
        Err(jwt_unimplemented())
    }

    async fn validate_jwtsvid(
        &self,
        request: Request<ValidateJwtsvidRequest>,
    ) -> Result<Response<ValidateJwtsvidResponse>, Status> {
        header::check(request.metadata())?;
        Err(jwt_unimplemented())
    }
}

fn jwt_unimplemented() -> Status {
    Status::unimplemented("JWT-SVIDs are not supported by this agent")
}

/// Serves the Workload API on `listener` until `shared.shutdown`.
pub(crate) async fn serve(
    listener: UnixListener,
    shared: Shared,
) -> Result<(), tonic::transport::Error> {
    let shutdown = shared.shutdown.clone();
    let limits = shared.limits.clone();
    let metrics = shared.metrics.clone();
    let settings = ConnSettings {
        pod_roots: shared.pod_roots().cloned(),
        guard: shared.guard.clone(),
        peer_pidfd: shared.peer_pidfd,
    };
    let service = SpiffeWorkloadApiServer::new(WorkloadApi { shared })
        .max_decoding_message_size(MAX_REQUEST_BYTES);
    tonic::transport::Server::builder()
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .http2_max_header_list_size(16 * 1024)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .add_service(service)
        .serve_with_incoming_shutdown(
            conn::incoming(listener, limits, settings, metrics),
            shutdown.cancelled_owned(),
        )
        .await
}
