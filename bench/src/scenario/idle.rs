//! Idle CPU: what a system costs when nothing happens. Per run (one system, fresh instance):
//! `idle_workloads` workloads get an entry and fetch their SVID once (so the agent holds
//! them), then nothing calls for [`SETTLE`] plus one window of `idle_window_s` (60 s in a
//! full run; five pairs make five minutes per system). Measured over the window: server and
//! agent CPU time (`/proc/<pid>/stat`), as a percentage of one core.

use std::time::Duration;

use anyhow::Result;

use super::collect::{Collector, Row};
use crate::context::Ctx;
use crate::peer::Kind;
use crate::procfs::cpu_seconds;
use crate::wire::Command;

/// Quiet time before the window opens.
const SETTLE: Duration = Duration::from_secs(5);

/// Runs the scenario.
pub async fn idle(ctx: &mut Ctx) -> Result<Vec<Row>> {
    let n = ctx.sizes.idle_workloads;
    ctx.main_pool(n).await?;
    let mut c = Collector::new("idle");
    for (pair, kind) in ctx.schedule("idle") {
        ctx.progress("idle", pair, kind);
        one(ctx, kind, &mut c).await?;
    }
    c.note(
        "idle CPU, server + agent",
        &format!(
            "one {} s window per run, {n} workloads holding SVIDs",
            ctx.sizes.idle_window_s
        ),
    );
    Ok(c.rows())
}

async fn one(ctx: &mut Ctx, kind: Kind, c: &mut Collector) -> Result<()> {
    let n = ctx.sizes.idle_workloads;
    let mut peer = ctx.start("idle", kind).await?;
    let ep = ctx.serve_local(&mut peer, n).await?;
    ctx.pool
        .call_all_ok(
            0..n,
            &Command::FetchUntilOk {
                socket: ep,
                interval_ms: 200,
                timeout_ms: 120_000,
            },
        )
        .await?;
    tokio::time::sleep(SETTLE).await;
    let (server, agent) = (
        peer.server_pid().unwrap_or(0),
        peer.agent_pid().unwrap_or(0),
    );
    let (s0, a0) = (cpu_seconds(server)?, cpu_seconds(agent)?);
    let window = Duration::from_secs(ctx.sizes.idle_window_s);
    tokio::time::sleep(window).await;
    let (s1, a1) = (cpu_seconds(server)?, cpu_seconds(agent)?);
    let pct = |x: f64| x / window.as_secs_f64() * 100.0;
    c.low(
        "idle CPU, server + agent",
        "% of a core",
        kind,
        pct(s1 - s0 + a1 - a0),
    );
    c.low("idle CPU, server", "% of a core", kind, pct(s1 - s0));
    c.low("idle CPU, agent", "% of a core", kind, pct(a1 - a0));
    peer.shutdown().await;
    Ok(())
}
