//! Serving tonic on Workload API connections that carry their [`Caller`] (docs/architecture.md, "Protocols").
//!
//! [`incoming`] accepts on a `UnixListener` and captures each peer at once, so the accept
//! time of the PID-reuse guard is the real accept time. A connection whose capture failed
//! (the peer already exited, its pid is not visible, …) is still handed to tonic: its
//! [`CallerInfo`] holds the error, so the handler can answer `PermissionDenied` and audit the
//! reason instead of the client seeing a dropped connection. Capture never fails the stream,
//! so no local process can stop the accept loop.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tonic::transport::server::Connected;

use crate::error::CallerError;
use crate::peer::{Caller, PeerPidfd};

/// Pause after an accept error caused by resource exhaustion, so a full fd table does not
/// turn the accept loop into a busy loop.
const EXHAUSTED_BACKOFF: Duration = Duration::from_millis(100);

/// The outcome of capturing a connection's peer, available to every request on it as a
/// request extension (`request.extensions().get::<CallerInfo>()`).
#[derive(Debug, Clone)]
pub struct CallerInfo(Result<Arc<Caller>, Arc<CallerError>>);

impl CallerInfo {
    /// The captured caller, or why capture failed (which refuses every request).
    pub fn caller(&self) -> Result<&Arc<Caller>, &CallerError> {
        self.0.as_ref().map_err(|e| e.as_ref())
    }

    /// The connection's `CallerInfo`, if the request arrived over a [`CallerStream`].
    pub fn from_request<T>(request: &tonic::Request<T>) -> Option<&CallerInfo> {
        request.extensions().get::<CallerInfo>()
    }
}

/// An accepted Workload API connection and its captured caller.
#[derive(Debug)]
pub struct CallerStream {
    io: UnixStream,
    info: CallerInfo,
}

impl CallerStream {
    /// Captures the peer of a just-accepted stream (see [`Caller::capture`]).
    pub fn new(io: UnixStream) -> Self {
        Self::with(io, PeerPidfd::Use)
    }

    /// [`CallerStream::new`] with the `SO_PEERPIDFD` choice of [`Caller::capture_with`].
    pub fn with(io: UnixStream, peer_pidfd: PeerPidfd) -> Self {
        let info = match Caller::capture_with(&io, peer_pidfd) {
            Ok(caller) => CallerInfo(Ok(Arc::new(caller))),
            Err(error) => {
                tracing::debug!(%error, "workload api peer capture failed");
                CallerInfo(Err(Arc::new(error)))
            }
        };
        Self { io, info }
    }

    /// The capture outcome for this connection.
    pub fn info(&self) -> &CallerInfo {
        &self.info
    }
}

impl Connected for CallerStream {
    type ConnectInfo = CallerInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for CallerStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for CallerStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Accepts connections on `listener`, capturing each peer at accept time. Feed it to
/// `tonic::transport::Server::serve_with_incoming_shutdown`. Accept errors are yielded (tonic
/// logs and skips them); after fd or memory exhaustion the stream pauses briefly first.
pub fn incoming(
    listener: UnixListener,
) -> impl Stream<Item = io::Result<CallerStream>> + Send + 'static {
    incoming_with(listener, PeerPidfd::Use)
}

/// [`incoming`] with the `SO_PEERPIDFD` choice of [`Caller::capture_with`].
pub fn incoming_with(
    listener: UnixListener,
    peer_pidfd: PeerPidfd,
) -> impl Stream<Item = io::Result<CallerStream>> + Send + 'static {
    futures::stream::unfold(listener, move |listener| async move {
        let item = match listener.accept().await {
            Ok((io, _addr)) => Ok(CallerStream::with(io, peer_pidfd)),
            Err(error) => {
                if is_exhaustion(&error) {
                    tracing::warn!(%error, "workload api accept failed; backing off");
                    tokio::time::sleep(EXHAUSTED_BACKOFF).await;
                }
                Err(error)
            }
        };
        Some((item, listener))
    })
}

fn is_exhaustion(error: &io::Error) -> bool {
    use rustix::io::Errno;
    [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM]
        .iter()
        .any(|e| error.raw_os_error() == Some(e.raw_os_error()))
}
