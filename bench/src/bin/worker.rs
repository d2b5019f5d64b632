//! One benchmark workload: a process (normally under its own uid) that talks to one or two
//! Workload API sockets with the public `spiffe` client, driven by the runner over a line
//! protocol on stdin/stdout (see `sworn_bench::wire`).
//!
//! Every measured call is `FetchX509SVID` on an already connected client, the call a
//! workload makes when it (re)starts its SVID source. The process keeps one client per
//! socket, so latency measures the agent's attest + answer path, not the connect.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::StreamExt;
use spiffe::{WorkloadApiClient, X509Svid};
use sworn_bench::wire::{Command, Reply, leaf_tag, leaf_validity, now_ns};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

fn main() -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve())
}

async fn serve() -> Result<()> {
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Reply>();
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(r) = out_rx.recv().await {
            let mut line = serde_json::to_vec(&r).unwrap_or_default();
            line.push(b'\n');
            if stdout.write_all(&line).await.is_err() || stdout.flush().await.is_err() {
                break;
            }
        }
    });
    let mut clients: HashMap<String, WorkloadApiClient> = HashMap::new();
    let mut streams: HashMap<String, JoinHandle<()>> = HashMap::new();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let cmd: Command = serde_json::from_str(&line).context("bad command")?;
        let reply = match cmd {
            Command::Exit => break,
            Command::Connect { socket } => match WorkloadApiClient::connect_to(&socket).await {
                Ok(c) => {
                    clients.insert(socket, c);
                    Reply::Ok
                }
                Err(e) => Reply::Error {
                    message: format!("connect {socket}: {e}"),
                },
            },
            Command::Fetch { socket, count } => match clients.get(&socket) {
                None => not_connected(&socket),
                Some(c) => fetch_n(c, count).await,
            },
            Command::FetchFor { socket, millis } => match clients.get(&socket) {
                None => not_connected(&socket),
                Some(c) => fetch_for(c, Duration::from_millis(millis)).await,
            },
            Command::FetchUntilOk {
                socket,
                interval_ms,
                timeout_ms,
            } => fetch_until_ok(&mut clients, &socket, interval_ms, timeout_ms).await,
            Command::Stream { socket } => match clients.get(&socket) {
                None => not_connected(&socket),
                Some(c) => {
                    if let Some(old) = streams.remove(&socket) {
                        old.abort();
                    }
                    match open_stream(c, socket.clone(), out_tx.clone()).await {
                        Ok((tag, validity, task)) => {
                            streams.insert(socket, task);
                            Reply::Streaming { tag, validity }
                        }
                        Err(message) => Reply::Error { message },
                    }
                }
            },
            Command::CloseStreams => {
                for (_, t) in streams.drain() {
                    t.abort();
                }
                Reply::Ok
            }
        };
        if out_tx.send(reply).is_err() {
            break;
        }
    }
    for (_, t) in streams.drain() {
        t.abort();
    }
    drop(out_tx);
    let _ = writer.await;
    Ok(())
}

fn not_connected(socket: &str) -> Reply {
    Reply::Error {
        message: format!("not connected to {socket}"),
    }
}

async fn fetch_once(c: &WorkloadApiClient) -> Result<X509Svid, String> {
    c.fetch_x509_svid().await.map_err(|e| e.to_string())
}

async fn fetch_n(c: &WorkloadApiClient, count: u32) -> Reply {
    let mut lat_us = Vec::with_capacity(count as usize);
    let mut errors = 0u32;
    let mut first_error = None;
    for _ in 0..count {
        let t = Instant::now();
        match fetch_once(c).await {
            Ok(_) => lat_us.push(t.elapsed().as_micros() as u64),
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    Reply::Latencies {
        lat_us,
        at_ns: Vec::new(),
        errors,
        first_error,
    }
}

async fn fetch_for(c: &WorkloadApiClient, d: Duration) -> Reply {
    let (mut lat_us, mut at_ns) = (Vec::new(), Vec::new());
    let mut errors = 0u32;
    let mut first_error = None;
    let end = Instant::now() + d;
    while Instant::now() < end {
        let started = now_ns();
        let t = Instant::now();
        match fetch_once(c).await {
            Ok(_) => {
                lat_us.push(t.elapsed().as_micros() as u64);
                at_ns.push(started);
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(e);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    Reply::Latencies {
        lat_us,
        at_ns,
        errors,
        first_error,
    }
}

/// Connects first if needed (the agent may not be up yet), then fetches until an SVID comes.
async fn fetch_until_ok(
    clients: &mut HashMap<String, WorkloadApiClient>,
    socket: &str,
    interval_ms: u64,
    timeout_ms: u64,
) -> Reply {
    let deadline = Instant::now() + Duration::from_millis(timeout_ms);
    let mut attempts = 0u32;
    let mut last_error = String::new();
    loop {
        attempts += 1;
        if !clients.contains_key(socket) {
            match WorkloadApiClient::connect_to(socket).await {
                Ok(c) => {
                    clients.insert(socket.to_owned(), c);
                }
                Err(e) => last_error = format!("connect: {e}"),
            }
        }
        if let Some(c) = clients.get(socket) {
            match fetch_once(c).await {
                Ok(svid) => {
                    return Reply::Fetched {
                        at_ns: now_ns(),
                        attempts,
                        tag: leaf_tag(svid.leaf().as_bytes()),
                    };
                }
                Err(e) => last_error = e,
            }
        }
        if Instant::now() >= deadline {
            return Reply::Error {
                message: format!("no SVID after {attempts} attempts: {last_error}"),
            };
        }
        tokio::time::sleep(Duration::from_millis(interval_ms)).await;
    }
}

/// Opens a FetchX509SVID stream, waits for its first SVID, then reports every later SVID as
/// an `Update` until the stream ends.
async fn open_stream(
    c: &WorkloadApiClient,
    socket: String,
    out: mpsc::UnboundedSender<Reply>,
) -> Result<(u64, Option<(u64, u64)>, JoinHandle<()>), String> {
    let mut stream = c.stream_x509_svids().await.map_err(|e| e.to_string())?;
    let (first, validity) = match stream.next().await {
        Some(Ok(svid)) => (
            leaf_tag(svid.leaf().as_bytes()),
            leaf_validity(svid.leaf().as_bytes()),
        ),
        Some(Err(e)) => return Err(e.to_string()),
        None => return Err("stream ended before the first SVID".into()),
    };
    let task = tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            let reply = match item {
                Ok(svid) => Reply::Update {
                    socket: socket.clone(),
                    at_ns: now_ns(),
                    tag: leaf_tag(svid.leaf().as_bytes()),
                },
                Err(e) => Reply::StreamEnded {
                    socket: socket.clone(),
                    message: e.to_string(),
                },
            };
            if out.send(reply).is_err() {
                return;
            }
        }
    });
    Ok((first, validity, task))
}
