//! Accepted Workload API connections: the caller captured at accept (sworn-caller), a
//! connection slot from [`Limits`] counted against the caller's [`Tenant`], and the HTTP/2
//! guard (sworn-h2guard) in front of h2, all released when the connection is dropped
//! (docs/architecture.md, "Workload API connections").

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use sworn_caller::{Caller, CallerInfo, CallerStream, CgroupRoots};
use sworn_h2guard::Guarded;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixListener;
use tonic::transport::server::Connected;
use tracing::debug;

use super::limits::{ConnectionPermit, Limits, Tenant};
use crate::telemetry::Metrics;

/// How connections are admitted and guarded.
#[derive(Debug, Clone)]
pub struct ConnSettings {
    /// Kubernetes mode: the cgroup roots pods live under, so a caller's tenant is its pod.
    pub pod_roots: Option<CgroupRoots>,
    /// The HTTP/2 guard's bounds and deadlines.
    pub guard: sworn_h2guard::Limits,
    /// Whether callers are captured with `SO_PEERPIDFD`.
    pub peer_pidfd: sworn_caller::PeerPidfd,
}

/// Whose share a caller's connections and streams count against: its pod in Kubernetes mode
/// (when it runs in one), otherwise its uid.
pub fn tenant_of(caller: &Caller, pod_roots: Option<&CgroupRoots>) -> Tenant {
    if let Some(roots) = pod_roots
        && let Ok(pod) = caller.pod_container(roots)
    {
        return Tenant::Pod(pod.pod_uid);
    }
    Tenant::Uid(caller.uid())
}

/// A connection within its limits.
#[derive(Debug)]
pub struct Conn {
    inner: Guarded<CallerStream>,
    _permit: ConnectionPermit,
}

impl Connected for Conn {
    type ConnectInfo = CallerInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.get_ref().info().clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Accepts on `listener`; connections over a limit are closed at once.
pub fn incoming(
    listener: UnixListener,
    limits: Arc<Limits>,
    settings: ConnSettings,
    metrics: Arc<Metrics>,
) -> impl Stream<Item = io::Result<Conn>> + Send + 'static {
    let on_fail: sworn_h2guard::OnFail = {
        let metrics = metrics.clone();
        Arc::new(move |why: &sworn_h2guard::GuardError| {
            debug!(reason = why.label(), error = %why, "workload api connection closed by the guard");
            metrics.connection_closed(why.label());
        })
    };
    sworn_caller::incoming_with(listener, settings.peer_pidfd).filter_map(move |accepted| {
        let (limits, settings, metrics, on_fail) = (
            limits.clone(),
            settings.clone(),
            metrics.clone(),
            on_fail.clone(),
        );
        async move {
            let stream = match accepted {
                Ok(stream) => stream,
                Err(e) => return Some(Err(e)),
            };
            let tenant = match stream.info().caller() {
                Ok(caller) => tenant_of(caller, settings.pod_roots.as_ref()),
                Err(_) => Tenant::Unknown,
            };
            match limits.connection(tenant) {
                Some(permit) => Some(Ok(Conn {
                    inner: Guarded::new(stream, settings.guard, Some(on_fail)),
                    _permit: permit,
                })),
                None => {
                    debug!("workload api connection limit reached; closing");
                    metrics.connection_closed("limit");
                    None
                }
            }
        }
    })
}
