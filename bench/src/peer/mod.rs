//! The two systems under test, started with equivalent settings: SQLite
//! datastore, P-256 keys, X509-SVID TTL 1 h, join-token node attestation, unix workload
//! attestation, one server and one or more agents on loopback.
//!
//! Both sides are driven through the same small surface ([`Peer`]) so a scenario never knows
//! which system it measures. Entries are scoped to one agent (SPIRE: `parentID`; sworn:
//! `node`); "fake node" entries are scoped to agents that never connect, to give the server
//! a large datastore without changing what the real agents sync.

mod process;
mod spec;
mod spire;
mod sworn;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::process::Child;

pub use process::{AgentProc, free_port, http_ok, log_file, run_cmd, signal, wait_for};
pub use spec::{Binaries, EntrySpec, ExeSelectors, Kind, PeerOptions, TRUST_DOMAIN};
pub use spire::Spire;
pub use sworn::Sworn;

/// A running system: server + agents.
#[derive(Debug)]
pub enum Peer {
    /// sworn.
    Sworn(Box<Sworn>),
    /// SPIRE.
    Spire(Box<Spire>),
}

impl Peer {
    /// Starts a fresh server and one agent of `kind` in `dir` and waits until the agent is
    /// ready.
    pub async fn start(
        kind: Kind,
        bins: &Binaries,
        dir: &Path,
        opts: &PeerOptions,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(match kind {
            Kind::Sworn => Peer::Sworn(Box::new(Sworn::start(bins, dir, opts).await?)),
            Kind::Spire => Peer::Spire(Box::new(Spire::start(bins, dir, opts).await?)),
        })
    }

    /// Which system.
    pub fn kind(&self) -> Kind {
        match self {
            Peer::Sworn(_) => Kind::Sworn,
            Peer::Spire(_) => Kind::Spire,
        }
    }

    fn agents(&self) -> &[AgentProc] {
        match self {
            Peer::Sworn(s) => &s.agents,
            Peer::Spire(s) => &s.agents,
        }
    }

    fn agents_mut(&mut self) -> &mut Vec<AgentProc> {
        match self {
            Peer::Sworn(s) => &mut s.agents,
            Peer::Spire(s) => &mut s.agents,
        }
    }

    /// Starts one more agent and waits until it is ready; returns its index.
    pub async fn add_agent(&mut self) -> Result<usize> {
        match self {
            Peer::Sworn(s) => s.add_agent().await,
            Peer::Spire(s) => s.add_agent().await,
        }
    }

    /// The first agent's Workload API endpoint, `unix:///abs/path`.
    pub fn endpoint(&self) -> String {
        self.endpoint_of(0)
    }

    /// Agent `i`'s Workload API endpoint.
    pub fn endpoint_of(&self, i: usize) -> String {
        let p = self
            .agents()
            .get(i)
            .map(|a| a.socket.clone())
            .unwrap_or_default();
        format!("unix://{}", p.display())
    }

    /// Server pid.
    pub fn server_pid(&self) -> Option<u32> {
        match self {
            Peer::Sworn(s) => s.server.id(),
            Peer::Spire(s) => s.server.id(),
        }
    }

    /// The first agent's pid.
    pub fn agent_pid(&self) -> Option<u32> {
        self.agents().first().and_then(AgentProc::pid)
    }

    /// Creates entries and returns once the server has stored all of them.
    pub async fn create_entries(&mut self, specs: &[EntrySpec]) -> Result<()> {
        match self {
            Peer::Sworn(s) => s.create_entries(specs).await,
            Peer::Spire(s) => s.create_entries(specs).await,
        }
    }

    /// Whether the server answers its readiness check (sworn `/readyz`, SPIRE `/ready`).
    pub async fn server_ready(&self) -> bool {
        let (port, path) = match self {
            Peer::Sworn(s) => (s.server_health_port, "/readyz"),
            Peer::Spire(s) => (s.server_health_port, "/ready"),
        };
        http_ok(port, path).await
    }

    /// Whether agent `i` answers its readiness check (sworn `/readyz`: attested and synced;
    /// SPIRE `/ready`).
    pub async fn agent_ready(&self, i: usize) -> bool {
        let path = match self {
            Peer::Sworn(_) => "/readyz",
            Peer::Spire(_) => "/ready",
        };
        match self.agents().get(i) {
            Some(a) => http_ok(a.health_port, path).await,
            None => false,
        }
    }

    /// Waits until agent `i` is ready.
    pub async fn wait_agent_ready(&self, i: usize) -> Result<()> {
        match self {
            Peer::Sworn(s) => s.wait_agent_ready(i).await,
            Peer::Spire(s) => s.wait_agent_ready(i).await,
        }
    }

    /// Stops every agent (SIGKILL); their data directories keep their node identities.
    pub async fn stop_agent(&mut self) -> Result<()> {
        for a in self.agents_mut() {
            kill(&mut a.child).await?;
        }
        Ok(())
    }

    /// Stops agent `i` (SIGKILL).
    pub async fn stop_agent_at(&mut self, i: usize) -> Result<()> {
        if let Some(a) = self.agents_mut().get_mut(i) {
            kill(&mut a.child).await?;
        }
        Ok(())
    }

    /// Sends `sig` (`STOP`, `CONT`) to agent `i`.
    pub async fn signal_agent(&self, i: usize, sig: &str) -> Result<()> {
        match self.agents().get(i).and_then(AgentProc::pid) {
            Some(pid) => signal(pid, sig).await,
            None => anyhow::bail!("agent {i} is not running"),
        }
    }

    /// Stops the server (SIGKILL); its datastore and keys stay.
    pub async fn stop_server(&mut self) -> Result<()> {
        match self {
            Peer::Sworn(s) => kill_child(&mut s.server).await,
            Peer::Spire(s) => kill_child(&mut s.server).await,
        }
    }

    /// Spawns the server again on its datastore, without waiting; returns the spawn instant.
    pub fn respawn_server(&mut self) -> Result<Instant> {
        match self {
            Peer::Sworn(s) => s.respawn_server(),
            Peer::Spire(s) => s.respawn_server(),
        }
    }

    /// Spawns agent `i` again with its stored identity, without waiting; returns the spawn
    /// instant.
    pub fn respawn_agent(&mut self, i: usize) -> Result<Instant> {
        match self {
            Peer::Sworn(s) => s.respawn_agent(i),
            Peer::Spire(s) => s.respawn_agent(i),
        }
    }

    /// Stops everything.
    pub async fn shutdown(mut self) {
        if let Some(pid) = self.agent_pid() {
            // A stopped (SIGSTOP) agent still dies of SIGKILL; CONT keeps its exit prompt.
            let _ = signal(pid, "CONT").await;
        }
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
