//! Workload API fetch latency at N concurrent workloads from a warm cache, plus the agent
//! memory rows (idle, with cached SVIDs, with open streams).
//!
//! Both systems run side by side with the same entries (`unix:uid:<uid>` for every pool
//! worker); each worker is one process under its own uid holding one connected client per
//! agent. A level N runs N workers in a closed loop (each calls FetchX509SVID, waits for the
//! answer, calls again) until the level's total call count is spent; levels and repetitions
//! interleave the systems.

use std::time::Duration;

use anyhow::{Result, bail};

use super::collect::{Collector, Row, latencies};
use crate::context::{Ctx, UID_BASE, connect};
use crate::peer::{EntrySpec, Peer};
use crate::procfs::rss_bytes;
use crate::stats::percentile;
use crate::wire::{Command, Reply};

const MIB: f64 = 1024.0 * 1024.0;

/// Runs the scenario.
pub async fn fetch(ctx: &mut Ctx) -> Result<Vec<Row>> {
    let max_n = ctx
        .sizes
        .fetch_levels
        .iter()
        .map(|(n, _)| *n)
        .max()
        .unwrap_or(1)
        .max(ctx.sizes.memory_workloads);
    let mut c = Collector::new("fetch");
    let mut peers = Vec::new();
    for kind in ctx.kinds.clone() {
        let peer = ctx.start("fetch", kind).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        if let Some(pid) = peer.agent_pid() {
            c.low(
                "agent RSS, idle (attested, no entries)",
                "MiB",
                kind,
                rss_bytes(pid)? as f64 / MIB,
            );
        }
        peers.push(peer);
    }
    ctx.main_pool(max_n).await?;
    for peer in &mut peers {
        let specs: Vec<EntrySpec> = (0..max_n)
            .map(|i| EntrySpec::local(ctx.uid(UID_BASE, i)))
            .collect();
        peer.create_entries(&specs).await?;
        connect(&mut ctx.pool, 0..max_n, &peer.endpoint()).await?;
        // Warm: every workload holds its SVID before anything is timed.
        ctx.pool
            .call_all_ok(
                0..max_n,
                &Command::FetchUntilOk {
                    socket: peer.endpoint(),
                    interval_ms: 250,
                    timeout_ms: 180_000,
                },
            )
            .await?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for peer in &peers {
        if let Some(pid) = peer.agent_pid() {
            c.low(
                &format!("agent RSS, {max_n} cached SVIDs"),
                "MiB",
                peer.kind(),
                rss_bytes(pid)? as f64 / MIB,
            );
        }
    }

    for &(n, total) in &ctx.sizes.fetch_levels.clone() {
        let per = (total as usize).div_ceil(n) as u32;
        for _rep in 0..ctx.sizes.reps {
            for peer in &peers {
                let started = std::time::Instant::now();
                let (lat, errors, first) = level(ctx, peer, n, per).await?;
                let rate = lat.len() as f64 / started.elapsed().as_secs_f64();
                if lat.is_empty() {
                    bail!(
                        "{}: no successful fetch at N={n}: {}",
                        peer.kind().name(),
                        first.unwrap_or_default()
                    );
                }
                let k = peer.kind();
                let name = |p: &str| format!("fetch {p}, N={n}");
                c.low(&name("p50"), "µs", k, percentile(&lat, 50.0).unwrap_or(0.0));
                c.low(&name("p99"), "µs", k, percentile(&lat, 99.0).unwrap_or(0.0));
                c.low(
                    &name("p99.9"),
                    "µs",
                    k,
                    percentile(&lat, 99.9).unwrap_or(0.0),
                );
                c.high(&format!("fetch throughput, N={n}"), "calls/s", k, rate);
                if errors > 0 {
                    c.low(
                        &format!("fetch errors, N={n}"),
                        "calls",
                        k,
                        f64::from(errors),
                    );
                    eprintln!(
                        "  {} N={n}: {errors} failed calls, first: {first:?}",
                        k.name()
                    );
                }
            }
        }
        let f = &ctx.floors;
        c.floor(
            &format!("fetch p50, N={n}"),
            format!(
                "rtt {:.0} + sha256(exe) {:.0}",
                f.tonic_uds_rtt_p50_us, f.sha256_worker_exe_us
            ),
        );
        c.floor(
            &format!("fetch p99, N={n}"),
            format!("rtt p99 {:.0}", f.tonic_uds_rtt_p99_us),
        );
    }

    // Open streams: every workload holds one FetchX509SVID stream per agent.
    let n = ctx.sizes.memory_workloads;
    for peer in &peers {
        ctx.pool
            .call_all_ok(
                0..n,
                &Command::Stream {
                    socket: peer.endpoint(),
                },
            )
            .await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        if let Some(pid) = peer.agent_pid() {
            c.low(
                &format!("agent RSS, {n} open streams"),
                "MiB",
                peer.kind(),
                rss_bytes(pid)? as f64 / MIB,
            );
        }
        ctx.pool.call_all_ok(0..n, &Command::CloseStreams).await?;
        ctx.pool.drain_events();
    }
    for p in peers {
        p.shutdown().await;
    }
    c.note(
        &format!(
            "fetch p50, N={}",
            ctx.sizes.fetch_levels.last().map_or(1, |l| l.0)
        ),
        "closed loop; both agents hash the caller's executable per call",
    );
    Ok(c.rows())
}

async fn level(
    ctx: &mut Ctx,
    peer: &Peer,
    n: usize,
    per: u32,
) -> Result<(Vec<f64>, u32, Option<String>)> {
    let replies: Vec<Reply> = ctx
        .pool
        .call_each(0..n, |_| Command::Fetch {
            socket: peer.endpoint(),
            count: per,
        })
        .await?;
    let (lat, _, errors, first) = latencies(&replies);
    Ok((lat, errors, first))
}
