//! Accepted Workload API connections: the caller captured at accept (sworn-caller) plus a
//! connection slot from [`Limits`], released when the connection is dropped.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use sworn_caller::{CallerInfo, CallerStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixListener;
use tonic::transport::server::Connected;
use tracing::warn;

use super::h2_authority::AuthorityFix;
use super::limits::{ConnectionPermit, Limits};

/// A connection within its limits.
#[derive(Debug)]
pub struct Conn {
    /// gRPC C-core clients send an authority h2 refuses; see [`AuthorityFix`].
    inner: AuthorityFix<CallerStream>,
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
    peer_pidfd: sworn_caller::PeerPidfd,
) -> impl Stream<Item = io::Result<Conn>> + Send + 'static {
    sworn_caller::incoming_with(listener, peer_pidfd).filter_map(move |accepted| {
        let limits = limits.clone();
        async move {
            match accepted {
                Ok(stream) => {
                    let uid = stream.info().caller().ok().map(|c| c.uid());
                    match limits.connection(uid) {
                        Some(permit) => Some(Ok(Conn {
                            inner: AuthorityFix::new(stream),
                            _permit: permit,
                        })),
                        None => {
                            warn!(?uid, "workload api connection limit reached; closing");
                            None
                        }
                    }
                }
                Err(e) => Some(Err(e)),
            }
        }
    })
}
