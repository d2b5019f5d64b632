//! Agent restart: how long `restart_workloads` running workloads go unserved when their
//! agent restarts. Per run (one system, fresh instance): every workload has an entry and
//! holds its SVID; the agent is killed (SIGKILL) and spawned again with its stored identity
//! at T0; every workload polls FetchX509SVID every [`POLL_MS`] on its existing client
//! (which reconnects) until it is served. Measured: T0 → the last workload served, and T0 →
//! the agent's readiness endpoint answering.

use anyhow::Result;

use super::collect::{Collector, Row};
use crate::context::Ctx;
use crate::peer::Kind;
use crate::wire::{Command, last_fetched, now_ns};

/// Retry interval of a workload waiting for its agent.
const POLL_MS: u64 = 50;

/// Runs the scenario.
pub async fn restart(ctx: &mut Ctx) -> Result<Vec<Row>> {
    let n = ctx.sizes.restart_workloads;
    ctx.main_pool(n).await?;
    let mut c = Collector::new("restart");
    let all = format!("agent restart, {n} workloads: spawn → all served again");
    for (pair, kind) in ctx.schedule("restart") {
        ctx.progress("restart", pair, kind);
        one(ctx, kind, &all, &mut c).await?;
    }
    c.note(
        &all,
        "SIGKILL, then the agent resumes its stored identity; workloads retry every 50 ms",
    );
    Ok(c.rows())
}

async fn one(ctx: &mut Ctx, kind: Kind, all: &str, c: &mut Collector) -> Result<()> {
    let n = ctx.sizes.restart_workloads;
    let mut peer = ctx.start("restart", kind).await?;
    let ep = ctx.serve_local(&mut peer, n).await?;
    let until_ok = Command::FetchUntilOk {
        socket: ep.clone(),
        interval_ms: POLL_MS,
        timeout_ms: 300_000,
    };
    ctx.pool.call_all_ok(0..n, &until_ok).await?;
    peer.stop_agent_at(0).await?;
    let spawned = peer.respawn_agent(0)?;
    let t0 = now_ns() - spawned.elapsed().as_nanos() as u64;
    let ready = async {
        let _ = peer.wait_agent_ready(0).await;
        spawned.elapsed().as_secs_f64()
    };
    let (replies, ready_s) = tokio::join!(ctx.pool.call_all_ok(0..n, &until_ok), ready);
    let replies = replies?;
    let last = last_fetched(&replies, t0);
    c.low(all, "s", kind, last.saturating_sub(t0) as f64 / 1e9);
    c.low("agent restart: spawn → agent ready", "s", kind, ready_s);
    peer.shutdown().await;
    Ok(())
}
