//! The two systems under test, started with equivalent settings: SQLite
//! datastore, P-256 keys, X509-SVID TTL 1 h, join-token node attestation, unix workload
//! attestation, one server and one agent on loopback.
//!
//! Both sides are driven through the same small surface ([`Peer`]) so a scenario never knows
//! which system it measures. Entries are scoped to one agent (SPIRE: `parentID`; sworn:
//! `node`); "fake node" entries are scoped to agents that never connect, to give the server
//! a large datastore without changing what this agent syncs.

mod process;
mod spec;
mod spire;
mod sworn;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::process::Child;

pub use process::{free_port, http_ok, log_file, run_cmd, wait_for};
pub use spec::{Binaries, EntrySpec, Kind, TRUST_DOMAIN};
pub use spire::Spire;
pub use sworn::Sworn;

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
