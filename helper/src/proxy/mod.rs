//! The SPIFFE-authorizing TLS proxy.
//!
//! - [`server`]: accept mTLS, authorize the client's SPIFFE ID, forward plaintext to a backend.
//! - [`client`]: accept plaintext on loopback, dial upstream with mTLS, authorize the server's
//!   SPIFFE ID instead of its hostname.
//!
//! Invariants: at most `max_connections` connections exist at once (the listener stops
//! accepting while full, so excess clients wait in the kernel backlog); a handshake that does
//! not finish within `handshake_timeout` is dropped; a rotation only changes the next
//! handshake; shutdown stops accepting at once and gives open connections a drain deadline.
//! Every connection task carries a span with the peer address, so the verifier's audit line
//! is attributed to it.

pub mod client;
pub mod server;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info_span, warn};

use crate::metrics::Metrics;

/// Connection bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once (default 1024).
    pub max_connections: usize,
    /// Time for the TLS handshake, and for the TCP connect to the backend or upstream
    /// (default 10 s).
    pub handshake_timeout: Duration,
    /// How long open connections may continue after shutdown starts (default 10 s).
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// Why an address was refused.
#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    /// Not `host:port`.
    #[error("expected host:port, got {0:?}")]
    Syntax(String),
}

/// A `host:port` to dial (DNS name or IP), resolved at each connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    host: String,
    port: u16,
}

impl HostPort {
    /// The host part, without brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    async fn connect(&self, timeout: Duration) -> std::io::Result<TcpStream> {
        let stream =
            tokio::time::timeout(timeout, TcpStream::connect((self.host.as_str(), self.port)))
                .await
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
                })??;
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

impl FromStr for HostPort {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || AddressError::Syntax(s.to_owned());
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        // IPv6 literals must be bracketed, as in URIs (RFC 3986 §3.2.2).
        let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(v6) if v6.parse::<std::net::Ipv6Addr>().is_ok() => v6,
            Some(_) => return Err(bad()),
            None if host.is_empty() || host.contains(':') => return Err(bad()),
            None => host,
        };
        Ok(HostPort {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Counts a connection as active for its lifetime.
struct ActiveGuard(Arc<Metrics>);

impl ActiveGuard {
    fn new(metrics: &Arc<Metrics>) -> Self {
        metrics.connections.inc();
        metrics.active_connections.inc();
        ActiveGuard(metrics.clone())
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active_connections.dec();
    }
}

/// Copies both ways until both sides are done; returns bytes (a→b, b→a).
async fn splice<A, B>(a: &mut A, b: &mut B) -> std::io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    tokio::io::copy_bidirectional(a, b).await
}

fn handshake_metric(metrics: &Metrics, result: &'static str) {
    metrics
        .handshakes
        .get_or_create(&crate::metrics::HandshakeLabels { result })
        .inc();
}

/// Accepts connections while fewer than `limits.max_connections` are open, running `handle`
/// for each in its own task (with a span naming the peer address), until `shutdown`; then
/// drains for `limits.drain_timeout` and cancels the token handed to the handlers.
async fn accept_loop<H, F>(
    listener: TcpListener,
    limits: Limits,
    shutdown: CancellationToken,
    handle: H,
) -> std::io::Result<()>
where
    H: Fn(TcpStream, CancellationToken) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let tracker = TaskTracker::new();
    let hard_stop = CancellationToken::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (tcp, peer_addr) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let task = handle(tcp, hard_stop.clone());
        tracker.spawn(
            async move {
                task.await;
                drop(permit);
            }
            .instrument(info_span!("connection", %peer_addr, peer_id = tracing::field::Empty)),
        );
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(limits.drain_timeout, tracker.wait())
        .await
        .is_err()
    {
        debug!(
            open = tracker.len(),
            "drain deadline passed; closing open connections"
        );
        hard_stop.cancel();
        tracker.wait().await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn host_port_parses_names_ipv4_and_bracketed_ipv6() {
        let a: HostPort = "backend.default.svc:8080".parse().unwrap();
        assert_eq!((a.host(), a.port()), ("backend.default.svc", 8080));
        let b: HostPort = "[::1]:443".parse().unwrap();
        assert_eq!((b.host(), b.to_string().as_str()), ("::1", "[::1]:443"));
        assert!("noport".parse::<HostPort>().is_err());
        assert!(":80".parse::<HostPort>().is_err());
        assert!("::1:80".parse::<HostPort>().is_err());
        assert!("h:99999".parse::<HostPort>().is_err());
    }
}
