//! The agent↔server connection as the kernel sees it (docs/architecture.md, "Protocols"):
//! both ends disable Nagle's algorithm, so a small gRPC frame is sent at once instead of
//! waiting for the peer's delayed ACK (about 40 ms per unary call).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use rustix::net::{SocketType, getpeername, getsockname, sockopt};
use rustix::process::{PidfdFlags, PidfdGetfdFlags, getpid, pidfd_getfd, pidfd_open};
use support::Env;

/// Which end of a TCP connection to `port` a socket of this process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The agent's: its peer is the server's port.
    Client,
    /// The server's: accepted on the port, with a peer.
    Server,
}

fn addr(a: rustix::net::SocketAddrAny) -> Option<SocketAddr> {
    SocketAddr::try_from(a).ok()
}

/// Every connected TCP socket of this process on `port`, with its `TCP_NODELAY`.
fn connections_on(port: u16) -> Vec<(End, bool)> {
    let me = pidfd_open(getpid(), PidfdFlags::empty()).unwrap();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
        let Ok(n) = entry.unwrap().file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // A duplicate of descriptor n, obtained without unsafe code.
        let Ok(fd): Result<OwnedFd, _> = pidfd_getfd(&me, n, PidfdGetfdFlags::empty()) else {
            continue;
        };
        if sockopt::socket_type(&fd) != Ok(SocketType::STREAM) {
            continue;
        }
        let (Some(local), Some(peer)) = (
            getsockname(&fd).ok().and_then(addr),
            getpeername(&fd).ok().flatten().and_then(addr),
        ) else {
            continue; // not TCP, or a listener
        };
        let end = if peer.port() == port {
            End::Client
        } else if local.port() == port {
            End::Server
        } else {
            continue;
        };
        found.push((end, sockopt::tcp_nodelay(&fd).unwrap()));
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_ends_of_the_agent_api_connection_send_small_frames_without_delay() {
    let env = Env::start().await;
    let agent = env.agent("a").await;
    let port = env.server.agent_api_addr.port();
    let conns = connections_on(port);
    for end in [End::Client, End::Server] {
        assert!(
            conns.iter().any(|(e, _)| *e == end),
            "no {end:?} end of an agent API connection among {conns:?}"
        );
    }
    for (end, nodelay) in &conns {
        assert!(nodelay, "TCP_NODELAY is off on the {end:?} end: {conns:?}");
    }
    agent.shutdown().await.unwrap();
}
