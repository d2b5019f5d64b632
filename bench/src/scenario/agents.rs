//! Many agents against one server: `agents` agents × `per_agent` workloads. Per run (one
//! system, fresh instance): the server and its first agent start, the other agents join
//! (each attested with its own join token, its own data directory and socket); every
//! workload is connected to its agent's socket; then all `agents × per_agent` entries are
//! created together (each scoped to its workload's agent) and every workload polls
//! FetchX509SVID every 200 ms until it holds its SVID. Measured from "entries acknowledged"
//! to "the last workload served": SVIDs per second, the server's CPU per 1000 SVIDs, and
//! the server's RSS afterwards.

use anyhow::Result;

use super::collect::{Collector, Row};
use super::issuance::serve_all;
use crate::context::{Ctx, UID_BASE, connect};
use crate::peer::{EntrySpec, Kind};
use crate::procfs::rss_bytes;

const MIB: f64 = 1024.0 * 1024.0;

/// Runs the scenario.
pub async fn agents(ctx: &mut Ctx) -> Result<Vec<Row>> {
    let (a, w) = (ctx.sizes.agents, ctx.sizes.per_agent);
    ctx.main_pool(a * w).await?;
    let mut c = Collector::new("agents");
    let rate = format!("SVIDs per second, {a} agents × {w} new workloads");
    for (pair, kind) in ctx.schedule("agents") {
        ctx.progress("agents", pair, kind);
        one(ctx, kind, &rate, &mut c).await?;
    }
    Ok(c.rows())
}

async fn one(ctx: &mut Ctx, kind: Kind, rate: &str, c: &mut Collector) -> Result<()> {
    let (a, w) = (ctx.sizes.agents, ctx.sizes.per_agent);
    let n = a * w;
    let mut peer = ctx.start("agents", kind).await?;
    for _ in 1..a {
        peer.add_agent().await?;
    }
    for i in 0..a {
        connect(&mut ctx.pool, i * w..(i + 1) * w, &peer.endpoint_of(i)).await?;
    }
    let specs: Vec<EntrySpec> = (0..n)
        .map(|i| EntrySpec {
            agent: i / w,
            ..EntrySpec::local(ctx.uid(UID_BASE, i))
        })
        .collect();
    peer.create_entries(&specs).await?;
    let endpoints: Vec<String> = (0..a).map(|i| peer.endpoint_of(i)).collect();
    let served = serve_all(
        &mut ctx.pool,
        n,
        |i| endpoints[i / w].clone(),
        peer.server_pid().unwrap_or(0),
        &[],
    )
    .await?;
    c.high(rate, "SVID/s", kind, n as f64 / served.secs);
    c.low(
        &format!("server CPU per 1000 SVIDs, {a} agents"),
        "CPU-s",
        kind,
        served.server_cpu * 1000.0 / n as f64,
    );
    if let Some(pid) = peer.server_pid() {
        c.low(
            &format!("server RSS, {a} agents × {w} SVIDs"),
            "MiB",
            kind,
            rss_bytes(pid)? as f64 / MIB,
        );
    }
    peer.shutdown().await;
    Ok(())
}
