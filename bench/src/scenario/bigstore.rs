//! The large-datastore instance the memory and cold-start scenarios share: per system, built
//! once and kept stopped in [`Ctx::bigstore`], restarted for every repetition.
//!
//! Built as: a fresh instance; one entry for the probe workload on its agent; then
//! `server_entries` entries scoped to 100 agents that never connect (so the real agent's own
//! view is one entry on both systems, and what is measured is the server holding the
//! datastore). A restart ([`cold_start`]) kills nothing that runs: server and agent are
//! already stopped; it spawns the server, polls its readiness (every [`POLL_MS`]), spawns
//! the agent (which resumes its stored identity), polls its readiness, then the probe polls
//! FetchX509SVID until it holds an SVID.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};

use crate::context::{Ctx, UID_PROBE};
use crate::peer::{EntrySpec, Kind, Peer};
use crate::wire::{Command, Reply, now_ns};
use crate::workers::Pool;

/// Readiness poll interval of the cold start.
pub const POLL_MS: u64 = 10;
/// Fake agents the bulk entries are spread over.
const FAKE_NODES: u32 = 100;
/// Entries per create call batch (progress granularity).
const CHUNK: usize = 5000;
/// The probe workload's uid offset in the probe range.
const PROBE_OFFSET: u32 = 100;

/// The three stages of a cold start, seconds.
#[derive(Debug, Clone, Copy)]
pub struct Split {
    /// Server spawn → server ready.
    pub server_ready: f64,
    /// Server ready (agent spawn) → agent ready.
    pub agent_connected: f64,
    /// Agent ready → the probe holds an SVID.
    pub first_svid: f64,
}

impl Split {
    /// Server spawn → first SVID.
    pub fn total(&self) -> f64 {
        self.server_ready + self.agent_connected + self.first_svid
    }
}

/// The probe workload (one worker, its own uid).
pub async fn probe(ctx: &Ctx) -> Result<Pool> {
    ctx.extra_pool(UID_PROBE + PROBE_OFFSET, 1, None).await
}

/// Builds `kind`'s large-datastore instance unless it exists; leaves it stopped.
pub async fn ensure(ctx: &mut Ctx, kind: Kind, probe_uid: u32) -> Result<()> {
    if ctx.bigstore.contains_key(&kind) {
        return Ok(());
    }
    let total = ctx.sizes.server_entries;
    eprintln!(
        "sworn-bench: building {}'s {total}-entry datastore",
        kind.name()
    );
    let mut peer = ctx.start("bigstore", kind).await?;
    peer.create_entries(&[EntrySpec::local(probe_uid)]).await?;
    let started = Instant::now();
    let mut made = 0usize;
    while made < total {
        let end = (made + CHUNK).min(total);
        let specs: Vec<EntrySpec> = (made..end)
            .map(|i| EntrySpec {
                fake_node: Some(i as u32 % FAKE_NODES),
                ..EntrySpec::local(100_000 + i as u32)
            })
            .collect();
        peer.create_entries(&specs).await?;
        made = end;
    }
    eprintln!(
        "sworn-bench: {}: {total} entries in {:.0?} ({:.0}/s)",
        kind.name(),
        started.elapsed(),
        total as f64 / started.elapsed().as_secs_f64().max(1e-6)
    );
    peer.stop_agent().await?;
    peer.stop_server().await?;
    ctx.bigstore.insert(kind, peer);
    Ok(())
}

/// Cold-starts `kind`'s large-datastore instance (see the module docs) and leaves it running;
/// `probe` must already be connected to its endpoint or reach it through `FetchUntilOk`.
pub async fn cold_start(ctx: &mut Ctx, kind: Kind, probe: &mut Pool) -> Result<Split> {
    let peer = ctx
        .bigstore
        .get_mut(&kind)
        .ok_or_else(|| anyhow!("no large datastore for {}", kind.name()))?;
    let spawned = peer.respawn_server()?;
    poll(|| peer.server_ready(), "server readiness").await?;
    let server_ready = spawned.elapsed().as_secs_f64();
    let agent_spawned = peer.respawn_agent(0)?;
    poll(|| peer.agent_ready(0), "agent readiness").await?;
    let agent_connected = agent_spawned.elapsed().as_secs_f64();
    let t2 = now_ns();
    let replies = probe
        .call_all_ok(
            0..1,
            &Command::FetchUntilOk {
                socket: peer.endpoint(),
                interval_ms: POLL_MS,
                timeout_ms: 300_000,
            },
        )
        .await?;
    let first_svid = match replies.first() {
        Some(Reply::Fetched { at_ns, .. }) => at_ns.saturating_sub(t2) as f64 / 1e9,
        _ => return Err(anyhow!("{}: the probe got no SVID", kind.name())),
    };
    Ok(Split {
        server_ready,
        agent_connected,
        first_svid,
    })
}

/// Stops `kind`'s large-datastore instance again.
pub async fn stop(ctx: &mut Ctx, kind: Kind) -> Result<()> {
    if let Some(peer) = ctx.bigstore.get_mut(&kind) {
        peer.stop_agent().await?;
        peer.stop_server().await?;
    }
    Ok(())
}

/// The running instance, for reading its pids.
pub fn peer(ctx: &Ctx, kind: Kind) -> Option<&Peer> {
    ctx.bigstore.get(&kind)
}

async fn poll<F, Fut>(mut check: F, what: &str) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(600);
    while !check().await {
        if Instant::now() > deadline {
            return Err(anyhow!("timed out waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
    Ok(())
}
