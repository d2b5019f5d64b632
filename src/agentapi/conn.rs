//! One agent API connection from accept to close (docs/architecture.md, "Agent API limits").
//!
//! - At most `max_connections` connections are open, handshaking or not: one more is closed
//!   as soon as it is accepted, before any TLS work.
//! - At most `max_handshakes` TLS handshakes run at once; the wait for a slot and the
//!   handshake together must finish within `handshake_timeout`.
//! - An established connection with no call in progress that sends nothing for
//!   `idle_timeout` is closed. A call in progress (an open Sync stream) holds a [`Busy`]
//!   guard, so an agent's quiet stream is never idle.
//!
//! The connection permit lives in [`AgentConn`], which hyper drops when the connection ends.
//! So does what the connection remembers of its agent between calls ([`AgentMemo`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tonic::transport::server::{Connected, TcpConnectInfo, TlsConnectInfo};

use super::limits::AgentApiLimits;
use super::memo::AgentMemo;

/// Why an accepted connection was closed before it carried a call.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// `max_connections` connections are open.
    #[error("connection cap reached")]
    Full,
    /// The handshake (with its wait for a slot) did not finish in time.
    #[error("TLS handshake timed out")]
    Timeout,
    /// rustls refused the handshake.
    #[error("TLS handshake refused: {0}")]
    Tls(#[from] io::Error),
}

/// The connection and handshake caps.
#[derive(Debug)]
pub struct Admission {
    connections: Arc<Semaphore>,
    handshakes: Semaphore,
    handshake_timeout: Duration,
    idle_timeout: Duration,
}

/// A connection admitted under the cap, not yet through TLS.
#[derive(Debug)]
pub struct Admitted(OwnedSemaphorePermit);

impl Admission {
    /// Caps from the `[agent_api]` section.
    pub fn new(limits: &AgentApiLimits) -> Self {
        Admission {
            connections: Arc::new(Semaphore::new(limits.max_connections)),
            handshakes: Semaphore::new(limits.max_handshakes),
            handshake_timeout: limits.handshake_timeout,
            idle_timeout: limits.idle_timeout,
        }
    }

    /// Takes a connection slot for a just-accepted socket, or refuses at once.
    pub fn admit(&self) -> Result<Admitted, Refused> {
        self.connections
            .clone()
            .try_acquire_owned()
            .map(Admitted)
            .map_err(|_| Refused::Full)
    }

    /// Runs the TLS handshake of an admitted socket within the handshake timeout.
    pub async fn handshake(
        &self,
        admitted: Admitted,
        tcp: TcpStream,
        acceptor: TlsAcceptor,
    ) -> Result<AgentConn, Refused> {
        let tls = tokio::time::timeout(self.handshake_timeout, async {
            // The semaphore is never closed, so acquiring fails only if it were.
            let _slot = self.handshakes.acquire().await.map_err(io::Error::other)?;
            acceptor.accept(tcp).await
        })
        .await
        .map_err(|_| Refused::Timeout)??;
        Ok(AgentConn {
            tls,
            _permit: admitted.0,
            activity: Arc::new(Activity::new()),
            agent: Arc::default(),
            idle_timeout: self.idle_timeout,
            idle: Box::pin(tokio::time::sleep(self.idle_timeout)),
        })
    }
}

/// What a connection's calls share with it: how many are in progress, and when the peer
/// last sent anything.
#[derive(Debug)]
pub struct Activity {
    busy: AtomicUsize,
    last: Mutex<Instant>,
}

impl Activity {
    fn new() -> Self {
        Activity {
            busy: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
        }
    }

    fn touch(&self) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    fn last(&self) -> Instant {
        *self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks a call in progress until the guard drops.
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }
}

/// A call in progress on a connection: while one lives, the connection is not idle.
#[derive(Debug)]
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a call sees of its connection (a request extension).
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The peer's address and certificates.
    pub tls: TlsConnectInfo<TcpConnectInfo>,
    /// The connection's activity, for [`Activity::busy`].
    pub activity: Arc<Activity>,
    /// The agent record its calls authenticated with.
    pub agent: Arc<AgentMemo>,
}

/// An established agent connection: TLS, its slot under the cap, and its idle timer.
#[derive(Debug)]
pub struct AgentConn {
    tls: TlsStream<TcpStream>,
    _permit: OwnedSemaphorePermit,
    activity: Arc<Activity>,
    agent: Arc<AgentMemo>,
    idle_timeout: Duration,
    idle: Pin<Box<Sleep>>,
}

impl AgentConn {
    /// Whether the connection has been idle for the idle timeout; arms the timer otherwise.
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            let due = if self.activity.busy.load(Ordering::Acquire) > 0 {
                Instant::now() + self.idle_timeout
            } else {
                self.activity.last() + self.idle_timeout
            };
            if self.idle.deadline() != due {
                self.idle.as_mut().reset(due);
            }
            if self.idle.as_mut().poll(cx).is_pending() {
                return false;
            }
            if self.activity.busy.load(Ordering::Acquire) == 0
                && Instant::now() >= self.activity.last() + self.idle_timeout
            {
                return true;
            }
        }
    }
}

impl Connected for AgentConn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        ConnInfo {
            tls: self.tls.connect_info(),
            activity: self.activity.clone(),
            agent: self.agent.clone(),
        }
    }
}

impl AsyncRead for AgentConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.tls).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.activity.touch();
                }
                Poll::Ready(r)
            }
            Poll::Pending if this.idle_expired(cx) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "agent connection idle",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for AgentConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tls).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tls).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tls).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tls).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tls.is_write_vectored()
    }
}

/// The connection info of a request on the agent API, if it came through [`AgentConn`].
pub fn info<T>(req: &tonic::Request<T>) -> Option<&ConnInfo> {
    req.extensions().get::<ConnInfo>()
}

/// Marks the call of `req` in progress on its connection, until the guard drops.
pub fn busy<T>(req: &tonic::Request<T>) -> Option<Busy> {
    info(req).map(|i| i.activity.busy())
}
