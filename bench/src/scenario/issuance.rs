//! Issuance throughput: many workloads need SVIDs at once. A fresh system per repetition;
//! `issuance_entries` entries are created together for running workloads, which retry every
//! [`POLL_MS`]. Measured from "all entries acknowledged" to "every workload holds its SVID":
//! SVIDs per second, and the server's CPU seconds over that window per 1000 SVIDs (agent CPU
//! is recorded too). SPIRE mints ahead of the request after its next sync; sworn mints on
//! the first request. Both include their propagation delay, which is part of the answer.

use std::time::Instant;

use anyhow::Result;

use super::collect::{Collector, Row};
use crate::context::{Ctx, UID_BASE, connect};
use crate::peer::EntrySpec;
use crate::procfs::cpu_seconds;
use crate::wire::{Command, Reply, now_ns};

/// Retry interval of a workload without an SVID.
const POLL_MS: u64 = 200;

/// Runs the scenario.
pub async fn issuance(ctx: &mut Ctx) -> Result<Vec<Row>> {
    let n = ctx.sizes.issuance_entries;
    ctx.main_pool(n).await?;
    let mut c = Collector::new("issuance");
    let rate_name = format!("SVIDs per second, {n} entries created together → all served");
    for _rep in 0..ctx.sizes.issuance_reps {
        for kind in ctx.kinds.clone() {
            let mut peer = ctx.start("issuance", kind).await?;
            connect(&mut ctx.pool, 0..n, &peer.endpoint()).await?;
            let specs: Vec<EntrySpec> = (0..n)
                .map(|i| EntrySpec::local(ctx.uid(UID_BASE, i)))
                .collect();
            let server = peer.server_pid().unwrap_or(0);
            let agent = peer.agent_pid().unwrap_or(0);
            let created = Instant::now();
            peer.create_entries(&specs).await?;
            let create_s = created.elapsed().as_secs_f64();
            let (s0, a0) = (cpu_seconds(server)?, cpu_seconds(agent)?);
            let t0 = now_ns();
            let replies = ctx
                .pool
                .call_all_ok(
                    0..n,
                    &Command::FetchUntilOk {
                        socket: peer.endpoint(),
                        interval_ms: POLL_MS,
                        timeout_ms: 300_000,
                    },
                )
                .await?;
            let (s1, a1) = (cpu_seconds(server)?, cpu_seconds(agent)?);
            let last = replies
                .iter()
                .filter_map(|r| match r {
                    Reply::Fetched { at_ns, .. } => Some(*at_ns),
                    _ => None,
                })
                .max()
                .unwrap_or(t0);
            let secs = (last.saturating_sub(t0) as f64 / 1e9).max(1e-6);
            let per_k = 1000.0 / n as f64;
            c.high(&rate_name, "SVID/s", kind, n as f64 / secs);
            c.low("wall time until all served", "s", kind, secs);
            c.low(
                "server CPU per 1000 SVIDs",
                "CPU-s",
                kind,
                (s1 - s0) * per_k,
            );
            c.low("agent CPU per 1000 SVIDs", "CPU-s", kind, (a1 - a0) * per_k);
            c.low("creating the entries (admin API)", "s", kind, create_s);
            peer.shutdown().await;
        }
    }
    let f = &ctx.floors;
    c.floor(
        &rate_name,
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
        &rate_name,
        "includes SPIRE's sync interval (5 s) and sworn's sync push; workloads retry every 200 ms",
    );
    c.note(
        "creating the entries (admin API)",
        "SPIRE: CLI batches of 1000; sworn: no batch call, 32 concurrent CreateEntry",
    );
    Ok(c.rows())
}
