//! The two systems under test, started with equivalent settings (issue 9 §1): SQLite
//! datastore, P-256 keys, X509-SVID TTL 1 h, join-token node attestation, unix workload
//! attestation, one server and one agent on loopback.
//!
//! Both sides are driven through the same small surface ([`Peer`]) so a scenario never knows
//! which system it measures. Entries are scoped to one agent (SPIRE: `parentID`; sworn:
//! `node`); "fake node" entries are scoped to agents that never connect, to give the server
//! a large datastore without changing what this agent syncs.

mod spire;
mod sworn;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;

pub use spire::Spire;
pub use sworn::Sworn;

/// The trust domain both systems serve.
pub const TRUST_DOMAIN: &str = "bench.test";

/// Which system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// This project.
    Sworn,
    /// The peer, SPIRE.
    Spire,
}

impl Kind {
    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Sworn => "sworn",
            Kind::Spire => "spire",
        }
    }
}

/// Who an entry is for.
#[derive(Debug, Clone, Copy)]
pub struct EntrySpec {
    /// The workload's uid (selector `unix:uid:<uid>`, ID `spiffe://bench.test/w/<uid>`).
    pub uid: u32,
    /// X509-SVID TTL; `None` = the server default (1 h).
    pub ttl_seconds: Option<u32>,
    /// `None`: this agent; `Some(k)`: a fake agent `k` that never connects.
    pub fake_node: Option<u32>,
}

impl EntrySpec {
    /// An entry for `uid` on this agent with the default TTL.
    pub fn local(uid: u32) -> Self {
        Self {
            uid,
            ttl_seconds: None,
            fake_node: None,
        }
    }

    /// The SPIFFE ID it names.
    pub fn spiffe_id(&self) -> String {
        match self.fake_node {
            None => format!("spiffe://{TRUST_DOMAIN}/w/{}", self.uid),
            Some(k) => format!("spiffe://{TRUST_DOMAIN}/f/{k}/{}", self.uid),
        }
    }
}

/// Paths of the binaries of both systems.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `sworn-server`.
    pub sworn_server: PathBuf,
    /// `sworn-agent`.
    pub sworn_agent: PathBuf,
    /// `spire-server`, if built.
    pub spire_server: Option<PathBuf>,
    /// `spire-agent`, if built.
    pub spire_agent: Option<PathBuf>,
}

/// A running system: server + agent.
#[derive(Debug)]
pub enum Peer {
    /// sworn.
    Sworn(Box<Sworn>),
    /// SPIRE.
    Spire(Box<Spire>),
}

impl Peer {
    /// Starts a fresh server and agent of `kind` in `dir` and waits until the agent is attested.
    pub async fn start(kind: Kind, bins: &Binaries, dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(match kind {
            Kind::Sworn => Peer::Sworn(Box::new(Sworn::start(bins, dir).await?)),
            Kind::Spire => Peer::Spire(Box::new(Spire::start(bins, dir).await?)),
        })
    }

    /// Which system.
    pub fn kind(&self) -> Kind {
        match self {
            Peer::Sworn(_) => Kind::Sworn,
            Peer::Spire(_) => Kind::Spire,
        }
    }

    /// The Workload API endpoint, `unix:///abs/path`.
    pub fn endpoint(&self) -> String {
        let p = match self {
            Peer::Sworn(s) => s.socket(),
            Peer::Spire(s) => s.socket(),
        };
        format!("unix://{}", p.display())
    }

    /// Server pid.
    pub fn server_pid(&self) -> Option<u32> {
        match self {
            Peer::Sworn(s) => s.server.id(),
            Peer::Spire(s) => s.server.id(),
        }
    }

    /// Agent pid.
    pub fn agent_pid(&self) -> Option<u32> {
        match self {
            Peer::Sworn(s) => s.agent.as_ref().and_then(Child::id),
            Peer::Spire(s) => s.agent.as_ref().and_then(Child::id),
        }
    }

    /// Creates entries and returns once the server has stored all of them.
    pub async fn create_entries(&mut self, specs: &[EntrySpec]) -> Result<()> {
        match self {
            Peer::Sworn(s) => s.create_entries(specs).await,
            Peer::Spire(s) => s.create_entries(specs).await,
        }
    }

    /// Stops the agent (SIGKILL); its data directory keeps its node identity.
    pub async fn stop_agent(&mut self) -> Result<()> {
        match self {
            Peer::Sworn(s) => kill(&mut s.agent).await,
            Peer::Spire(s) => kill(&mut s.agent).await,
        }
    }

    /// Stops the server (SIGKILL); its datastore and keys stay.
    pub async fn stop_server(&mut self) -> Result<()> {
        match self {
            Peer::Sworn(s) => kill_child(&mut s.server).await,
            Peer::Spire(s) => kill_child(&mut s.server).await,
        }
    }

    /// Restarts the server and the agent (which resumes with its stored identity), without
    /// waiting for either; returns the instant the server was spawned.
    pub async fn restart(&mut self) -> Result<Instant> {
        match self {
            Peer::Sworn(s) => s.restart().await,
            Peer::Spire(s) => s.restart().await,
        }
    }

    /// Stops everything.
    pub async fn shutdown(mut self) {
        let _ = self.stop_agent().await;
        let _ = self.stop_server().await;
    }
}

async fn kill(c: &mut Option<Child>) -> Result<()> {
    if let Some(mut c) = c.take() {
        kill_child(&mut c).await?;
    }
    Ok(())
}

async fn kill_child(c: &mut Child) -> Result<()> {
    let _ = c.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(10), c.wait()).await;
    Ok(())
}

/// A free loopback TCP port (bound and released; fine for a benchmark on loopback).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Polls `check` every 50 ms until it returns true or `timeout` passes.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether `GET http://127.0.0.1:port{path}` answers 200.
pub async fn http_ok(port: u16, path: &str) -> bool {
    let Ok(Ok(mut s)) = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    else {
        return false;
    };
    let req = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..n]);
    head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200")
}

/// Runs a command to completion, failing with its stderr when it fails; returns stdout.
pub async fn run_cmd(cmd: &mut tokio::process::Command) -> Result<String> {
    let out = cmd.kill_on_drop(true).output().await?;
    if !out.status.success() {
        bail!(
            "{:?} failed ({}): {}",
            cmd.as_std().get_program(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Opens (appending) a log file for a child's stdout/stderr.
pub fn log_file(path: &Path) -> Result<std::process::Stdio> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    Ok(std::process::Stdio::from(f))
}
