//! Issuance throughput: many new workloads need SVIDs at once. Per run (one system, fresh
//! instance): `issuance_entries` workloads are running and connected; their entries are
//! created together; then every workload retries FetchX509SVID every [`POLL_MS`] until it
//! holds its SVID. Measured from "all entries acknowledged" to "every workload holds its
//! SVID": SVIDs per second, and the server's CPU seconds over that window per 1000 SVIDs
//! (agent CPU too). SPIRE mints ahead of the request after its next sync; sworn on the first
//! request. Both include their propagation delay, which is part of the answer.

use std::time::Instant;

use anyhow::Result;

use super::collect::{Collector, Row};
use crate::context::{Ctx, UID_BASE, connect};
use crate::peer::{EntrySpec, Kind};
use crate::procfs::cpu_seconds;
use crate::wire::{Command, Reply, last_fetched, now_ns};
use crate::workers::Pool;

/// Retry interval of a workload without an SVID.
pub const POLL_MS: u64 = 200;

/// Runs the scenario.
pub async fn issuance(ctx: &mut Ctx) -> Result<Vec<Row>> {
    let n = ctx.sizes.issuance_entries;
    ctx.main_pool(n).await?;
    let mut c = Collector::new("issuance");
    let rate = format!("SVIDs per second, {n} new workloads");
    for (pair, kind) in ctx.schedule("issuance") {
        ctx.progress("issuance", pair, kind);
        one(ctx, kind, &rate, &mut c).await?;
    }
    let f = &ctx.floors;
    c.floor(
        &rate,
        format!("P-256 sign+verify {:.0}/s/core", f.p256_sign_verify_per_s),
    );
    c.floor(
        "server CPU per 1000 SVIDs",
        format!(
            "{:.2} (1000 sign+verify)",
            f.p256_sign_verify_us * 1000.0 / 1e6
        ),
    );
    c.note(
        &rate,
        "entries created together for running workloads retrying every 200 ms; includes each \
         system's propagation (SPIRE's 5 s sync, sworn's push)",
    );
    Ok(c.rows())
}

async fn one(ctx: &mut Ctx, kind: Kind, rate: &str, c: &mut Collector) -> Result<()> {
    let n = ctx.sizes.issuance_entries;
    let mut peer = ctx.start("issuance", kind).await?;
    let ep = peer.endpoint();
    connect(&mut ctx.pool, 0..n, &ep).await?;
    let specs: Vec<EntrySpec> = (0..n)
        .map(|i| EntrySpec::local(ctx.uid(UID_BASE, i)))
        .collect();
    let created = Instant::now();
    peer.create_entries(&specs).await?;
    c.low(
        "creating the entries (admin API)",
        "s",
        kind,
        created.elapsed().as_secs_f64(),
    );
    let served = serve_all(
        &mut ctx.pool,
        n,
        |_| ep.clone(),
        peer.server_pid().unwrap_or(0),
        &[peer.agent_pid().unwrap_or(0)],
    )
    .await?;
    c.high(rate, "SVID/s", kind, n as f64 / served.secs);
    c.low("wall time until all served", "s", kind, served.secs);
    c.low(
        "server CPU per 1000 SVIDs",
        "CPU-s",
        kind,
        served.server_cpu * 1000.0 / n as f64,
    );
    c.low(
        "agent CPU per 1000 SVIDs",
        "CPU-s",
        kind,
        served.agent_cpu * 1000.0 / n as f64,
    );
    peer.shutdown().await;
    Ok(())
}

/// What serving a set of new workloads took.
#[derive(Debug)]
pub struct Served {
    /// Start of polling → the last workload holding its SVID, seconds.
    pub secs: f64,
    /// Server CPU seconds over that window.
    pub server_cpu: f64,
    /// CPU seconds of the agents over that window.
    pub agent_cpu: f64,
}

/// Workers `0..n` of `pool` poll (every [`POLL_MS`]) `endpoint(i)` until each holds an SVID.
pub async fn serve_all(
    pool: &mut Pool,
    n: usize,
    endpoint: impl Fn(usize) -> String,
    server: u32,
    agents: &[u32],
) -> Result<Served> {
    let agents_cpu = || {
        agents
            .iter()
            .map(|&p| cpu_seconds(p).unwrap_or(0.0))
            .sum::<f64>()
    };
    let (s0, a0) = (cpu_seconds(server)?, agents_cpu());
    let t0 = now_ns();
    let endpoints: Vec<String> = (0..n).map(endpoint).collect();
    let mut i = 0;
    let replies = pool
        .call_each(0..n, |_| {
            let socket = endpoints[i.min(n - 1)].clone();
            i += 1;
            Command::FetchUntilOk {
                socket,
                interval_ms: POLL_MS,
                timeout_ms: 300_000,
            }
        })
        .await?;
    let (s1, a1) = (cpu_seconds(server)?, agents_cpu());
    if let Some(Reply::Error { message }) =
        replies.iter().find(|r| matches!(r, Reply::Error { .. }))
    {
        anyhow::bail!("a workload was not served: {message}");
    }
    let last = last_fetched(&replies, t0);
    Ok(Served {
        secs: (last.saturating_sub(t0) as f64 / 1e9).max(1e-6),
        server_cpu: s1 - s0,
        agent_cpu: a1 - a0,
    })
}
