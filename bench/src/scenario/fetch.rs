//! Workload API fetch from a warm cache, with entries that require the caller's path and
//! SHA-256 (`unix:uid` + `unix:path` + `unix:sha256`; SPIRE with `discover_workload_path`),
//! plus the agent memory rows (idle, with cached SVIDs, with open streams).
//!
//! Per run (one system, fresh instance): `fetch_n` workers (one process per uid, the
//! stripped worker) get an entry each and hold their SVID before anything is timed. Then:
//! - N=1: one worker calls FetchX509SVID `fetch_n1_calls` times in a closed loop on an
//!   already connected client → p50, p99 (and p99.9) latency;
//! - N=`fetch_n`: every worker in a closed loop until `fetch_n_calls` calls are spent →
//!   calls per second (and p50/p99);
//! - agent RSS idle (before entries), with the SVIDs cached, and with one open stream per
//!   worker.

use std::time::Duration;

use anyhow::{Result, bail};

use super::collect::{Collector, Row, latencies};
use crate::context::Ctx;
use crate::peer::{Kind, Peer, PeerOptions};
use crate::procfs::rss_bytes;
use crate::stats::percentile;
use crate::wire::Command;

const MIB: f64 = 1024.0 * 1024.0;

/// Runs the scenario.
pub async fn fetch(ctx: &mut Ctx) -> Result<Vec<Row>> {
    let n = ctx.sizes.fetch_n;
    ctx.main_pool(n).await?;
    let mut c = Collector::new("fetch");
    for (pair, kind) in ctx.schedule("fetch") {
        ctx.progress("fetch", pair, kind);
        one(ctx, kind, &mut c).await?;
    }
    let f = &ctx.floors;
    c.floor(
        "fetch p50, N=1",
        format!(
            "rtt {:.0} + sha256(exe) {:.0}",
            f.tonic_uds_rtt_p50_us, f.sha256_worker_exe_us
        ),
    );
    c.floor(
        "fetch p99, N=1",
        format!("rtt p99 {:.0}", f.tonic_uds_rtt_p99_us),
    );
    Ok(c.rows())
}

async fn one(ctx: &mut Ctx, kind: Kind, c: &mut Collector) -> Result<()> {
    let n = ctx.sizes.fetch_n;
    let opts = PeerOptions {
        exe: Some(ctx.worker_exe.clone()),
    };
    let mut peer = ctx.start_with("fetch", kind, &opts).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    agent_rss(&peer, c, "agent RSS, idle (attested, no entries)")?;
    let ep = ctx.serve_local(&mut peer, n).await?;
    ctx.pool
        .call_all_ok(
            0..n,
            &Command::FetchUntilOk {
                socket: ep.clone(),
                interval_ms: 250,
                timeout_ms: 180_000,
            },
        )
        .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    agent_rss(&peer, c, &format!("agent RSS, {n} cached SVIDs"))?;

    let (lat, _) = level(ctx, &peer, 1, ctx.sizes.fetch_n1_calls).await?;
    c.low(
        "fetch p50, N=1",
        "µs",
        kind,
        percentile(&lat, 50.0).unwrap_or(0.0),
    );
    c.low(
        "fetch p99, N=1",
        "µs",
        kind,
        percentile(&lat, 99.0).unwrap_or(0.0),
    );
    c.low(
        "fetch p99.9, N=1",
        "µs",
        kind,
        percentile(&lat, 99.9).unwrap_or(0.0),
    );

    let per = ctx.sizes.fetch_n_calls.div_ceil(n as u32);
    let (lat, rate) = level(ctx, &peer, n, per).await?;
    c.high(&format!("fetch throughput, N={n}"), "calls/s", kind, rate);
    c.low(
        &format!("fetch p50, N={n}"),
        "µs",
        kind,
        percentile(&lat, 50.0).unwrap_or(0.0),
    );
    c.low(
        &format!("fetch p99, N={n}"),
        "µs",
        kind,
        percentile(&lat, 99.0).unwrap_or(0.0),
    );

    ctx.pool
        .call_all_ok(0..n, &Command::Stream { socket: ep.clone() })
        .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    agent_rss(&peer, c, &format!("agent RSS, {n} open streams"))?;
    ctx.pool.call_all_ok(0..n, &Command::CloseStreams).await?;
    ctx.pool.drain_events();
    peer.shutdown().await;
    Ok(())
}

fn agent_rss(peer: &Peer, c: &mut Collector, name: &str) -> Result<()> {
    if let Some(pid) = peer.agent_pid() {
        c.low(name, "MiB", peer.kind(), rss_bytes(pid)? as f64 / MIB);
    }
    Ok(())
}

/// `n` workers × `per` sequential calls each; latencies (µs) and calls per second.
async fn level(ctx: &mut Ctx, peer: &Peer, n: usize, per: u32) -> Result<(Vec<f64>, f64)> {
    let started = std::time::Instant::now();
    let replies = ctx
        .pool
        .call_all_ok(
            0..n,
            &Command::Fetch {
                socket: peer.endpoint(),
                count: per,
            },
        )
        .await?;
    let secs = started.elapsed().as_secs_f64();
    let (lat, _, errors, first) = latencies(&replies);
    if lat.is_empty() {
        bail!(
            "{}: no successful fetch at N={n}: {}",
            peer.kind().name(),
            first.unwrap_or_default()
        );
    }
    if errors > 0 {
        eprintln!(
            "  {} N={n}: {errors} failed calls, first: {first:?}",
            peer.kind().name()
        );
    }
    Ok((lat.clone(), lat.len() as f64 / secs))
}
