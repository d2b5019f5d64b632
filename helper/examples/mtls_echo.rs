//! An mTLS echo service and client using `sworn_helper::tls`: no sidecar, SVIDs straight from
//! the Workload API, rotated in place.
//!
//! ```text
//! export SPIFFE_ENDPOINT_SOCKET=unix:///run/sworn/agent.sock
//! cargo run -p sworn-helper --example mtls_echo -- serve 127.0.0.1:8443 spiffe://example.org/client
//! cargo run -p sworn-helper --example mtls_echo -- connect 127.0.0.1:8443 spiffe://example.org/server hello
//! ```

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use rustls_pki_types::ServerName;
use spiffe::SpiffeId;
use sworn_helper::tls::{self, TlsOptions};
use sworn_helper::{Authorizer, Endpoint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, addr, peer, rest @ ..] = args.as_slice() else {
        bail!("usage: mtls_echo serve ADDR ALLOWED_ID | connect ADDR EXPECTED_ID MESSAGE");
    };
    let endpoint: Endpoint = std::env::var("SPIFFE_ENDPOINT_SOCKET")
        .context("SPIFFE_ENDPOINT_SOCKET is not set")?
        .parse()?;
    let shutdown = CancellationToken::new();
    // Follows the Workload API: every handshake uses the SVID and bundle current at that time.
    let (watch, _follower) = endpoint
        .follow(Duration::from_secs(30), shutdown.clone())
        .await?;
    let options = TlsOptions::new(Authorizer::ids([SpiffeId::new(peer)?])?);
    match mode.as_str() {
        "serve" => {
            let acceptor =
                tokio_rustls::TlsAcceptor::from(Arc::new(tls::server_config(watch, options)?));
            let listener = TcpListener::bind(addr.as_str()).await?;
            println!("listening on {}", listener.local_addr()?);
            loop {
                let (tcp, _) = listener.accept().await?;
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // Refused peers fail here with a TLS alert (and an audit line).
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let (mut r, mut w) = tokio::io::split(tls);
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                    // Sends close_notify, so the client sees a clean end of stream.
                    let _ = w.shutdown().await;
                });
            }
        }
        "connect" => {
            let connector =
                tokio_rustls::TlsConnector::from(Arc::new(tls::client_config(watch, options)?));
            let tcp = TcpStream::connect(addr.as_str()).await?;
            // The name is only SNI; the server is accepted by its SPIFFE ID.
            let mut tls = connector
                .connect(ServerName::try_from("sworn-peer")?, tcp)
                .await?;
            let message = rest.join(" ");
            tls.write_all(message.as_bytes()).await?;
            tls.shutdown().await?;
            let mut echoed = String::new();
            tls.read_to_string(&mut echoed).await?;
            println!("{echoed}");
            Ok(())
        }
        other => bail!("unknown mode {other:?}"),
    }
}
